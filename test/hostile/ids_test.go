package hostile

import (
	"context"
	"io/fs"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/protobuf/encoding/protowire"

	pb "github.com/brine-cm/brine/proto/brinev1"
)

// hostileIDs are CVE-2017-12791 and CVE-2017-14695's minion ids and their
// neighbours, with the reason the master must give.
var hostileIDs = []struct {
	name, id, reason string
}{
	{"parent traversal", "../../etc/x", "starts with '.'"},
	{"inner traversal", "web/../../../etc/x", "contains '..'"},
	{"slash", "a/b", "path separator"},
	{"backslash", `a\b`, "path separator"},
	{"absolute", "/etc/passwd", "path separator"},
	{"dot", ".", "starts with '.'"},
	{"dotdot", "..", "starts with '.'"},
	{"hidden", ".ssh", "starts with '.'"},
	{"empty", "", "empty"},
	{"300 bytes", strings.Repeat("a", 300), "longer than 250 bytes"},
	{"NUL", "web1\x00evil", "control character"},
	{"newline", "web1\nweb2", "control character"},
	{"escape", "web1\x1b[2J", "control character"},
}

// TestMinionIDPathTraversalRefusedAtTheDoor (CVE-2017-12791, CVE-2017-14695)
// presents each hostile id in a Hello, with a valid proof for it, to a
// master that auto-accepts every key (the worst case: an id that got past
// the door would be written at once). Each is refused with the reason,
// nothing is recorded, and no file appears outside data_dir.
func TestMinionIDPathTraversalRefusedAtTheDoor(t *testing.T) {
	t.Parallel()
	pm := startPortMaster(t, "auto_accept: true\n")
	for _, tc := range hostileIDs {
		t.Run(tc.name, func(t *testing.T) {
			rc := dialRaw(t, pm.addr)
			me := newIdentity(tc.id)
			ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
			defer cancel()
			_, _, err := rc.handshake(ctx, tc.id, me.pub, me.priv)
			if codeOf(err) != codes.InvalidArgument || !strings.Contains(err.Error(), tc.reason) || !strings.Contains(err.Error(), "invalid minion id") {
				t.Fatalf("id %q: got %v, want InvalidArgument naming %q", tc.id, err, tc.reason)
			}
		})
	}
	t.Run("non-UTF-8", func(t *testing.T) {
		// Protobuf refuses to marshal such a string, so the Hello is built
		// by hand: field 1 (id) holds 0xff 0xfe, field 2 a public key.
		me := newIdentity("x")
		var b []byte
		b = protowire.AppendTag(b, 1, protowire.BytesType)
		b = protowire.AppendBytes(b, []byte("web\xff\xfe1"))
		b = protowire.AppendTag(b, 2, protowire.BytesType)
		b = protowire.AppendBytes(b, me.pub)
		var msg []byte
		msg = protowire.AppendTag(msg, 1, protowire.BytesType) // MinionMessage.hello
		msg = protowire.AppendBytes(msg, b)
		rc := dialRaw(t, pm.addr)
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		st, err := rc.cc.NewStream(ctx, &grpc.StreamDesc{ServerStreams: true, ClientStreams: true}, pb.MinionLink_Connect_FullMethodName, grpc.ForceCodec(rawCodec{}))
		if err != nil {
			t.Fatal(err)
		}
		if err := st.SendMsg(rawBytes(msg)); err != nil {
			t.Fatal(err)
		}
		err = st.RecvMsg(&pb.MasterMessage{})
		if err == nil || !strings.Contains(err.Error(), "UTF-8") {
			t.Fatalf("non-UTF-8 id: got %v, want a refusal naming UTF-8", err)
		}
	})
	// The control case: the same door lets a good id in and records it,
	// so the emptiness checked below means something.
	rc := dialRaw(t, pm.addr)
	good := newIdentity("good-1")
	if _, w, err := rc.handshake(context.Background(), good.id, good.pub, good.priv); err != nil || w.GetKeyState() != "accepted" {
		t.Fatalf("good id: %v %v", w, err)
	}

	// The real minion refuses such ids itself, before it dials anyone.
	for _, tc := range hostileIDs {
		if strings.ContainsRune(tc.id, 0) || tc.id == "" {
			continue // argv cannot carry NUL; an empty --id means "use the hostname"
		}
		dir := filepath.Join(pm.root, "minion-bad")
		cmd := exec.Command(filepath.Join(pm.bin, "brine-minion"), "--config", "/dev/null", "--id", tc.id, "--master", pm.addr, "--data-dir", dir)
		out, err := cmd.CombinedOutput()
		if err == nil || !strings.Contains(string(out), "invalid minion id") || !strings.Contains(string(out), tc.reason) {
			t.Errorf("brine-minion --id %q: err %v, output %q", tc.id, err, out)
		}
	}

	keys := pm.keys()
	total := 0
	for _, ids := range keys {
		total += len(ids)
	}
	if total != 1 || len(keys["accepted"]) != 1 || keys["accepted"][0] != "good-1" {
		t.Fatalf("keys after the hostile ids: %v; want only good-1", keys)
	}
	if got := pm.metric("brine_minion_refused_total", `reason="bad_id"`); got != float64(len(hostileIDs)) {
		t.Errorf("brine_minion_refused_total{reason=bad_id} = %v, want %d", got, len(hostileIDs))
	}

	// Walk the whole test directory: every file lies under the master's
	// data_dir (or is the test's own config and logs), and no name in it
	// came from a refused id.
	allowed := []string{pm.dataDir, filepath.Join(pm.root, "master.yaml"), filepath.Join(pm.root, "master.log")}
	err := filepath.WalkDir(pm.root, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if d.IsDir() {
			return nil
		}
		inside := false
		for _, a := range allowed {
			if p == a || strings.HasPrefix(p, a+string(os.PathSeparator)) {
				inside = true
			}
		}
		if !inside {
			t.Errorf("file outside data_dir: %s", p)
		}
		for _, tc := range hostileIDs {
			if base := filepath.Base(tc.id); d.Name() == tc.id || d.Name() == tc.id+".json" || (base != "." && base != ".." && d.Name() == base) {
				t.Errorf("file named after a refused id: %s", p)
			}
		}
		if d.Name() == "x" || d.Name() == "passwd" {
			t.Errorf("traversal target written: %s", p)
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
}
