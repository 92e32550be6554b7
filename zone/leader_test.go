package zone

import (
	"context"
	"testing"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"
)

// fakeElection leads while its Run runs lead.
type fakeElection struct{ soleReplica }

func (f *fakeElection) Identity() string { return "zone-1-0_ab12" }
func (f *fakeElection) Holder() string   { return "zone-1-1_cd34" }

func TestLeaderStatusAndMetric(t *testing.T) {
	if st := leaderStatus(&soleReplica{}); st != nil {
		t.Errorf("a sole replica reports %+v, want no leader status", st)
	}
	e := &fakeElection{}
	reg := prometheus.NewRegistry()
	registerLeaderMetric(reg, e)
	check := func(leading bool, metric float64) {
		t.Helper()
		st := leaderStatus(e)
		if st == nil || st.Leading != leading || st.Identity != "zone-1-0_ab12" || st.Holder != "zone-1-1_cd34" {
			t.Errorf("leader status %+v, want leading %v, identity and holder", st, leading)
		}
		got, err := testutil.GatherAndCount(reg, "atoll_zone_leader")
		if err != nil || got != 1 {
			t.Fatalf("atoll_zone_leader: %d series, %v", got, err)
		}
		mfs, err := reg.Gather()
		if err != nil {
			t.Fatal(err)
		}
		if v := mfs[0].GetMetric()[0].GetGauge().GetValue(); v != metric {
			t.Errorf("atoll_zone_leader = %v, want %v", v, metric)
		}
	}
	check(false, 0)
	if err := e.Run(context.Background(), func(context.Context) error {
		check(true, 1)
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	check(false, 0)
}
