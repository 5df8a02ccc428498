// Package mine is brine's Salt mine: minions publish the results of chosen
// execution functions (mine_functions) to the master, and minions, the
// state renderer and operators read them back with mine.get.
//
// Master side: a Store (MemStore, backed by go-memdb and persisted to a
// JSON file) holds one Entry per (minion, function); Get resolves a target
// through the caller's Resolver, reads the store and applies the publishing
// minion's allow_tgt ACL.
//
// Minion side: ParseFunctions reads the mine_functions config, and a
// Scheduler runs those functions at start, every mine_interval, on demand
// (mine.update, mine.send) and whenever the host's addresses or hostname
// change, publishing only values that changed.
//
// Both sides share the wire convention in Encode/Decode: a value published
// with allow_tgt travels wrapped in a small map inside MineUpdate.data.
package mine
