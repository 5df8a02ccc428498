package registry

import (
	"encoding/binary"

	"github.com/hashicorp/go-memdb"
)

// The schema follows Nomad's nomad/state/schema.go: one function per table
// returning its *memdb.TableSchema, and each index named for the query it
// serves.

const (
	tableMinions = "minions"
	tableIndex   = "index"

	indexID        = "id"
	indexConnected = "connected" // minions: List of connected (or disconnected) minions
)

func registrySchema() *memdb.DBSchema {
	s := &memdb.DBSchema{Tables: map[string]*memdb.TableSchema{}}
	for _, t := range []*memdb.TableSchema{minionsTableSchema(), indexTableSchema()} {
		s.Tables[t.Name] = t
	}
	return s
}

// minionsTableSchema holds one *Minion per known minion, keyed by id.
func minionsTableSchema() *memdb.TableSchema {
	return &memdb.TableSchema{
		Name: tableMinions,
		Indexes: map[string]*memdb.IndexSchema{
			indexID: {
				Name:    indexID,
				Unique:  true,
				Indexer: &memdb.StringFieldIndex{Field: "ID"},
			},
			indexConnected: {
				Name:    indexConnected,
				Indexer: &memdb.BoolFieldIndex{Field: "Connected"},
			},
		},
	}
}

// indexEntry records the registry's modification index, Nomad's
// IndexEntry: blocking queries watch this row.
type indexEntry struct {
	Key   string
	Value uint64
}

func indexTableSchema() *memdb.TableSchema {
	return &memdb.TableSchema{
		Name: tableIndex,
		Indexes: map[string]*memdb.IndexSchema{
			indexID: {
				Name:    indexID,
				Unique:  true,
				Indexer: &memdb.StringFieldIndex{Field: "Key"},
			},
		},
	}
}

// Grain paths and values may be empty strings, which memdb's
// StringFieldIndex refuses, and may contain any byte, so these indexers
// length-prefix each field. Length-prefixed fields are prefix-free: the
// key of ("a", "b") is never a prefix of the key of ("a", "bc").

func appendField(b []byte, s string) []byte {
	b = binary.AppendUvarint(b, uint64(len(s)))
	return append(b, s...)
}

func pathValueKey(path, value string) []byte {
	return appendField(appendField(make([]byte, 0, len(path)+len(value)+4), path), value)
}
