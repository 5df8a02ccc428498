package registry

import (
	"encoding/binary"
	"fmt"

	"github.com/hashicorp/go-memdb"
)

// The schema follows Nomad's nomad/state/schema.go: one function per table
// returning its *memdb.TableSchema, and each index named for the query it
// serves.

const (
	tableMinions = "minions"
	tableGrains  = "grains"
	tableIndex   = "index"

	indexID        = "id"
	indexConnected = "connected"  // minions: List of connected (or disconnected) minions
	indexMinion    = "minion"     // grains: every row of one minion, to replace or delete them
	indexPathValue = "path_value" // grains: who has grain path = value (grain targeting)
)

func registrySchema() *memdb.DBSchema {
	s := &memdb.DBSchema{Tables: map[string]*memdb.TableSchema{}}
	for _, t := range []*memdb.TableSchema{minionsTableSchema(), grainsTableSchema(), indexTableSchema()} {
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

// grainRow is one flattened grain value of one minion (see
// target.FlattenGrains): roles=[web, db] becomes two rows.
type grainRow struct {
	MinionID string
	Path     string
	Value    string
	Exact    bool
}

// grainsTableSchema holds the flattened grains. Its path_value index makes
// a grain-equality target one prefix seek; because path_value is not
// unique, memdb suffixes each entry with the row's id (minion id first),
// so one seek yields the matching minions already sorted by id.
func grainsTableSchema() *memdb.TableSchema {
	return &memdb.TableSchema{
		Name: tableGrains,
		Indexes: map[string]*memdb.IndexSchema{
			indexID: {
				Name:    indexID,
				Unique:  true,
				Indexer: rowIDIndexer{},
			},
			indexMinion: {
				Name:    indexMinion,
				Indexer: &memdb.StringFieldIndex{Field: "MinionID"},
			},
			indexPathValue: {
				Name:    indexPathValue,
				Indexer: pathValueIndexer{},
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

// rowKey starts with the minion id and a NUL (ids never contain one) so
// that rows sort by minion id.
func rowKey(minion, path, value string) []byte {
	b := make([]byte, 0, len(minion)+len(path)+len(value)+5)
	b = append(append(b, minion...), 0)
	return appendField(appendField(b, path), value)
}

type rowIDIndexer struct{}

func (rowIDIndexer) FromObject(obj any) (bool, []byte, error) {
	r, ok := obj.(*grainRow)
	if !ok {
		return false, nil, fmt.Errorf("grains table: unexpected %T", obj)
	}
	return true, rowKey(r.MinionID, r.Path, r.Value), nil
}

func (rowIDIndexer) FromArgs(args ...any) ([]byte, error) {
	if len(args) != 3 {
		return nil, fmt.Errorf("grains id index: want minion, path, value; got %d args", len(args))
	}
	m, ok1 := args[0].(string)
	p, ok2 := args[1].(string)
	v, ok3 := args[2].(string)
	if !ok1 || !ok2 || !ok3 {
		return nil, fmt.Errorf("grains id index: arguments must be strings")
	}
	return rowKey(m, p, v), nil
}

type pathValueIndexer struct{}

func (pathValueIndexer) FromObject(obj any) (bool, []byte, error) {
	r, ok := obj.(*grainRow)
	if !ok {
		return false, nil, fmt.Errorf("grains table: unexpected %T", obj)
	}
	return true, pathValueKey(r.Path, r.Value), nil
}

func (pathValueIndexer) FromArgs(args ...any) ([]byte, error) {
	if len(args) != 2 {
		return nil, fmt.Errorf("path_value index: want path, value; got %d args", len(args))
	}
	p, ok1 := args[0].(string)
	v, ok2 := args[1].(string)
	if !ok1 || !ok2 {
		return nil, fmt.Errorf("path_value index: arguments must be strings")
	}
	return pathValueKey(p, v), nil
}
