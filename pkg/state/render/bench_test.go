package render

import (
	"context"
	"fmt"
	"testing"
)

// BenchmarkHostsSLS renders and compiles the repository's states/hosts.sls
// for one minion of a 1,000-minion environment: two mine.get calls, a
// 1,000-entry loop and ~2,000 host.present chunks.
//
//	go test -run XXX -bench HostsSLS -benchmem ./pkg/state/render
func BenchmarkHostsSLS(b *testing.B) {
	const n = 1000
	grains := map[string]map[string]any{}
	data := map[string]map[string]any{}
	for i := 0; i < n; i++ {
		id := fmt.Sprintf("node%04d", i)
		grains[id] = map[string]any{"env": "prod"}
		data[id] = map[string]any{
			"network.ip_addrs":     []any{fmt.Sprintf("10.%d.%d.%d", i/65536, i/256%256, i%256)},
			"network.get_hostname": id + ".prod.example.com",
		}
	}
	tree := &Tree{
		FileRoots: map[string][]string{"base": {"../../../states"}},
		Matcher:   testMatcher{},
		Funcs:     &fakeMine{grains: grains, data: data},
	}
	m := Minion{ID: "node0000", Grains: map[string]any{"id": "node0000", "env": "prod", "host": "node0000"}}
	chunks, err := tree.SLS(context.Background(), m, []string{"hosts"}, Options{})
	if err != nil {
		b.Fatal(err)
	}
	if len(chunks) != 2*n {
		b.Fatalf("%d chunks, want %d", len(chunks), 2*n)
	}
	b.ReportAllocs()
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		if _, err := tree.SLS(context.Background(), m, []string{"hosts"}, Options{}); err != nil {
			b.Fatal(err)
		}
	}
}
