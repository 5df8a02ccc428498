package pyrender

import (
	"errors"
	"strings"
	"testing"
)

// FuzzPreprocess: the import rewriter never panics, keeps every line
// where it was (errors and Starlark positions depend on it), and refuses
// with a SourceError that names the file and a line of the input.
func FuzzPreprocess(f *testing.F) {
	for _, seed := range []string{
		"import hashlib\nimport hmac\ndef run():\n    return {}\n",
		"import os.path as osp, json\nfrom re import sub as s, match\n",
		"from json import (dumps, loads)\nx = 1; import time\n",
		"def f():\n    if x: import base64\n    return '''import socket\n'''\n",
		"s = 'it''s' \"is\" r'\\d' b'\\x00' # import os\n",
		"import subprocess\n", "class A: pass\n", "x is None\n", "print >>f, 1\n",
		"from json import *\n", "import\n", "from\n", "'unterminated\n", "'''open\n",
		"import a.b.c as d\n", "x = (1,\n import_ = 2)\n", "\\\nimport json\n",
	} {
		f.Add(seed)
	}
	f.Fuzz(func(t *testing.T, src string) {
		out, err := preprocess("f.sls", src)
		if err != nil {
			var se *SourceError
			if !errors.As(err, &se) {
				t.Fatalf("%T %v is not a SourceError", err, err)
			}
			if se.File != "f.sls" || se.Line < 1 || se.Line > strings.Count(src, "\n")+1 {
				t.Fatalf("error %v points outside the input", err)
			}
			return
		}
		if strings.Count(out, "\n") != strings.Count(src, "\n") {
			t.Fatalf("line count changed: %q -> %q", src, out)
		}
		// Compiling what was accepted must not panic either.
		_, _ = Compile("f.sls", []byte(src))
	})
}
