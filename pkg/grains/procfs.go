package grains

import (
	"bufio"
	"fmt"
	"io"
	"strconv"
	"strings"
)

// ParseMeminfo reads /proc/meminfo into kibibyte counts keyed by field
// name ("MemTotal": 24684084). Lines without a unit (HugePages_Total) are
// plain counts.
func ParseMeminfo(r io.Reader) (map[string]uint64, error) {
	out := map[string]uint64{}
	sc := bufio.NewScanner(r)
	line := 0
	for sc.Scan() {
		line++
		text := sc.Text()
		if strings.TrimSpace(text) == "" {
			continue
		}
		key, rest, ok := strings.Cut(text, ":")
		if !ok || key == "" {
			return out, fmt.Errorf("meminfo line %d: no ':' in %q", line, text)
		}
		fields := strings.Fields(rest)
		if len(fields) == 0 || len(fields) > 2 || (len(fields) == 2 && fields[1] != "kB") {
			return out, fmt.Errorf("meminfo line %d (%s): expected '<number> [kB]', got %q", line, key, strings.TrimSpace(rest))
		}
		n, err := strconv.ParseUint(fields[0], 10, 64)
		if err != nil {
			return out, fmt.Errorf("meminfo line %d (%s): %w", line, key, err)
		}
		out[key] = n
	}
	if err := sc.Err(); err != nil {
		return out, fmt.Errorf("meminfo: %w", err)
	}
	return out, nil
}

// cpuInfo is what Salt takes from /proc/cpuinfo: the first processor's
// model name and flags.
type cpuInfo struct {
	Model string
	Flags []string
}

// ParseCPUInfo reads /proc/cpuinfo; x86 says "model name" and "flags",
// arm64 says "Features" and often has no model name at all.
func parseCPUInfo(r io.Reader) (cpuInfo, error) {
	var ci cpuInfo
	sc := bufio.NewScanner(r)
	sc.Buffer(make([]byte, 0, 64*1024), 1<<20)
	seenModel, seenFlags := false, false
	for sc.Scan() {
		key, val, ok := strings.Cut(sc.Text(), ":")
		if !ok {
			continue
		}
		key = strings.TrimSpace(key)
		val = strings.TrimSpace(val)
		switch key {
		case "model name", "cpu model", "Model":
			if !seenModel {
				ci.Model, seenModel = val, true
			}
		case "flags", "Features":
			if !seenFlags {
				ci.Flags, seenFlags = strings.Fields(val), true
			}
		}
	}
	if err := sc.Err(); err != nil {
		return ci, fmt.Errorf("cpuinfo: %w", err)
	}
	if ci.Flags == nil {
		ci.Flags = []string{}
	}
	return ci, nil
}
