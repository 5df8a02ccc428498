package master

import "context"

// startBackground runs the master's periodic work until ctx ends.
func (m *Master) startBackground(ctx context.Context) {
	go m.expireMine(ctx)
	m.startReactor(ctx)
}
