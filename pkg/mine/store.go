package mine

import (
	"context"
	"errors"
	"time"
)

// Entry is one mine value: what MinionID's Function returned when it last
// reported it. AllowTgt/AllowTgtType are the publishing minion's allow_tgt
// for this function ("" = any requester may read it).
type Entry struct {
	MinionID     string    `json:"minion_id"`
	Function     string    `json:"function"`
	Value        any       `json:"value"`
	AllowTgt     string    `json:"allow_tgt,omitempty"`
	AllowTgtType string    `json:"allow_tgt_type,omitempty"`
	Updated      time.Time `json:"updated"`
}

// Store is the master's mine. It is the seam a clustered master replaces
// with a JetStream KV, so it stays narrow. Values handed out are shared
// with the store: treat them as read-only.
type Store interface {
	// Put records a minion's MineUpdate. data values may be wrapped with
	// Encode (allow_tgt). It returns the functions whose value or ACL
	// actually changed, including ones it removed, sorted. replace=true
	// drops the minion's functions that are not in data.
	Put(ctx context.Context, minionID string, data map[string]any, removed []string, replace bool) (changed []string, err error)
	// Get returns {minion_id: value} for those ids that have function.
	// It applies no ACL; see the package-level Get.
	Get(ctx context.Context, ids []string, function string) (map[string]any, error)
	// Delete drops the named functions of a minion, or all of them when
	// none are named (mine.flush, key deleted).
	Delete(ctx context.Context, minionID string, functions ...string) error
	// Entries lists one minion's mine, sorted by function.
	Entries(ctx context.Context, minionID string) ([]Entry, error)
	// Expire drops every minion whose newest report is older than
	// olderThan and returns their ids, sorted.
	Expire(ctx context.Context, olderThan time.Time) ([]string, error)
}

// ErrClosed is returned by a MemStore used after Close.
var ErrClosed = errors.New("mine store closed")

// UpdateTag is the event tag fired after a Put that changed something.
func UpdateTag(minionID string) string { return "mine/" + minionID + "/update" }

// UpdateEvent returns the tag and data of the event the master fires after
// a Put: mine/<id>/update {"functions": [...changed]}. ok is false when
// nothing changed and no event should be fired.
func UpdateEvent(minionID string, changed []string) (tag string, data map[string]any, ok bool) {
	if len(changed) == 0 {
		return "", nil, false
	}
	fns := make([]any, len(changed))
	for i, f := range changed {
		fns[i] = f
	}
	return UpdateTag(minionID), map[string]any{"functions": fns}, true
}
