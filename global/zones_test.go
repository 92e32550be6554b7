package global

import (
	"context"
	"testing"
	"time"

	"google.golang.org/protobuf/types/known/timestamppb"

	"github.com/atoll-mesh/atoll/api/v1alpha1"
	"github.com/atoll-mesh/atoll/internal/resource"
	"github.com/atoll-mesh/atoll/internal/store/memstore"
)

// GET /zones says each zone's status in one word: Online while its session
// lives, Disabled once an operator disables it (connected or not), Offline
// when it is enabled and its session ended.
func TestZoneViewStatus(t *testing.T) {
	ctx := context.Background()
	st := memstore.New()
	if _, err := st.Create(ctx, &resource.Resource{Meta: resource.Meta{Type: resource.ZoneType, Name: "zone-1"}, Spec: &v1alpha1.Zone{}}); err != nil {
		t.Fatal(err)
	}
	now := timestamppb.New(time.Now())
	sub := &v1alpha1.KDSSubscription{Id: "s1", ConnectTime: now, LastSeen: now}
	insight, err := st.Create(ctx, &resource.Resource{Meta: resource.Meta{Type: resource.ZoneInsightType, Name: "zone-1"},
		Spec: &v1alpha1.ZoneInsight{Subscriptions: []*v1alpha1.KDSSubscription{sub}}})
	if err != nil {
		t.Fatal(err)
	}
	if v := zoneView(t, st, "zone-1"); v.Status != ZoneOnline {
		t.Fatalf("a connected zone: status %q, want %q", v.Status, ZoneOnline)
	}
	setEnabled := func(enabled bool) {
		t.Helper()
		z, err := st.Get(ctx, resource.Key{Type: resource.ZoneType, Name: "zone-1"})
		if err != nil {
			t.Fatal(err)
		}
		z.Spec.(*v1alpha1.Zone).Enabled = &enabled
		if _, err := st.Update(ctx, z); err != nil {
			t.Fatal(err)
		}
	}
	setEnabled(false)
	if v := zoneView(t, st, "zone-1"); v.Status != ZoneDisabled || !v.Online {
		t.Fatalf("a disabled, connected zone: status %q online %t, want %q and online", v.Status, v.Online, ZoneDisabled)
	}
	insight.Spec.(*v1alpha1.ZoneInsight).GetSubscriptions()[0].DisconnectTime = timestamppb.Now()
	if _, err := st.Update(ctx, insight); err != nil {
		t.Fatal(err)
	}
	if v := zoneView(t, st, "zone-1"); v.Status != ZoneDisabled {
		t.Fatalf("a disabled, disconnected zone: status %q, want %q", v.Status, ZoneDisabled)
	}
	setEnabled(true)
	if v := zoneView(t, st, "zone-1"); v.Status != ZoneOffline {
		t.Fatalf("an enabled, disconnected zone: status %q, want %q", v.Status, ZoneOffline)
	}
}
