package mine

import (
	"reflect"
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
