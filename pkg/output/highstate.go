package output

import (
	"fmt"
	"sort"
	"strconv"
	"strings"
)

// HighstateStats summarises one minion's state run, for exit codes.
type HighstateStats struct {
	Succeeded int // result true or None (test mode), as Salt counts them
	Unchanged int // result None: would change in test mode
	Changed   int // states that reported changes
	Failed    int // result false, or a malformed state return
	Total     int
	// CompileErrors holds render/compile errors: the return was a list of
	// strings, so no state ran.
	CompileErrors []string
	// DurationMS is the sum of the state durations.
	DurationMS float64
}

// OK reports whether the run had neither failed states nor compile errors.
func (s HighstateStats) OK() bool { return s.Failed == 0 && len(s.CompileErrors) == 0 }

// Highstate renders one minion's state return like Salt's highstate
// outputter. data is either a mapping of state tag -> result (see
// pkg/state.Result), a list of error strings (the SLS did not compile), or
// any other value (printed as is, e.g. "Minion did not return").
func Highstate(host string, data any, o Options) (string, HighstateStats) {
	c := colors(o.Color)
	var st HighstateStats
	hcolor := c.Green
	var lines []string
	host = Sanitize(host)

	switch x := normalize(data).(type) {
	case nil:
	case string:
		for _, l := range splitLines(Sanitize(x)) {
			lines = append(lines, c.Green+"    "+l+c.Endc)
		}
		hcolor = c.Cyan
	case []any:
		hcolor = c.LightRed
		lines = append(lines, "    "+hcolor+"Data failed to compile:"+c.Endc)
		for _, e := range x {
			msg := Sanitize(errText(e))
			st.CompileErrors = append(st.CompileErrors, msg)
			lines = append(lines, hcolor+"----------\n    "+msg+c.Endc)
		}
		if len(x) == 0 {
			st.CompileErrors = append(st.CompileErrors, "empty error list")
		}
	case map[string]any:
		hcolor, lines = formatStates(host, x, o, c, &st)
	default:
		lines = append(lines, c.Green+"    "+Sanitize(stringify(x))+c.Endc)
	}
	out := append([]string{hcolor + host + ":" + c.Endc}, lines...)
	return strings.Join(out, "\n"), st
}

func errText(e any) string {
	if s, ok := e.(string); ok {
		return s
	}
	return strings.TrimSpace(Nested(e, 0, Options{}))
}

type stateRet struct {
	tag     string
	m       map[string]any
	runNum  float64
	result  any // true, false or nil
	badData string
}

func formatStates(host string, data map[string]any, o Options, c palette, st *HighstateStats) (string, []string) {
	rets := make([]stateRet, 0, len(data))
	for tag, v := range data {
		r := stateRet{tag: tag}
		m, ok := v.(map[string]any)
		switch {
		case !ok:
			r.badData = fmt.Sprintf("state return is %s, not a mapping", typeName(v))
		default:
			r.m = m
			res, has := m["result"]
			switch res.(type) {
			case bool, nil:
				r.result = res
			default:
				has = false
			}
			if !has {
				r.badData = "state return has no result"
			}
			r.runNum, _ = m["__run_num__"].(float64)
		}
		rets = append(rets, r)
	}
	// Salt orders by __run_num__; the tag breaks ties so output is stable.
	sort.Slice(rets, func(i, j int) bool {
		if rets[i].runNum != rets[j].runNum {
			return rets[i].runNum < rets[j].runNum
		}
		return rets[i].tag < rets[j].tag
	})

	hcolor := c.Green
	failedSeen := false
	var lines []string
	mode := strings.ToLower(o.StateOutput)
	for _, r := range rets {
		st.Total++
		if r.badData != "" {
			st.Failed++
			failedSeen = true
			hcolor = c.Red
			lines = append(lines,
				c.Red+"----------"+c.Endc,
				"    "+c.Red+"      ID: "+Sanitize(r.tag)+c.Endc,
				"    "+c.Red+"  Result: False"+c.Endc,
				"    "+c.Red+" Comment: malformed state return: "+r.badData+c.Endc)
			continue
		}
		m := r.m
		if d, ok := m["duration"].(float64); ok {
			st.DurationMS += d
		}
		changed, ctext := formatChanges(m["changes"], o.Color)
		if changed {
			st.Changed++
		}
		tcolor := c.Green
		if changed {
			tcolor = c.Cyan
		}
		switch r.result {
		case false:
			st.Failed++
			failedSeen = true
			hcolor, tcolor = c.Red, c.Red
		case nil:
			st.Succeeded++
			st.Unchanged++
			if !failedSeen {
				hcolor = c.LightYellow
			}
			tcolor = c.LightYellow
		default:
			st.Succeeded++
		}

		id, name, fun := stateNames(r.tag, m)
		terse := false
		switch mode {
		case "terse":
			terse = true
		case "mixed":
			terse = r.result != false
		case "changes":
			terse = r.result == true && !changed
		}
		if terse {
			lines = append(lines, formatTerse(tcolor, c, name, fun, r.result, m))
			continue
		}

		sl := []string{
			tcolor + "----------" + c.Endc,
			"    " + tcolor + "      ID: " + id + c.Endc,
			"    " + tcolor + "Function: " + fun + c.Endc,
		}
		if id != name {
			sl = append(sl, "    "+tcolor+"    Name: "+name+c.Endc)
		}
		sl = append(sl,
			"    "+tcolor+"  Result: "+pyResult(r.result)+c.Endc,
			"    "+tcolor+" Comment: "+comment(m["comment"])+c.Endc,
		)
		if startedStr, ok := m["start_time"].(string); ok {
			sl = append(sl, "    "+tcolor+" Started: "+Sanitize(startedStr)+c.Endc)
		}
		if d, ok := m["duration"].(float64); ok {
			sl = append(sl, "    "+tcolor+"Duration: "+pyFloat(d)+" ms"+c.Endc)
		}
		sl = append(sl, tcolor+"     Changes:   "+ctext+c.Endc)
		lines = append(lines, sl...)
	}

	lines = append(lines, summary(host, c, *st)...)
	return hcolor, lines
}

// summary is Salt's per-minion footer, including its column arithmetic:
// the widths derive from the longest individual result count.
func summary(host string, c palette, st HighstateStats) []string {
	countMax := 0
	for _, n := range []int{st.Succeeded - st.Unchanged, st.Unchanged, st.Failed} {
		if n > 0 {
			countMax = max(countMax, len(strconv.Itoa(n)))
		}
	}
	width := len("Succeeded") + countMax + 2
	dashes := strings.Repeat("-", width)
	counts := func(label string, n int) string {
		return label + ": " + rjust(strconv.Itoa(n), width-(len(label)+2))
	}
	var stats []string
	if st.Unchanged > 0 {
		stats = append(stats, c.LightYellow+"unchanged="+strconv.Itoa(st.Unchanged)+c.Endc)
	}
	if st.Changed > 0 {
		stats = append(stats, c.Green+"changed="+strconv.Itoa(st.Changed)+c.Endc)
	}
	changestats := ""
	if len(stats) > 0 {
		changestats = " (" + strings.Join(stats, ", ") + ")"
	}
	failColor := c.Cyan
	if st.Failed > 0 {
		failColor = c.Red
	}
	dur, unit := st.DurationMS, "ms"
	if dur > 999 {
		dur, unit = dur/1000, "s"
	}
	return []string{
		c.Cyan + "\nSummary for " + host + "\n" + dashes + c.Endc,
		c.Green + counts("Succeeded", st.Succeeded) + c.Endc + changestats,
		failColor + counts("Failed", st.Failed) + c.Endc,
		c.Cyan + dashes + "\nTotal states run: " + rjust(strconv.Itoa(st.Total), width-7) + c.Endc,
		c.Cyan + "Total run time: " + rjust(strconv.FormatFloat(dur, 'f', 3, 64), width-5) + " " + unit + c.Endc,
	}
}

func rjust(s string, width int) string {
	if len(s) >= width {
		return s
	}
	return strings.Repeat(" ", width-len(s)) + s
}

func typeName(v any) string {
	switch v.(type) {
	case nil:
		return "null"
	case string:
		return "a string"
	case bool:
		return "a boolean"
	case float64:
		return "a number"
	case []any:
		return "a list"
	}
	return fmt.Sprintf("%T", v)
}

func pyResult(r any) string {
	s, _ := scalarText(r)
	return s
}

// stateNames returns ID, Name and Function, preferring the result's own
// fields over splitting the tag (a name may itself contain "_|-").
func stateNames(tag string, m map[string]any) (id, name, fun string) {
	comps := strings.Split(tag, "_|-")
	if len(comps) == 4 {
		id, name, fun = comps[1], comps[2], comps[0]+"."+comps[3]
	} else {
		id, name = tag, tag
	}
	if s, ok := m["__id__"].(string); ok && s != "" {
		id = s
	}
	if s, ok := m["name"].(string); ok && s != "" {
		name = s
	}
	if s, ok := m["function"].(string); ok && s != "" {
		fun = s
	}
	return Sanitize(id), Sanitize(name), Sanitize(fun)
}

func comment(v any) string {
	var s string
	switch x := v.(type) {
	case string:
		s = x
	case []any:
		parts := make([]string, 0, len(x))
		for _, e := range x {
			parts = append(parts, errText(e))
		}
		s = strings.Join(parts, "\n")
	case nil:
		s = ""
	default:
		s = errText(x)
	}
	s = strings.TrimSpace(Sanitize(s))
	return strings.ReplaceAll(s, "\n", "\n"+strings.Repeat(" ", 14))
}

// formatChanges is Salt's _format_changes: nested at indent 14.
func formatChanges(ch any, color bool) (bool, string) {
	switch x := ch.(type) {
	case nil:
		return false, ""
	case map[string]any:
		if len(x) == 0 {
			return false, ""
		}
		return true, "\n" + Nested(x, 14, Options{Color: color})
	case []any:
		if len(x) == 0 {
			return false, ""
		}
	case string:
		if x == "" {
			return false, ""
		}
	}
	return true, "Invalid Changes data: " + Sanitize(stringify(ch))
}

func formatTerse(tcolor string, c palette, name, fun string, result any, m map[string]any) string {
	word := "Clean"
	if changed, _ := formatChanges(m["changes"], false); changed {
		word = "Changed"
	}
	switch result {
	case false:
		word = "Failed"
	case nil:
		word = "Differs"
	}
	s := tcolor + "  Name: " + name + " - Function: " + fun + " - Result: " + word
	if startedStr, ok := m["start_time"].(string); ok {
		s += " Started: - " + Sanitize(startedStr)
		if d, ok := m["duration"].(float64); ok {
			s += " Duration: " + pyFloat(d) + " ms"
		}
	}
	return s + c.Endc
}
