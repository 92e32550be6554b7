package global

import (
	"strings"
	"testing"
	"time"
)

func TestKDSLimitsAreValidated(t *testing.T) {
	cases := []struct {
		name string
		set  func(*KDS)
		want string
	}{
		{"no resources", func(k *KDS) { k.MaxResourcesPerZone = 0 }, "kds.maxResourcesPerZone: 0 must be at least 1"},
		{"no streams", func(k *KDS) { k.MaxStreams = 0 }, "kds.maxStreams"},
		{"no pending", func(k *KDS) { k.MaxPendingStreams = -1 }, "kds.maxPendingStreams: -1"},
		{"no pending per peer", func(k *KDS) { k.MaxPendingStreamsPerPeer = 0 }, "kds.maxPendingStreamsPerPeer"},
		{"no streams per connection", func(k *KDS) { k.MaxStreamsPerConnection = 0 }, "kds.maxStreamsPerConnection"},
		{"too many streams per connection", func(k *KDS) { k.MaxStreamsPerConnection = 1 << 33 }, "use at most 1000"},
		{"negative per peer", func(k *KDS) { k.MaxConnectionsPerPeer = -1 }, "kds.maxConnectionsPerPeer"},
		{"idle too short", func(k *KDS) { k.IdleConnectionTimeout = time.Millisecond }, "kds.idleConnectionTimeout"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			cfg := Default()
			c.set(&cfg.KDS)
			err := cfg.Validate()
			if err == nil || !strings.Contains(err.Error(), c.want) {
				t.Errorf("Validate: %v, want an error containing %q", err, c.want)
			}
		})
	}
	cfg := Default()
	cfg.KDS.MaxConnectionsPerPeer = 0 // no limit
	if err := cfg.Validate(); err != nil {
		t.Errorf("kds.maxConnectionsPerPeer 0 (no limit): %v", err)
	}
}
