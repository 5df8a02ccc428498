package mine

import (
	"context"
	"testing"
)

// fixedResolver returns precomputed ids: target resolution is measured in
// pkg/registry, this benchmark measures the mine read alone.
type fixedResolver []string

func (f fixedResolver) Select(string, string) ([]string, error) { return f, nil }

// BenchmarkMineGet reads one function from a 10,000-minion mine for the
// id sets a grain-equality target (1,000 minions) and a glob of everything
// (10,000) resolve to.
func BenchmarkMineGet(b *testing.B) {
	ctx := context.Background()
	s, err := NewMemStore("")
	if err != nil {
		b.Fatal(err)
	}
	ids := fillStore(b, s, 10000)
	grainIDs := make([]string, 0, 1000)
	for i := 0; i < len(ids); i += 10 {
		grainIDs = append(grainIDs, ids[i])
	}
	for _, bc := range []struct {
		name string
		ids  []string
	}{
		{"grain-eq-1000", grainIDs},
		{"glob-10000", ids},
	} {
		b.Run(bc.name+"/store", func(b *testing.B) {
			b.ReportAllocs()
			for b.Loop() {
				got, err := s.Get(ctx, bc.ids, "network.ip_addrs")
				if err != nil || len(got) != len(bc.ids) {
					b.Fatalf("got %d, err %v", len(got), err)
				}
			}
		})
		// The full mine.get path a minion takes: requester set, so every
		// entry's allow_tgt is checked.
		b.Run(bc.name+"/acl", func(b *testing.B) {
			b.ReportAllocs()
			allow := func(string, string, string) bool { return true }
			for b.Loop() {
				got, err := Get(ctx, s, fixedResolver(bc.ids), allow, "minion-00001", "*", "network.ip_addrs", "glob")
				if err != nil || len(got) != len(bc.ids) {
					b.Fatalf("got %d, err %v", len(got), err)
				}
			}
		})
	}
}
