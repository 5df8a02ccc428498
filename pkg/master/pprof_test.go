package master_test

import (
	"fmt"
	"io"
	"net/http"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/brine-cm/brine/pkg/config"
)

// TestPprofOnlyWhenAsked: /debug/pprof is off on the metrics listener by
// default (profiles expose code paths and cost CPU), and served beside
// /metrics when metrics_pprof is set.
func TestPprofOnlyWhenAsked(t *testing.T) {
	for _, on := range []bool{false, true} {
		t.Run(fmt.Sprint("metrics_pprof=", on), func(t *testing.T) {
			addr := fmt.Sprintf("127.0.0.1:%d", freePort(t))
			startMaster(t, filepath.Join(t.TempDir(), "master"), freePort(t), func(c *config.Master) {
				c.MetricsListen = addr
				c.MetricsPprof = on
			})
			get := func(path string) (int, string) {
				var last error
				for deadline := time.Now().Add(5 * time.Second); time.Now().Before(deadline); time.Sleep(20 * time.Millisecond) {
					resp, err := http.Get("http://" + addr + path)
					if err != nil {
						last = err
						continue
					}
					b, _ := io.ReadAll(resp.Body)
					resp.Body.Close()
					return resp.StatusCode, string(b)
				}
				t.Fatalf("GET %s: %v", path, last)
				return 0, ""
			}
			if code, _ := get("/metrics"); code != http.StatusOK {
				t.Fatalf("/metrics: %d", code)
			}
			code, body := get("/debug/pprof/")
			if on && (code != http.StatusOK || !strings.Contains(body, "goroutine")) {
				t.Errorf("metrics_pprof on: /debug/pprof/ gave %d", code)
			}
			if !on && code != http.StatusNotFound {
				t.Errorf("metrics_pprof off: /debug/pprof/ gave %d, want 404", code)
			}
		})
	}
}
