package master

import (
	"testing"
	"time"
)

// TestHandshakeWait: an idle master gives a handshake message 15 s; each
// stream in its handshake at the same time adds its share, up to the cap,
// so a storm's backlog does not time every minion out.
func TestHandshakeWait(t *testing.T) {
	cases := []struct {
		inFlight int64
		want     time.Duration
	}{
		{0, 15 * time.Second},
		{1, 15*time.Second + 5*time.Millisecond},
		{1000, 20 * time.Second},
		{10000, 65 * time.Second},
		{1_000_000, 2 * time.Minute},
	}
	for _, tc := range cases {
		if got := handshakeWait(tc.inFlight); got != tc.want {
			t.Errorf("handshakeWait(%d) = %s, want %s", tc.inFlight, got, tc.want)
		}
	}
}
