#!/usr/bin/env bash
# make package: build brine-master, brine-minion and brinectl, then one .deb
# for each (packaging/nfpm/*.yaml) with nfpm, into dist/.
#
# Environment:
#   DIST       where the .deb files go (default dist)
#   BRINE_BIN  where the binaries are built (default bin)
#   VERSION    package version (default: pkg/master's Version, plus
#              +git<commit time>.<commit> when built from a git checkout)
#   ARCH       Debian/Go architecture (default: go env GOARCH)
#
# nfpm is run with `go run module@version`, so go.mod does not change; the
# first run downloads and compiles it (about two minutes), later runs use
# the Go build cache.
set -euo pipefail
cd "$(dirname "$0")/.."

GO=${GO:-go}
NFPM=github.com/goreleaser/nfpm/v2/cmd/nfpm@v2.45.2
DIST=${DIST:-dist}
BRINE_BIN=${BRINE_BIN:-bin}
ARCH=${ARCH:-$("$GO" env GOARCH)}

if [ -z "${VERSION:-}" ]; then
	VERSION=$(sed -n 's/^const Version = "\(.*\)"$/\1/p' pkg/master/master.go)
	if [ -z "$VERSION" ]; then
		echo "package.sh: no 'const Version' in pkg/master/master.go; set VERSION" >&2
		exit 1
	fi
	# Successive builds between releases must upgrade each other: the commit
	# time sorts, the commit names the source.
	if rev=$(git rev-parse --short=12 HEAD 2>/dev/null); then
		VERSION="$VERSION+git$(TZ=UTC git log -1 --format=%cd --date=format-local:%Y%m%d%H%M%S).$rev"
	fi
fi
case $VERSION in
[0-9]*) ;;
*)
	echo "package.sh: VERSION $VERSION must start with a digit (Debian version)" >&2
	exit 1
	;;
esac

mkdir -p "$DIST" "$BRINE_BIN"
BRINE_BIN=$(cd "$BRINE_BIN" && pwd)
export VERSION ARCH BRINE_BIN

for b in master:brine-master minion:brine-minion ctl:brinectl; do
	echo "== go build $BRINE_BIN/${b#*:}"
	CGO_ENABLED=0 GOOS=linux GOARCH="$ARCH" "$GO" build -trimpath -ldflags="-s -w" -o "$BRINE_BIN/${b#*:}" "./cmd/${b%%:*}"
done

for p in brine-master brine-minion brinectl; do
	rm -f "$DIST/${p}_"*.deb
	"$GO" run "$NFPM" package --config "packaging/nfpm/$p.yaml" --packager deb --target "$DIST/"
done
ls -l "$DIST"/*.deb
