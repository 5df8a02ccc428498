package master

import (
	"context"
	"fmt"
	"path/filepath"
	"time"

	"google.golang.org/protobuf/types/known/structpb"

	"github.com/brine-cm/brine/pkg/mine"
	"github.com/brine-cm/brine/pkg/wire"
	pb "github.com/brine-cm/brine/proto/brinev1"
)

// masterResolver lets the mine resolve targets with the same engine as jobs.
type masterResolver struct{ m *Master }

func (r masterResolver) Select(expr, tgtType string) ([]string, error) {
	return r.m.resolve(expr, tgtType)
}

func (m *Master) setupMine() error {
	if m.cluster != nil {
		m.mine = m.cluster.mine
	} else {
		st, err := mine.NewMemStore(filepath.Join(m.cfg.DataDir, "mine.json"))
		if err != nil {
			return fmt.Errorf("mine store: %w", err)
		}
		m.mine = st
		m.closers = append(m.closers, func() { st.Close() })
	}
	m.runners["mine.get"] = func(ctx context.Context, args []any, kwargs map[string]any) (any, error) {
		return m.mineGet(ctx, "", args, kwargs)
	}
	m.minionCalls["mine.get"] = func(ctx context.Context, requester string, args []any, kwargs map[string]any) (any, error) {
		return m.mineGet(ctx, requester, args, kwargs)
	}
	m.runners["mine.flush"] = func(ctx context.Context, args []any, kwargs map[string]any) (any, error) {
		tgt, err := argString(args, kwargs, 0, "tgt", true)
		if err != nil {
			return nil, err
		}
		ids, err := m.resolve(tgt, tgtTypeArg(kwargs))
		if err != nil {
			return nil, err
		}
		out := map[string]any{}
		for _, id := range ids {
			if err := m.mine.Delete(ctx, id); err != nil {
				return nil, fmt.Errorf("mine.flush %s: %w", id, err)
			}
			m.publish(mine.UpdateTag(id), map[string]any{"id": id, "functions": []any{}, "flushed": true})
			out[id] = true
		}
		return out, nil
	}
	m.runners["mine.delete"] = func(ctx context.Context, args []any, kwargs map[string]any) (any, error) {
		tgt, err := argString(args, kwargs, 0, "tgt", true)
		if err != nil {
			return nil, err
		}
		fun, err := argString(args, kwargs, 1, "fun", true)
		if err != nil {
			return nil, err
		}
		ids, err := m.resolve(tgt, tgtTypeArg(kwargs))
		if err != nil {
			return nil, err
		}
		out := map[string]any{}
		for _, id := range ids {
			if err := m.mine.Delete(ctx, id, fun); err != nil {
				return nil, fmt.Errorf("mine.delete %s %s: %w", id, fun, err)
			}
			out[id] = true
		}
		return out, nil
	}
	return nil
}

func (m *Master) mineGet(ctx context.Context, requester string, args []any, kwargs map[string]any) (any, error) {
	req, err := mine.ParseGetArgs(args, kwargs)
	if err != nil {
		return nil, badArg("%v", err)
	}
	r := masterResolver{m}
	if _, err := m.resolve(req.Tgt, req.TgtType); err != nil {
		return nil, err
	}
	return req.Run(ctx, m.mine, r, mine.ResolverACL(r), requester)
}

// MineGet is mine.get for the state renderer, on behalf of a minion.
func (m *Master) MineGet(ctx context.Context, requester, tgt, fun, tgtType string) (map[string]any, error) {
	return mine.Get(ctx, m.mine, masterResolver{m}, mine.ResolverACL(masterResolver{m}), requester, tgt, fun, tgtType)
}

func (m *Master) handleMineUpdate(c *conn, u *pb.MineUpdate) {
	data := make(map[string]any, len(u.GetData()))
	for k, v := range u.GetData() {
		data[k] = wire.Any(v)
	}
	changed, err := m.mine.Put(c.ctx, c.id, data, u.GetRemoved(), u.GetReplace())
	if err != nil {
		m.log.Error("mine update", "id", c.id, "err", err)
		return
	}
	if tag, ev, ok := mine.UpdateEvent(c.id, changed); ok {
		ev["id"] = c.id // reactor rules read data['id'] rather than parse the tag
		m.log.Debug("mine updated", "id", c.id, "functions", changed)
		m.publish(tag, ev)
	}
}

// minionConfigPush is what the master tells every minion in its Welcome:
// master-wide mine_functions and mine_interval.
func (m *Master) minionConfigPush() *structpb.Struct {
	cfg := map[string]any{}
	if m.cfg.MineFunctions != nil {
		if n, err := wire.Normalize(m.cfg.MineFunctions); err == nil && n != nil {
			cfg["mine_functions"] = n
		}
	}
	if m.cfg.MineInterval > 0 {
		cfg["mine_interval"] = m.cfg.MineInterval
	}
	s, err := wire.Struct(cfg)
	if err != nil {
		m.log.Warn("minion config push", "err", err)
		return nil
	}
	return s
}

// expireMine drops the mine of minions gone longer than mine_expire.
func (m *Master) expireMine(ctx context.Context) {
	if m.cfg.MineExpire <= 0 {
		return
	}
	every := time.Duration(m.cfg.MineExpire * float64(time.Second) / 4)
	if every < time.Second {
		every = time.Second
	}
	t := time.NewTicker(every)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
		cutoff := time.Now().Add(-time.Duration(m.cfg.MineExpire * float64(time.Second)))
		ids, err := m.mine.Expire(ctx, cutoff)
		if err != nil {
			m.log.Warn("mine expire", "err", err)
			continue
		}
		for _, id := range ids {
			m.mu.Lock()
			_, live := m.conns[id]
			m.mu.Unlock()
			if live {
				continue // connected minions re-publish on their interval
			}
			m.publish(mine.UpdateTag(id), map[string]any{"id": id, "functions": []any{}, "expired": true})
		}
	}
}
