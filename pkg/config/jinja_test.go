package config

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func TestJinjaWhitespace(t *testing.T) {
	tests := []struct {
		name, yaml string
		sls, files [2]bool
		err        string
	}{
		{"Salt's defaults: off", "", [2]bool{}, [2]bool{}, ""},
		{"global options set both", "jinja_trim_blocks: true\njinja_lstrip_blocks: true\n", [2]bool{true, true}, [2]bool{true, true}, ""},
		{"jinja_sls_env only for SLS", "jinja_sls_env: {trim_blocks: true}\n", [2]bool{true, false}, [2]bool{}, ""},
		{"jinja_env only for file templates", "jinja_env: {lstrip_blocks: true}\n", [2]bool{}, [2]bool{false, true}, ""},
		{"other Jinja options refused", "jinja_sls_env: {autoescape: true}\n", [2]bool{}, [2]bool{}, `jinja_sls_env: option "autoescape" is not supported`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			p := filepath.Join(t.TempDir(), "master")
			if err := os.WriteFile(p, []byte(tt.yaml), 0o600); err != nil {
				t.Fatal(err)
			}
			c, err := LoadMaster(p, true)
			if tt.err != "" {
				// Refused when the file is loaded, naming it, so the
				// master does not start with an option it would ignore.
				if err == nil || !strings.Contains(err.Error(), tt.err) || !strings.Contains(err.Error(), p) {
					t.Fatalf("error %v, want %q naming %s", err, tt.err, p)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			sls, files, err := c.JinjaWhitespace()
			if err != nil || sls != tt.sls || files != tt.files {
				t.Errorf("sls %v files %v err %v, want %v %v", sls, files, err, tt.sls, tt.files)
			}
		})
	}
}
