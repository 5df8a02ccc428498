package exec

import (
	"reflect"
	"testing"
)

func TestSplitShellWords(t *testing.T) {
	tests := []struct {
		in      string
		want    []string
		wantErr string
	}{
		{`a b  c`, []string{"a", "b", "c"}, ""},
		{`'a b' "c d"`, []string{"a b", "c d"}, ""},
		{`a"b c"d`, []string{"ab cd"}, ""},
		{`a "" b`, []string{"a", "", "b"}, ""},
		{`"a\"b\\c\d"`, []string{`a"b\c\d`}, ""},
		{`'a\b'`, []string{`a\b`}, ""},
		{`a\ b \$x`, []string{"a b", "$x"}, ""},
		{`$(id) ; | &`, []string{"$(id)", ";", "|", "&"}, ""},
		{"", nil, ""},
		{`a\`, nil, "trailing backslash"},
		{`'a`, nil, "no closing single quotation"},
		{`"a`, nil, "no closing double quotation"},
	}
	for _, tt := range tests {
		got, err := splitShellWords(tt.in)
		if tt.wantErr != "" {
			if err == nil || !contains(err.Error(), tt.wantErr) {
				t.Errorf("%q: err = %v", tt.in, err)
			}
			continue
		}
		if err != nil || !reflect.DeepEqual(got, tt.want) {
			t.Errorf("%q: got %q, %v; want %q", tt.in, got, err, tt.want)
		}
	}
}

func contains(s, sub string) bool {
	return len(sub) == 0 || (len(s) >= len(sub) && indexOf(s, sub) >= 0)
}

func indexOf(s, sub string) int {
	for i := 0; i+len(sub) <= len(s); i++ {
		if s[i:i+len(sub)] == sub {
			return i
		}
	}
	return -1
}

// FuzzSplitShellWords: splitting never panics, and quoting the words
// back and splitting again gives the same words.
func FuzzSplitShellWords(f *testing.F) {
	for _, s := range []string{`a 'b c' "d\"e"`, `x\ y`, `"`, `'`, `\`, "a\tb\nc", "\xff'\x00'"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, in string) {
		words, err := splitShellWords(in)
		if err != nil {
			return
		}
		var line string
		for i, w := range words {
			if i > 0 {
				line += " "
			}
			line += quoteShellWord(w)
		}
		again, err := splitShellWords(line)
		if err != nil {
			t.Fatalf("re-split of %q: %v", line, err)
		}
		if len(words) == 0 && len(again) == 0 {
			return
		}
		if !reflect.DeepEqual(words, again) {
			t.Fatalf("%q -> %q -> %q -> %q", in, words, line, again)
		}
	})
}

// FuzzBindArgs: binding arbitrary JSON-shaped input never panics and, on
// success, every declared parameter has a value of its declared type.
func FuzzBindArgs(f *testing.F) {
	f.Add("x", 1.5, true, "k", "v")
	f.Add("", -3.0, false, "__jid__", "1")
	f.Add("10", 2.0, true, "count", "many")
	doc := Doc{Args: []ArgDoc{
		{Name: "name", Type: Str, Required: true},
		{Name: "count", Type: Int, Default: 1},
		{Name: "force", Type: Bool, Default: false},
	}, Varargs: "rest"}
	f.Fuzz(func(t *testing.T, s string, n float64, b bool, k, v string) {
		a, err := BindArgs("f", doc, []any{s, n, b, v}, map[string]any{k: v})
		if err != nil {
			return
		}
		_ = a.Str("name")
		_ = a.Int("count")
		_ = a.Bool("force")
	})
}
