package webhook

import (
	"crypto/hmac"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"mime"
	"net/url"
	"reflect"
	"strings"
	"testing"
)

// FuzzParseBody: the `post` of a webhook event, from JSON and from
// application/x-www-form-urlencoded bodies (GitHub's "payload=" form).
// Whatever arrives either fails with an error or yields plain JSON-shaped
// data; form fields come out exactly as net/url parses them, so nothing in
// a value is interpreted (no templates, no nesting from key syntax).
func FuzzParseBody(f *testing.F) {
	f.Add("application/x-www-form-urlencoded", []byte("payload=%7B%22ref%22%3A%22refs%2Fheads%2Fmain%22%7D"))
	f.Add("application/x-www-form-urlencoded", []byte("a=1&a=2&b[c]=%7B%7B+7*7+%7D%7D"))
	f.Add("application/x-www-form-urlencoded; charset=utf-8", []byte("%zz=1"))
	f.Add("application/json", []byte(`{"after":"0000000000000000000000000000000000000000","deleted":true}`))
	f.Add("application/json", []byte(`{"n":12345678901234567890,"f":1e400,"s":"{% raw %}"}`))
	f.Add("application/vnd.github+json", []byte(`[1] [2]`))
	f.Add("text/plain", []byte("{{ salt['cmd.run']('id') }}"))
	f.Add("multipart/form-data; boundary=x", []byte("--x--"))
	f.Add("", []byte{0xff})
	f.Fuzz(func(t *testing.T, ctype string, body []byte) {
		post, err := parseBody(ctype, body)
		if err != nil {
			if !strings.HasPrefix(err.Error(), "malformed ") {
				t.Fatalf("error does not say what was malformed: %v", err)
			}
			return
		}
		if _, err := json.Marshal(post); err != nil {
			t.Fatalf("post is not JSON-shaped: %v (%#v)", err, post)
		}
		if mt, _, err := mime.ParseMediaType(ctype); err != nil || mt != "application/x-www-form-urlencoded" {
			return
		}
		vals, err := url.ParseQuery(string(body))
		if err != nil {
			return
		}
		m, ok := post.(map[string]any)
		if !ok || len(m) != len(vals) {
			t.Fatalf("form %q gave %#v", body, post)
		}
		for k, vs := range vals {
			want := any(vs[0])
			if len(vs) > 1 {
				l := make([]any, len(vs))
				for i, v := range vs {
					l[i] = v
				}
				want = l
			}
			if !reflect.DeepEqual(m[k], want) {
				t.Fatalf("form field %q = %#v, want %#v", k, m[k], want)
			}
		}
	})
}

// FuzzVerifySignature: a signature header is accepted exactly when it is
// "sha256=" followed by the hex HMAC of the body (hex in either case, as
// GitHub documents lower case but hex decoders accept both), optionally
// surrounded by spaces. Wrong prefix, truncation, doubling: refused.
func FuzzVerifySignature(f *testing.F) {
	body := []byte(`{"zen":"Keep it logically awesome."}`)
	good := sign256(ghSecret, body)
	f.Add(body, good)
	f.Add(body, strings.ToUpper(good))
	f.Add(body, "sha256="+strings.ToUpper(strings.TrimPrefix(good, "sha256=")))
	f.Add(body, "sha1="+strings.TrimPrefix(good, "sha256="))
	f.Add(body, good[:len(good)-2])
	f.Add(body, good+", "+good)
	f.Add(body, "sha256 ="+strings.TrimPrefix(good, "sha256="))
	f.Add([]byte{}, "sha256=")
	f.Fuzz(func(t *testing.T, body []byte, header string) {
		got := VerifySignature([]byte(ghSecret), body, "sha256", header)
		mac := hmac.New(sha256.New, []byte(ghSecret))
		mac.Write(body)
		want := mac.Sum(nil)
		prefix, hexSig, ok := strings.Cut(strings.TrimSpace(header), "=")
		dec, err := hex.DecodeString(hexSig)
		valid := ok && prefix == "sha256" && err == nil && hmac.Equal(dec, want)
		if (got == "") != valid {
			t.Fatalf("VerifySignature(%q) = %q, valid=%v", header, got, valid)
		}
	})
}
