package pyrender

import (
	"context"
	"crypto/hmac"
	"crypto/sha1"
	"encoding/hex"
	"errors"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/brine-cm/brine/pkg/jinja"
)

func runSrc(t *testing.T, src string, g Globals, lim Limits) (*Dict, error) {
	t.Helper()
	return Run(context.Background(), "test.sls", []byte(src), g, lim)
}

// storyFile is the repository's own #!py deploy reactor.
func storyFile(t *testing.T) (string, []byte) {
	t.Helper()
	p := filepath.Join("..", "..", "states", "reactor", "code-deploy-py.sls")
	b, err := os.ReadFile(p)
	if err != nil {
		t.Fatal(err)
	}
	return p, b
}

func sign(key, body string) string {
	m := hmac.New(sha1.New, []byte(key))
	m.Write([]byte(body))
	return "sha1=" + hex.EncodeToString(m.Sum(nil))
}

func TestStoryReactor(t *testing.T) {
	file, src := storyFile(t)
	prog, err := Compile(file, src)
	if err != nil {
		t.Fatal(err)
	}
	const key = "s3cret"
	body := `{"ref": "refs/heads/main", "after": "abc123"}`
	opts := map[string]any{"github": map[string]any{"webhook-key": key}, "interface": "0.0.0.0"}
	want := map[string]any{"github_webhook_deploy": map[string]any{"local.state.sls": []any{
		map[string]any{"tgt": "roles:php-web-host"},
		map[string]any{"expr_form": "grain"},
		map[string]any{"arg": []any{"php-web-host.deploy", "prod"}},
	}}}
	cases := []struct {
		name    string
		sig     string
		want    any
		wantErr string
	}{
		{"good signature", sign(key, body), want, ""},
		{"wrong key", sign("other", body), map[string]any{}, ""},
		{"tampered body", sign(key, body+" "), map[string]any{}, ""},
		{"unsigned", "", nil, "NoneType has no .split"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			headers := map[string]any{"Content-Type": "application/json"}
			if c.sig != "" {
				headers["X-Hub-Signature"] = c.sig
			}
			g := Globals{Reactor: true, Tag: "salt/netapi/hook/deploy/php-web-host", Opts: opts,
				Data: map[string]any{"headers": headers, "body": body, "post": map[string]any{}}}
			got, err := prog.Run(context.Background(), g, Limits{})
			if c.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), c.wantErr) || !strings.Contains(err.Error(), file+":13") {
					t.Fatalf("err = %v, want %q at %s:13", err, c.wantErr, file)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if p := Plain(got); !reflect.DeepEqual(p, c.want) {
				t.Fatalf("got %#v\nwant %#v", p, c.want)
			}
		})
	}
}

func TestModules(t *testing.T) {
	cases := []struct {
		imports, expr string
		want          any
	}{
		{"import hashlib", "hashlib.md5('abc').hexdigest()", "900150983cd24fb0d6963f7d28e17f72"},
		{"import hashlib", "hashlib.sha1('abc').hexdigest()", "a9993e364706816aba3e25717850c26c9cd0d89d"},
		{"import hashlib", "hashlib.sha256(b'abc').hexdigest()", "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"},
		{"import hashlib", "hashlib.new('SHA512', 'abc').hexdigest()[:16]", "ddaf35a193617aba"},
		{"from hashlib import sha1\ndef h():\n    x = sha1()\n    x.update('a')\n    x.update(b'bc')\n    return [x.hexdigest(), x.name, x.digest_size]", "h()",
			[]any{"a9993e364706816aba3e25717850c26c9cd0d89d", "sha1", 20}},
		{"import hashlib", "len(hashlib.sha256('x').digest())", 32},
		{"import hmac, hashlib", "hmac.new('key', 'The quick brown fox jumps over the lazy dog', hashlib.sha1).hexdigest()", "de7c9b85b8b78aa6bc8a7a36f70a90701c9db4d9"},
		{"import hmac", "hmac.new(b'key', b'The quick brown fox jumps over the lazy dog', 'sha256').hexdigest()", "f7bc83f430538424b13298e6aa6fb143ef4d59a14946175997479dbc2d1a3cd8"},
		{"import hmac", "[hmac.compare_digest('abc', 'abc'), hmac.compare_digest('abc', 'abd'), hmac.compare_digest('a', 'ab')]", []any{true, false, false}},
		{"import json", `json.dumps({'b': [1, 2.5, None, True], 'a': 'x"\u00e9'})`, `{"b": [1, 2.5, null, true], "a": "x\"\u00e9"}`},
		{"import json", `json.dumps({'b': 1, 'a': {}}, sort_keys=True)`, `{"a": {}, "b": 1}`},
		{"import json", `json.dumps([1, {'a': 2}], indent=2)`, "[\n  1,\n  {\n    \"a\": 2\n  }\n]"},
		{"import json", `json.loads('{"a": [1, 2.0, "x", null, false]}')`, map[string]any{"a": []any{1, 2.0, "x", nil, false}}},
		{"import base64", "base64.b64encode('hello')", "aGVsbG8="},
		{"import base64", "base64.b64decode('aGVsbG8=')", "hello"},
		{"from base64 import urlsafe_b64encode as enc", "enc(b'\\xff\\xfe')", "__4="},
		{"import re", "re.match(r'(\\w+)-(\\d+)', 'web-01').groups()", []any{"web", "01"}},
		{"import re", "re.match(r'\\d+', 'web-01')", nil},
		{"import re", "re.search(r'(?P<num>\\d+)', 'web-01').group('num')", "01"},
		{"import re", "re.search(r'\\d+', 'web-01').span()", []any{4, 6}},
		{"import re", "re.sub(r'(\\w+)@(\\w+)', r'\\2 at \\1 $', 'joe@example')", "example at joe $"},
		{"import re", "re.sub('a', 'b', 'aaa', count=2)", "bba"},
		{"import re", "re.split(r',\\s*', 'a, b,c')", []any{"a", "b", "c"}},
		{"import re", "re.split(r'(,)', 'a,b')", []any{"a", ",", "b"}},
		{"import re", "re.findall(r'(\\d)(\\w)', '1a 2b')", []any{[]any{"1", "a"}, []any{"2", "b"}}},
		{"import re", "re.findall(r'\\d', 'a1b2')", []any{"1", "2"}},
		{"import re", "re.compile('WEB', re.I).match('web01') != None", true},
		{"import os.path", "os.path.join('/srv', 'salt', 'top.sls')", "/srv/salt/top.sls"},
		{"import os.path", "os.path.join('/a', 'b', '/c', 'd')", "/c/d"},
		{"import os.path as osp", "[osp.basename('/a/b.sls'), osp.dirname('/a/b.sls'), osp.dirname('/a'), osp.dirname('a')]", []any{"b.sls", "/a", "/", ""}},
		{"from os.path import splitext", "[splitext('a/b.tar.gz'), splitext('/x/.bashrc'), splitext('noext')]",
			[]any{[]any{"a/b.tar", ".gz"}, []any{"/x/.bashrc", ""}, []any{"noext", ""}}},
		{"from os import path", "path.basename('x/y')", "y"},
		{"import time", "time.time() > 1700000000", true},
		{"", "sorted(set([3, 1, 3]))", []any{1, 3}},
		{"", "[isinstance('x', basestring), isinstance(u'x', str), isinstance(1, (str, long)), isinstance({}, list), isinstance([], (dict, list))]",
			[]any{true, true, true, false, true}},
		{"", "list(xrange(3)) + [unicode(1), long('7')]", []any{0, 1, 2, "1", 7}},
		{"", "u'caf\\u00e9' + ur'\\d'", "caf\u00e9\\d"},
	}
	for _, c := range cases {
		t.Run(c.expr, func(t *testing.T) {
			src := "#!py\n" + c.imports + "\ndef run():\n    return {'v': " + c.expr + "}\n"
			got, err := runSrc(t, src, Globals{}, Limits{})
			if err != nil {
				t.Fatal(err)
			}
			if v := Plain(got.Vals["v"]); !reflect.DeepEqual(v, c.want) {
				t.Fatalf("%s = %#v, want %#v", c.expr, v, c.want)
			}
		})
	}
}

func TestRefused(t *testing.T) {
	cases := []struct {
		name, src string
		line      int
		construct string
	}{
		{"subprocess", "import subprocess\ndef run():\n    return {}\n", 1, "import subprocess"},
		{"os.system via from", "from os import system\n", 1, "from os import system"},
		{"aliased unknown", "import hashlib\nimport socket as s\n", 2, "import socket as s"},
		{"one of several", "import json, urllib2\n", 1, "import json, urllib2"},
		{"star", "from re import *\n", 1, "from re import *"},
		{"import inside def", "def run():\n    import requests\n    return {}\n", 2, "import requests"},
		{"class", "class Foo(object):\n    pass\n", 1, "class"},
		{"try", "def run():\n    try:\n        x = 1\n    except KeyError:\n        pass\n", 2, "try"},
		{"with", "def run():\n    with open('/etc/passwd') as f:\n        pass\n", 2, "with"},
		{"yield", "def gen():\n    yield 1\n", 2, "yield"},
		{"is", "def run():\n    x = None\n    if x is None:\n        return {}\n", 3, "is"},
		{"is not", "def run():\n    if data is not None: return {}\n", 2, "is"},
		{"sys", "import sys\n", 1, "import sys"},
		{"print chevron", "def run():\n    print >>f, 'x'\n", 2, "print >>"},
		{"print statement", "def run():\n    print 'hello'\n    return {}\n", 2, "print statement"},
		{"raise", "def run():\n    raise ValueError('x')\n", 2, "raise"},
		{"global", "n = 0\ndef run():\n    global n\n", 3, "global"},
		{"multi-line import", "from json import (dumps,\n    loads)\n", 1, "from json import (dumps,"},
		{"unknown member", "from json import load\n", 1, "from json import load"},
		{"syntax", "def run(:\n", 1, "syntax"},
		{"f-string", "def run():\n    x = 1\n    return {'a': f'{x}'}\n", 3, "f-string"},
		{"isinstance of a non-type", "def run():\n    return {'a': isinstance(1, 'int')}\n", 2, "run()"},
		{"no run", "x = 1\n", 0, "run()"},
		{"run returns list", "def run():\n    return [1]\n", 1, "run()"},
		{"open builtin", "def run():\n    return {'x': open('/etc/passwd')}\n", 2, "name"},
		{"load", "load('x.star', 'y')\n", 1, "top level"},
		{"runtime error line", "def run():\n    x = {}\n    return x['missing']\n", 3, "run()"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			_, err := runSrc(t, "#!py\n"+c.src, Globals{}, Limits{})
			var se *SourceError
			if err == nil {
				t.Fatal("no error")
			}
			if !errors.As(err, &se) {
				var re *runError
				if !errors.As(err, &re) {
					t.Fatalf("err %T %v is not a SourceError", err, err)
				}
				se = &re.SourceError
			}
			wantLine := c.line
			if wantLine > 0 {
				wantLine++ // the #!py line
			}
			if se.File != "test.sls" || se.Line != wantLine || se.Construct != c.construct {
				t.Fatalf("got file %q line %d construct %q (%v); want line %d construct %q", se.File, se.Line, se.Construct, err, wantLine, c.construct)
			}
			if !strings.HasPrefix(err.Error(), "test.sls:") {
				t.Fatalf("error does not name the file: %v", err)
			}
		})
	}
}

// Strings and comments that merely mention refused words are fine.
func TestNotRefusedInStringsAndComments(t *testing.T) {
	src := `#!py
# import subprocess; class Foo: try: with is yield
"""import os
class X: try"""
def run():
    s = 'import socket' + " is " + '''with
yield'''
    isolated = 1  # the is-operator
    return {'s': s, 'i': isolated, 'is': 'x'.split()}
`
	got, err := runSrc(t, src, Globals{}, Limits{})
	if err != nil {
		t.Fatal(err)
	}
	if got.Vals["s"] != "import socket is with\nyield" || got.Vals["i"] != 1 {
		t.Fatalf("got %#v", Plain(got))
	}
}

func TestDialect(t *testing.T) {
	src := `#!py
count = 0
count = count + 1          # global reassignment
if count:                  # top-level control flow
    for i in range(2):
        count += 1

def fact(n):               # recursion
    return 1 if n <= 1 else n * fact(n - 1)

def run():
    n, out = 0, []
    while True:            # while
        n += 1
        if n > 3:
            break
        out.append(n)
    s = set([1, 2, 2])     # sets
    return {'count': count, 'fact': fact(5), 'loop': out, 'set': len(s)}
`
	got, err := runSrc(t, src, Globals{}, Limits{})
	if err != nil {
		t.Fatal(err)
	}
	want := map[string]any{"count": 3, "fact": 120, "loop": []any{1, 2, 3}, "set": 2}
	if !reflect.DeepEqual(Plain(got), want) {
		t.Fatalf("got %#v", Plain(got))
	}
}

func TestGlobalsAndSalt(t *testing.T) {
	var gotArgs []any
	var gotKw map[string]any
	g := Globals{
		Salt: map[string]any{
			"mine.get": jinja.Func(func(args []any, kw map[string]any) (any, error) {
				gotArgs, gotKw = args, kw
				return map[string]any{"db1": []any{"10.0.0.1"}, "db2": []any{"10.0.0.2"}}, nil
			}),
			"test.fail": jinja.Func(func([]any, map[string]any) (any, error) { return nil, errors.New("boom") }),
		},
		Grains: map[string]any{"id": "web1", "roles": []any{"web"}}, Pillar: map[string]any{"rev": "v1"},
		Opts: map[string]any{"custom": "yes"}, Saltenv: "prod", SLS: "web.deploy",
	}
	src := `#!py
def run():
    mine = __salt__['mine.get']('roles:db', 'network.ip_addrs', tgt_type='grain')
    return {'mine': sorted(mine.keys()), 'same': salt == __salt__, 'g': __grains__['id'] + grains['roles'][0],
            'p': __pillar__['rev'] + pillar.get('x', '-'), 'o': __opts__['custom'],
            'env': __env__ + saltenv, 'sls': __sls__ + sls}
`
	got, err := runSrc(t, src, g, Limits{})
	if err != nil {
		t.Fatal(err)
	}
	want := map[string]any{"mine": []any{"db1", "db2"}, "same": true, "g": "web1web", "p": "v1-", "o": "yes",
		"env": "prodprod", "sls": "web.deployweb.deploy"}
	if !reflect.DeepEqual(Plain(got), want) {
		t.Fatalf("got %#v", Plain(got))
	}
	if !reflect.DeepEqual(gotArgs, []any{"roles:db", "network.ip_addrs"}) || gotKw["tgt_type"] != "grain" {
		t.Fatalf("mine.get called with %v %v", gotArgs, gotKw)
	}
	_, err = runSrc(t, "#!py\ndef run():\n    return __salt__['test.fail']()\n", g, Limits{})
	if err == nil || !strings.Contains(err.Error(), "test.sls:3") || !strings.Contains(err.Error(), "boom") {
		t.Fatalf("salt function error: %v", err)
	}
	// States and pillar do not get the event.
	_, err = runSrc(t, "#!py\ndef run():\n    return {'t': tag}\n", g, Limits{})
	if err == nil || !strings.Contains(err.Error(), "tag") {
		t.Fatalf("tag in a state: %v", err)
	}
}

func TestLimits(t *testing.T) {
	t.Run("steps", func(t *testing.T) {
		start := time.Now()
		_, err := runSrc(t, "#!py\ndef run():\n    while True:\n        pass\n", Globals{}, Limits{MaxSteps: 100_000, Timeout: time.Minute})
		var se *SourceError
		if !errors.As(err, &se) || se.Construct != "step limit" || se.Line < 2 {
			t.Fatalf("err = %v", err)
		}
		if time.Since(start) > 10*time.Second {
			t.Fatalf("step limit took %s", time.Since(start))
		}
	})
	t.Run("steps at top level", func(t *testing.T) {
		_, err := runSrc(t, "#!py\nwhile True:\n    pass\n", Globals{}, Limits{MaxSteps: 1000})
		var se *SourceError
		if !errors.As(err, &se) || se.Construct != "step limit" {
			t.Fatalf("err = %v", err)
		}
	})
	t.Run("wall clock", func(t *testing.T) {
		slow := Globals{Salt: map[string]any{"test.sleep": jinja.Func(func([]any, map[string]any) (any, error) {
			time.Sleep(20 * time.Millisecond)
			return true, nil
		})}}
		start := time.Now()
		_, err := runSrc(t, "#!py\ndef run():\n    while True:\n        __salt__['test.sleep']()\n", slow, Limits{MaxSteps: 1 << 40, Timeout: 200 * time.Millisecond})
		var se *SourceError
		if !errors.As(err, &se) || se.Construct != "time limit" {
			t.Fatalf("err = %v", err)
		}
		if d := time.Since(start); d < 200*time.Millisecond || d > 5*time.Second {
			t.Fatalf("stopped after %s", d)
		}
	})
	t.Run("context", func(t *testing.T) {
		ctx, cancel := context.WithTimeout(context.Background(), 100*time.Millisecond)
		defer cancel()
		_, err := Run(ctx, "x.sls", []byte("#!py\ndef run():\n    while True:\n        pass\n"), Globals{}, Limits{MaxSteps: 1 << 40})
		if !errors.Is(err, context.DeadlineExceeded) {
			t.Fatalf("err = %v", err)
		}
	})
}

func TestIsPy(t *testing.T) {
	for src, want := range map[string]bool{"#!py\n": true, "#! py \nx": true, "#!jinja|yaml\n": false, "#!pyobjects\n": false, "py\n": false, "": false} {
		if IsPy([]byte(src)) != want {
			t.Errorf("IsPy(%q) != %v", src, want)
		}
	}
}

func TestCache(t *testing.T) {
	var c Cache
	a, err := c.Compile("f.sls", []byte("def run():\n    return {}\n"))
	if err != nil {
		t.Fatal(err)
	}
	b, _ := c.Compile("f.sls", []byte("def run():\n    return {}\n"))
	d, _ := c.Compile("f.sls", []byte("def run():\n    return {'x': 1}\n"))
	if a != b || a == d {
		t.Fatal("cache keyed wrongly")
	}
}
