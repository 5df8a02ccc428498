package mine

import (
	"fmt"

	memdb "github.com/hashicorp/go-memdb"
)

// Table and index names. Like Nomad's state schema, each index is named
// for the query it serves.
const (
	tableMine    = "mine"
	tableMinions = "mine_minions"

	indexID       = "id"       // (minion, function): Get, Put
	indexMinion   = "minion"   // all functions of one minion: Entries, Delete, replace
	indexUpdated  = "updated"  // minions by last report, oldest first: Expire
	indexFunction = "function" // every minion's value of one function: Get of many ids
)

// schemaFactory returns one table's schema; schema() assembles them.
type schemaFactory func() *memdb.TableSchema

var schemaFactories = []schemaFactory{
	mineTableSchema,
	minionsTableSchema,
}

func stateSchema() *memdb.DBSchema {
	db := &memdb.DBSchema{Tables: make(map[string]*memdb.TableSchema)}
	for _, f := range schemaFactories {
		t := f()
		if _, ok := db.Tables[t.Name]; ok {
			panic(fmt.Sprintf("mine: table %q defined twice", t.Name))
		}
		db.Tables[t.Name] = t
	}
	return db
}

// mineTableSchema holds one *Entry per (minion, function).
func mineTableSchema() *memdb.TableSchema {
	return &memdb.TableSchema{
		Name: tableMine,
		Indexes: map[string]*memdb.IndexSchema{
			indexID: {
				Name:   indexID,
				Unique: true,
				Indexer: &memdb.CompoundIndex{
					Indexes: []memdb.Indexer{
						&memdb.StringFieldIndex{Field: "MinionID"},
						&memdb.StringFieldIndex{Field: "Function"},
					},
				},
			},
			indexMinion: {
				Name:    indexMinion,
				Indexer: &memdb.StringFieldIndex{Field: "MinionID"},
			},
			indexFunction: {
				Name:    indexFunction,
				Indexer: &memdb.StringFieldIndex{Field: "Function"},
			},
		},
	}
}

// minionRow tracks when a minion last reported, so Expire walks only the
// stale minions instead of every entry. A row exists while the minion has
// at least one entry.
type minionRow struct {
	MinionID    string
	UpdatedNano uint64
}

func minionsTableSchema() *memdb.TableSchema {
	return &memdb.TableSchema{
		Name: tableMinions,
		Indexes: map[string]*memdb.IndexSchema{
			indexID: {
				Name:    indexID,
				Unique:  true,
				Indexer: &memdb.StringFieldIndex{Field: "MinionID"},
			},
			indexUpdated: {
				Name:    indexUpdated,
				Indexer: &memdb.UintFieldIndex{Field: "UpdatedNano"},
			},
		},
	}
}
