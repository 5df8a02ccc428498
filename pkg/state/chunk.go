// Package state holds the data that crosses from the master's compiler
// (pkg/state/render) to the minion's applier (pkg/state/apply): compiled
// low chunks and their results. Both ends agree on these JSON shapes; the
// wire carries them as structured values inside a state.apply job.
package state

import "strings"

// Requisite kinds, as Salt names them. The _in forms are rewritten by the
// compiler into the plain form on the other chunk.
const (
	Require   = "require"
	Watch     = "watch"
	OnChanges = "onchanges"
	OnFail    = "onfail"
	Prereq    = "prereq"
)

// Chunk is one compiled state call ("low chunk" in Salt's words).
type Chunk struct {
	ID    string         `json:"__id__"`
	SLS   string         `json:"__sls__"`
	Env   string         `json:"__env__"`
	State string         `json:"state"` // module family: file, host, cmd...
	Fun   string         `json:"fun"`   // managed, present, run...
	Name  string         `json:"name"`
	Args  map[string]any `json:"args,omitempty"` // every other keyword argument
	Order int            `json:"order"`
	// Requisites point at other chunks by Key, already resolved and
	// checked by the compiler; the applier does not search by name.
	Requisites []Requisite `json:"requisites,omitempty"`
	Failhard   bool        `json:"failhard,omitempty"`
}

// Requisite is one resolved dependency edge.
type Requisite struct {
	Kind string `json:"kind"` // Require, Watch, OnChanges, OnFail, Prereq
	Key  string `json:"key"`  // Key() of the chunk depended on
}

// Key is Salt's state tag: "file_|-hosts_|-/etc/hosts_|-managed". Results
// are keyed by it, as in Salt's highstate return.
func (c Chunk) Key() string {
	return strings.Join([]string{c.State, c.ID, c.Name, c.Fun}, "_|-")
}

// Result is what applying (or testing) one chunk produced.
type Result struct {
	ID        string         `json:"__id__"`
	SLS       string         `json:"__sls__,omitempty"`
	Name      string         `json:"name"`
	Function  string         `json:"function,omitempty"` // "file.managed"
	Result    *bool          `json:"result"`             // nil: test mode, would change
	Changes   map[string]any `json:"changes"`
	Comment   string         `json:"comment"`
	Duration  float64        `json:"duration"`   // milliseconds, as Salt
	StartTime string         `json:"start_time"` // HH:MM:SS.ffffff, as Salt
	RunNum    int            `json:"__run_num__"`
}
