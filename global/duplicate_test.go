package global

import (
	"context"
	"io"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus/testutil"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/atoll-mesh/atoll/internal/store/memstore"
	"github.com/atoll-mesh/atoll/kds"
)

// ended is a session's cancel that records it was called.
func ended(flag *bool) context.CancelFunc { return func() { *flag = true } }

// A second process connecting with a connected zone's name is refused with
// a message naming the connected one and what to do; the connected session
// is left alone and the refusal counted. The same process reconnecting
// replaces its own session, and once a zone's session ended, a newcomer is
// accepted.
func TestClaimRefusesASecondProcessOfAZone(t *testing.T) {
	z := replica(t, memstore.New(), "replica-a")
	first := kds.Peer{Instance: "host-a-41-1a2b", Addr: "127.0.0.1:41234"}
	second := kds.Peer{Instance: "host-b-77-3c4d", Addr: "127.0.0.1:50000"}

	var firstEnded bool
	s1 := newSession()
	if err := z.Claim("zone-1", first, s1, ended(&firstEnded)); err != nil {
		t.Fatalf("first session: %v", err)
	}
	err := z.Claim("zone-1", second, newSession(), func() {})
	if status.Code(err) != codes.AlreadyExists {
		t.Fatalf("second process: %v, want AlreadyExists", err)
	}
	msg := status.Convert(err).Message()
	for _, want := range []string{"zone zone-1 is already connected from 127.0.0.1:41234 (since ", "two zone processes must not share a name",
		"stop the other, or give this one another --zone name", "silent for 30s"} {
		if !strings.Contains(msg, want) {
			t.Errorf("refusal %q does not say %q", msg, want)
		}
	}
	if firstEnded {
		t.Error("the connected zone's session was ended by the refused newcomer")
	}
	if got := testutil.ToFloat64(z.duplicates.WithLabelValues("zone-1")); got != 1 {
		t.Errorf("atoll_global_zone_duplicate_refusals_total{zone=zone-1} = %v, want 1", got)
	}

	// The first process reconnects before its old stream ended here.
	var againEnded bool
	s2 := newSession()
	if err := z.Claim("zone-1", first, s2, ended(&againEnded)); err != nil {
		t.Fatalf("the connected process reconnecting: %v, want its new session accepted", err)
	}
	if !firstEnded {
		t.Error("the reconnecting process's old session was not ended")
	}
	z.Ended("zone-1", s1, io.EOF) // the replaced session's end changes nothing
	if err := z.Claim("zone-1", second, newSession(), func() {}); status.Code(err) != codes.AlreadyExists {
		t.Fatalf("second process after the first reconnected: %v, want AlreadyExists", err)
	}

	// The first process stops: the second takes over.
	z.Ended("zone-1", s2, io.EOF)
	if err := z.Claim("zone-1", second, newSession(), func() {}); err != nil {
		t.Fatalf("second process after the first stopped: %v, want accepted", err)
	}
	if got := testutil.ToFloat64(z.duplicates.WithLabelValues("zone-1")); got != 2 {
		t.Errorf("refusals = %v, want 2", got)
	}
}

// A session its zone has been silent on for silentAfter (a half-dead
// stream: the process or its network is gone, the transport has not
// noticed yet) is replaced by a newcomer, not defended.
func TestClaimReplacesASilentSession(t *testing.T) {
	z := replica(t, memstore.New(), "replica-a")
	z.silentAfter = time.Nanosecond // every session is silent for longer
	var oldEnded bool
	if err := z.Claim("zone-1", kds.Peer{Instance: "a"}, newSession(), ended(&oldEnded)); err != nil {
		t.Fatal(err)
	}
	if err := z.Claim("zone-1", kds.Peer{Instance: "b"}, newSession(), func() {}); err != nil {
		t.Fatalf("newcomer after the old session went silent: %v, want accepted", err)
	}
	if !oldEnded {
		t.Error("the silent session was not ended")
	}
}

// A session that replaced another and ended before it started (its Hello
// could not be sent) still records the replaced session's end: the zone
// is not shown connected through a session that is gone.
func TestAReplacementEndingBeforeItStartsClosesTheReplacedSession(t *testing.T) {
	st := memstore.New()
	z := replica(t, st, "replica-a")
	old := newSession()
	start(t, z, "zone-1", old)
	replacement := newSession()
	if err := z.Claim("zone-1", kds.Peer{Instance: "zone-process"}, replacement, func() {}); err != nil {
		t.Fatal(err)
	}
	z.Ended("zone-1", replacement, io.EOF)
	z.Ended("zone-1", old, io.EOF) // replaced: changes nothing
	subs := insightOf(t, st, "zone-1")
	if len(subs) != 1 || subs[0].GetDisconnectTime() == nil {
		t.Fatalf("subscriptions = %v, want the replaced session's, closed", subs)
	}
}
