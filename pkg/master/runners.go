package master

import (
	"context"
	"fmt"
	"path"
	"runtime"
	"time"

	"github.com/brine-cm/brine/pkg/pki"
)

func (m *Master) registerCoreRunners() {
	r := m.runners
	r["key.list"] = m.keyList
	r["key.accept"] = func(ctx context.Context, args []any, kwargs map[string]any) (any, error) {
		return m.keyChange(ctx, args, kwargs, pki.Accepted)
	}
	r["key.reject"] = func(ctx context.Context, args []any, kwargs map[string]any) (any, error) {
		return m.keyChange(ctx, args, kwargs, pki.Rejected)
	}
	r["key.delete"] = func(ctx context.Context, args []any, kwargs map[string]any) (any, error) {
		return m.keyChange(ctx, args, kwargs, "deleted")
	}
	r["key.finger"] = m.keyFinger
	r["minions.list"] = m.minionsList
	r["job.list"] = m.jobList
	r["job.show"] = m.jobShow
	r["event.fire"] = func(ctx context.Context, args []any, kwargs map[string]any) (any, error) {
		tag, err := argString(args, kwargs, 0, "tag", true)
		if err != nil {
			return nil, err
		}
		var data map[string]any
		if len(args) > 1 {
			d, ok := args[1].(map[string]any)
			if !ok {
				return nil, badArg("event data must be a JSON object")
			}
			data = d
		} else if d, ok := kwargs["data"].(map[string]any); ok {
			data = d
		}
		if err := m.bus.Publish(ctx, tag, data); err != nil {
			return nil, err
		}
		return true, nil
	}
	r["status"] = m.status
}

func (m *Master) keyCount(state string) int {
	keys, err := m.keys.List(context.Background())
	if err != nil {
		return 0
	}
	n := 0
	for _, k := range keys {
		if string(k.State) == state {
			n++
		}
	}
	return n
}

func (m *Master) keyList(ctx context.Context, _ []any, _ map[string]any) (any, error) {
	keys, err := m.keys.List(ctx)
	if err != nil {
		return nil, err
	}
	out := map[string]any{"accepted": []any{}, "pending": []any{}, "rejected": []any{}, "denied": []any{}}
	for _, k := range keys {
		out[string(k.State)] = append(out[string(k.State)].([]any), k.ID)
	}
	return out, nil
}

func (m *Master) keyFinger(ctx context.Context, args []any, _ map[string]any) (any, error) {
	keys, err := m.keys.List(ctx)
	if err != nil {
		return nil, err
	}
	want := map[string]bool{}
	for _, a := range args {
		if s, ok := a.(string); ok {
			want[s] = true
		}
	}
	out := map[string]any{"master": m.Fingerprint()}
	for _, k := range keys {
		if len(want) > 0 && !want[k.ID] {
			continue
		}
		byState, _ := out[string(k.State)].(map[string]any)
		if byState == nil {
			byState = map[string]any{}
			out[string(k.State)] = byState
		}
		byState[k.ID] = k.Fingerprint
	}
	return out, nil
}

// keyChange is salt-key's accept/reject/delete. IDs may be globs, as with
// salt-key -a 'web*'; `all: true` takes every key that can make the move.
func (m *Master) keyChange(ctx context.Context, args []any, kwargs map[string]any, to pki.KeyState) (any, error) {
	keys, err := m.keys.List(ctx)
	if err != nil {
		return nil, err
	}
	all, _ := kwargs["all"].(bool)
	var patterns []string
	for _, a := range args {
		s, ok := a.(string)
		if !ok || s == "" {
			return nil, badArg("key ids must be strings")
		}
		if _, err := path.Match(s, ""); err != nil {
			return nil, badArg("bad key pattern %q: %v", s, err)
		}
		patterns = append(patterns, s)
	}
	if !all && len(patterns) == 0 {
		return nil, badArg("name at least one minion id, or all")
	}
	from := map[pki.KeyState]bool{}
	switch to {
	case pki.Accepted:
		from[pki.Pending] = true
		if !all {
			from[pki.Rejected] = true // salt-key -a --include-rejected, made explicit by naming the id
		}
	case pki.Rejected:
		from[pki.Pending], from[pki.Accepted] = true, true
	default:
		from[pki.Pending], from[pki.Accepted], from[pki.Rejected], from[pki.Denied] = true, true, true, true
	}
	done := map[string]bool{}
	var changed []any
	for _, k := range keys {
		if !from[k.State] || done[k.ID] {
			continue
		}
		if !all && !matchAny(patterns, k.ID) {
			continue
		}
		done[k.ID] = true
		switch to {
		case pki.Accepted:
			if _, err := m.keys.Accept(ctx, k.ID); err != nil {
				return nil, fmt.Errorf("accept %s: %w", k.ID, err)
			}
			m.acceptPending(k.ID)
		case pki.Rejected:
			if _, err := m.keys.Reject(ctx, k.ID); err != nil {
				return nil, fmt.Errorf("reject %s: %w", k.ID, err)
			}
			m.forget(ctx, k.ID, false)
		default:
			if err := m.keys.Delete(ctx, k.ID); err != nil {
				return nil, fmt.Errorf("delete %s: %w", k.ID, err)
			}
			m.forget(ctx, k.ID, true)
		}
		changed = append(changed, k.ID)
		m.publish("key/"+k.ID+"/"+string(to), map[string]any{"id": k.ID, "act": string(to)})
	}
	if len(changed) == 0 && !all {
		return nil, badArg("no key matches %v in a state that can become %s", patterns, to)
	}
	if changed == nil {
		changed = []any{}
	}
	return map[string]any{string(to): changed}, nil
}

// forget cuts a minion off: its stream closes and its mine data goes, so a
// rejected machine stops appearing in everyone's hosts file.
func (m *Master) forget(ctx context.Context, id string, deleted bool) {
	m.disconnect(id)
	if err := m.mine.Delete(ctx, id); err != nil {
		m.log.Warn("mine delete", "id", id, "err", err)
	}
	m.publish("mine/"+id+"/update", map[string]any{"id": id, "functions": []any{}, "flushed": true})
	m.reg.Delete(id)
	if deleted {
		m.deleteGrains(id)
	}
}

func matchAny(patterns []string, id string) bool {
	for _, p := range patterns {
		if ok, _ := path.Match(p, id); ok {
			return true
		}
	}
	return false
}

func (m *Master) minionsList(ctx context.Context, _ []any, _ map[string]any) (any, error) {
	var out []any
	for _, mn := range m.reg.List() {
		summary := map[string]any{}
		for _, k := range []string{"os", "osrelease", "roles", "env", "ipv4", "kernel", "host"} {
			if v, ok := mn.Grains[k]; ok {
				summary[k] = v
			}
		}
		e := map[string]any{"id": mn.ID, "connected": mn.Connected, "grains": summary}
		if !mn.LastSeen.IsZero() {
			e["last_seen"] = mn.LastSeen.UTC().Format(time.RFC3339)
		}
		out = append(out, e)
	}
	if out == nil {
		out = []any{}
	}
	return out, nil
}

func (m *Master) jobList(ctx context.Context, args []any, kwargs map[string]any) (any, error) {
	limit := 50
	if v, ok := kwargs["limit"].(float64); ok && v > 0 {
		limit = int(v)
	}
	jobs, err := m.jobs.List(ctx, limit)
	if err != nil {
		return nil, err
	}
	out := []any{}
	for _, j := range jobs {
		_, rets, err := m.jobs.Get(ctx, j.JID)
		returned := 0
		if err == nil {
			returned = len(rets)
		}
		out = append(out, map[string]any{"jid": j.JID, "fun": j.Fun, "target": j.Target, "tgt_type": j.TgtType, "user": j.User,
			"start_time": j.StartTime.UTC().Format(time.RFC3339Nano), "minions": len(j.Minions), "returned": returned})
	}
	return out, nil
}

func (m *Master) jobShow(ctx context.Context, args []any, kwargs map[string]any) (any, error) {
	jid, err := argString(args, kwargs, 0, "jid", true)
	if err != nil {
		return nil, err
	}
	j, rets, err := m.jobs.Get(ctx, jid)
	if err != nil {
		return nil, err
	}
	returns := map[string]any{}
	got := map[string]bool{}
	for _, r := range rets {
		got[r.MinionID] = true
		e := map[string]any{"return": r.Return, "success": r.Success, "retcode": r.Retcode}
		if r.Error != "" {
			e["error"] = r.Error
		}
		returns[r.MinionID] = e
	}
	offline := map[string]bool{}
	for _, id := range j.Offline {
		offline[id] = true
	}
	missing := []any{}
	for _, id := range j.Minions {
		if !got[id] && !offline[id] {
			missing = append(missing, id)
		}
	}
	return map[string]any{
		"job": map[string]any{"jid": j.JID, "fun": j.Fun, "arg": j.Args, "kwarg": j.Kwargs, "target": j.Target, "tgt_type": j.TgtType,
			"user": j.User, "minions": j.Minions, "offline": j.Offline, "start_time": j.StartTime.UTC().Format(time.RFC3339Nano)},
		"returns": returns, "missing": missing,
	}, nil
}

func (m *Master) status(ctx context.Context, _ []any, _ map[string]any) (any, error) {
	m.mu.Lock()
	connected, pending := len(m.conns), len(m.pending)
	m.mu.Unlock()
	keys := map[string]any{}
	for _, st := range []string{"accepted", "pending", "rejected", "denied"} {
		keys[st] = m.keyCount(st)
	}
	known := len(m.reg.List())
	var ms runtime.MemStats
	runtime.ReadMemStats(&ms)
	out := map[string]any{
		"version": Version, "uptime_seconds": int(time.Since(m.started).Seconds()), "finger": m.Fingerprint(),
		"minions": map[string]any{"connected": connected, "known": known, "waiting_for_acceptance": pending},
		"keys":    keys, "goroutines": runtime.NumGoroutine(), "heap_bytes": ms.HeapAlloc,
	}
	if lb, ok := m.bus.(interface{ Stats() (uint64, uint64) }); ok {
		pub, drop := lb.Stats()
		out["events"] = map[string]any{"published": pub, "dropped": drop}
	}
	for name, fn := range m.statusHooks {
		out[name] = fn()
	}
	return out, nil
}
