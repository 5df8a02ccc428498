package exec

import (
	"context"
	"sync"
)

// fakeMaster stands in for the minion link; the master side of these
// calls is tested for real in pkg/master.
type fakeMaster struct {
	mu     sync.Mutex
	events []sentEvent
	calls  []masterCall
	ret    any
	err    error
}

type sentEvent struct {
	Tag  string
	Data map[string]any
}

type masterCall struct {
	Fun    string
	Args   []any
	Kwargs map[string]any
}

func (f *fakeMaster) Call(_ context.Context, fun string, args []any, kwargs map[string]any) (any, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.calls = append(f.calls, masterCall{fun, args, kwargs})
	return f.ret, f.err
}

func (f *fakeMaster) SendEvent(_ context.Context, tag string, data map[string]any) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.err != nil {
		return f.err
	}
	f.events = append(f.events, sentEvent{tag, data})
	return nil
}
