GO ?= go
BIN := bin
PROTOC_GEN_GO_VERSION := v1.36.12
PROTOC_GEN_GO_GRPC_VERSION := v1.6.2
GOBIN_TOOLS := $(CURDIR)/.tools

.PHONY: build proto test demo demo-fleet clean package bench

build:
	CGO_ENABLED=0 $(GO) build -o $(BIN)/brine-master ./cmd/master
	CGO_ENABLED=0 $(GO) build -o $(BIN)/brine-minion ./cmd/minion
	CGO_ENABLED=0 $(GO) build -o $(BIN)/brinectl ./cmd/ctl

proto:
	GOBIN=$(GOBIN_TOOLS) $(GO) install google.golang.org/protobuf/cmd/protoc-gen-go@$(PROTOC_GEN_GO_VERSION)
	GOBIN=$(GOBIN_TOOLS) $(GO) install google.golang.org/grpc/cmd/protoc-gen-go-grpc@$(PROTOC_GEN_GO_GRPC_VERSION)
	PATH=$(GOBIN_TOOLS):$$PATH protoc -I proto --go_out=proto/brinev1 --go_opt=paths=source_relative \
		--go-grpc_out=proto/brinev1 --go-grpc_opt=paths=source_relative proto/brine.proto

test: build
	$(GO) vet ./...
	$(GO) test -race -timeout 25m ./...

# Load generator against a real master (docs/BENCHMARKS.md). Not a test:
# it prints figures and fails only when something is not counted.
BENCH_MINIONS ?= 1000
BENCH_FLAGS ?=
bench: build
	$(GO) build -o $(BIN)/brine-bench ./cmd/brine-bench
	./$(BIN)/brine-bench -minions $(BENCH_MINIONS) $(BENCH_FLAGS)

demo: build
	./scripts/demo.sh

demo-fleet: build
	./scripts/demo-fleet.sh

package:
	GO=$(GO) ./scripts/package.sh

clean:
	rm -rf $(BIN) .tools
