// Package hostile replays Salt's security advisories against the real
// brine programs: each test is named for the attack it tries, runs real
// processes on real sockets, and asserts what must hold (docs/SECURITY.md
// lists them with their results).
//
// The flood test runs a reduced flood by default; `-flood=full` runs the
// sizes of CVE-2023-20897's row (see docs/SECURITY.md for the command).
package hostile

import (
	"flag"
	"os"
	"testing"

	"github.com/brine-cm/brine/test/binaries"
)

var floodSize = flag.String("flood", "reduced", "flood size: reduced (for make test) or full (the figures in docs/SECURITY.md)")

// TestMain is the package's only one: files of other authors in this
// package share it and must not define their own.
func TestMain(m *testing.M) {
	flag.Parse()
	code := m.Run()
	binaries.Cleanup()
	os.Exit(code)
}
