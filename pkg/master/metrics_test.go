package master

import "testing"

// counterValues reads name's series from the registry by their one label.
func counterValues(t *testing.T, mt *metrics, name string) map[string]float64 {
	t.Helper()
	mfs, err := mt.reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	out := map[string]float64{}
	for _, mf := range mfs {
		if mf.GetName() != name {
			continue
		}
		for _, m := range mf.GetMetric() {
			out[m.GetLabel()[0].GetValue()] = m.GetCounter().GetValue()
		}
	}
	return out
}

// TestEventAndReturnCounters: the pre-resolved counters count under the
// same label values as before (tags are user input: anything unknown is
// "custom").
func TestEventAndReturnCounters(t *testing.T) {
	mt := newMetrics()
	for _, tag := range []string{
		"job/1/new", "job/1/ret/web1", "minion/web1/start", "key/web1/accepted", "mine/web1/update",
		"reactor/x", "salt/netapi/hook/deploy", "salt/auth", "salty/x", "custom/thing", "", "nosuch",
	} {
		mt.event(tag)
	}
	mt.returned(true)
	mt.returned(true)
	mt.returned(false)
	events := counterValues(t, mt, "brine_events_total")
	for series, want := range map[string]float64{
		"job": 2, "minion": 1, "key": 1, "mine": 1, "reactor": 1, "hook": 1, "salt": 1, "custom": 4,
	} {
		if got := events[series]; got != want {
			t.Errorf("brine_events_total{prefix=%q} = %v, want %v", series, got, want)
		}
	}
	if len(events) != 8 {
		t.Errorf("event series %v", events)
	}
	rets := counterValues(t, mt, "brine_returns_total")
	if rets["success"] != 2 || rets["failure"] != 1 || len(rets) != 2 {
		t.Errorf("returns %v, want success 2, failure 1", rets)
	}
	if n := testing.AllocsPerRun(100, func() { mt.event("job/1/ret/web1"); mt.returned(true) }); n != 0 {
		t.Errorf("%v allocations per event and return", n)
	}
}
