package mine

import (
	"math"
	"reflect"
	"strings"
	"testing"
)

func TestEncodeDecode(t *testing.T) {
	tests := []struct {
		name             string
		value            any
		tgt, tgtType     string
		wantWrapped      bool
		wantTgt, wantTyp string
	}{
		{name: "bare", value: []any{"198.18.0.1"}},
		{name: "acl default type", value: "x", tgt: "web*", wantWrapped: true, wantTgt: "web*", wantTyp: "glob"},
		{name: "acl list", value: 1.0, tgt: "a,b", tgtType: "list", wantWrapped: true, wantTgt: "a,b", wantTyp: "list"},
		{name: "type without tgt is dropped", value: "x", tgtType: "grain"},
		// A function that happens to return the wrapper's shape must not
		// be read as metadata on the master.
		{name: "lookalike value", value: map[string]any{WrapValueKey: "inner", WrapTgtKey: "evil*"}, wantWrapped: true},
		{name: "map with extra keys is plain", value: map[string]any{WrapValueKey: 1.0, "other": 2.0}},
		{name: "nil", value: nil},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			enc := Encode(tt.value, tt.tgt, tt.tgtType)
			if got := isWrapper(enc); got != tt.wantWrapped {
				t.Fatalf("wrapped = %v, want %v (%#v)", got, tt.wantWrapped, enc)
			}
			v, tgt, typ := Decode(enc)
			if !reflect.DeepEqual(v, tt.value) || tgt != tt.wantTgt || typ != tt.wantTyp {
				t.Fatalf("Decode(Encode) = %#v %q %q, want %#v %q %q", v, tgt, typ, tt.value, tt.wantTgt, tt.wantTyp)
			}
		})
	}
}

func TestUpdateEvent(t *testing.T) {
	if _, _, ok := UpdateEvent("web1", nil); ok {
		t.Fatal("no changes must not produce an event")
	}
	tag, data, ok := UpdateEvent("web1", []string{"network.ip_addrs", "web_ip"})
	if !ok || tag != "mine/web1/update" {
		t.Fatalf("tag %q ok %v", tag, ok)
	}
	want := map[string]any{"functions": []any{"network.ip_addrs", "web_ip"}}
	if !reflect.DeepEqual(data, want) {
		t.Fatalf("data %#v, want %#v", data, want)
	}
}

func TestNormalize(t *testing.T) {
	type point struct {
		X int `json:"x"`
	}
	tests := []struct {
		name    string
		in      any
		want    any
		wantErr string
	}{
		{"ints become floats", map[string]any{"a": 1, "b": []any{int64(2), uint64(3), int32(4)}}, map[string]any{"a": 1.0, "b": []any{2.0, 3.0, 4.0}}, ""},
		{"string slice", []string{"x", "y"}, []any{"x", "y"}, ""},
		{"struct via json", []any{point{X: 5}}, []any{map[string]any{"x": 5.0}}, ""},
		{"map of string slices via json", map[string][]string{"eth0": {"198.18.0.1"}}, map[string]any{"eth0": []any{"198.18.0.1"}}, ""},
		{"float32", float32(0.5), 0.5, ""},
		{"nan", map[string]any{"load": math.NaN()}, nil, `"load": value NaN`},
		{"channel", []any{make(chan int)}, nil, "not JSON-serializable"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := normalize(tt.in)
			if tt.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
					t.Fatalf("err = %v, want %q", err, tt.wantErr)
				}
				return
			}
			if err != nil || !reflect.DeepEqual(got, tt.want) {
				t.Fatalf("normalize = %#v, %v; want %#v", got, err, tt.want)
			}
		})
	}
	// The result must not alias the input: the store keeps it.
	in := map[string]any{"l": []any{"a"}}
	out, _ := normalize(in)
	in["l"].([]any)[0] = "changed"
	if out.(map[string]any)["l"].([]any)[0] != "a" {
		t.Fatal("normalize aliased its input")
	}
}
