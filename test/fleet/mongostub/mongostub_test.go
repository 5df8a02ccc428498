package mongostub

import (
	"context"
	"errors"
	"net"
	"testing"
	"time"

	"github.com/brine-cm/brine/pkg/state/mongodb"
)

// The official driver, through brine's own mongodb client, sees a member
// that is not initiated, initiates it, and reads the config back.
func TestDriverAgainstStub(t *testing.T) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	var s Server
	go s.Serve(ctx, l)

	c, err := mongodb.Dial(ctx, mongodb.DialOptions{Host: l.Addr().String(), Timeout: 5 * time.Second})
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close(ctx)
	if _, err := c.Config(ctx); !errors.Is(err, mongodb.ErrNotInitialized) {
		t.Fatalf("fresh member: %v, want ErrNotInitialized", err)
	}
	want := mongodb.Config{"_id": "rs0", "version": int64(1), "members": []any{
		map[string]any{"_id": int64(0), "host": "db1:27017"},
		map[string]any{"_id": int64(1), "host": "db2:27017"},
	}}
	if err := c.Initiate(ctx, want); err != nil {
		t.Fatal(err)
	}
	got, err := c.Config(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if got["_id"] != "rs0" || len(got["members"].([]any)) != 2 {
		t.Fatalf("config read back: %v", got)
	}
	if err := c.Initiate(ctx, want); err == nil {
		t.Fatal("second initiate accepted")
	}
	seen := map[string]bool{}
	for _, n := range s.Commands() {
		seen[n] = true
	}
	for _, n := range []string{"replSetGetConfig", "replSetInitiate"} {
		if !seen[n] {
			t.Errorf("command %s not seen: %v", n, s.Commands())
		}
	}
}

// FuzzMessage feeds arbitrary message bodies to both parsers: they must
// answer or refuse, never panic or read out of bounds.
func FuzzMessage(f *testing.F) {
	f.Add(true, []byte{0, 0, 0, 0, 0, 0x0d, 0, 0, 0, 0x10, 'p', 'i', 'n', 'g', 0, 1, 0, 0, 0, 0})
	f.Add(false, []byte{0, 0, 0, 0, 'a', '.', '$', 'c', 'm', 'd', 0, 0, 0, 0, 0, 1, 0, 0, 0, 0x05, 0, 0, 0, 0})
	f.Add(true, []byte{1, 0, 0, 0, 0, 5, 0, 0, 0, 0, 0, 0, 0, 0})
	f.Add(true, []byte{0, 0, 0, 0, 1, 0xff, 0xff, 0xff, 0x7f})
	f.Fuzz(func(t *testing.T, isMsg bool, body []byte) {
		var s Server
		if isMsg {
			s.msg(body, 1, 1)
		} else {
			s.query(body, 1, 1)
		}
	})
}
