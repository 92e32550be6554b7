package xdsrelay

import (
	"os"
	"strings"
	"testing"
	"time"

	"github.com/atoll-mesh/atoll/internal/certs"
)

func TestValidate(t *testing.T) {
	files, _, err := certs.EnsureSelfSigned(t.TempDir(), []string{"localhost"}, time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	ca, err := os.ReadFile(files.CA)
	if err != nil {
		t.Fatal(err)
	}
	good := Config{Upstream: "atoll-zone.atoll-system.svc:5678", TokenFile: "/var/run/secrets/atoll.io/token"}
	for _, tc := range []struct {
		name string
		edit func(*Config)
		want []string // each in the error; none: valid
	}{
		{"plaintext", func(*Config) {}, nil},
		{"tls", func(c *Config) { c.CAPEM = ca }, nil},
		{"empty CA is plaintext", func(c *Config) { c.CAPEM = []byte{} }, nil},
		{"IP upstream", func(c *Config) { c.Upstream = "10.96.0.15:5678" }, nil},
		{"IPv6 upstream", func(c *Config) { c.Upstream = "[fd00::15]:5678" }, nil},
		{"max message size", func(c *Config) { c.MaxMessageSize = 1 << 20 }, nil},
		{"no upstream", func(c *Config) { c.Upstream = "" }, []string{"upstream is empty", "host:port of the zone's xDS server"}},
		{"upstream without port", func(c *Config) { c.Upstream = "atoll-zone" }, []string{`upstream "atoll-zone" is invalid`, "use host:port"}},
		{"upstream without host", func(c *Config) { c.Upstream = ":5678" }, []string{`upstream ":5678" is invalid`, "the host is empty"}},
		{"upstream port 0", func(c *Config) { c.Upstream = "zone:0" }, []string{`upstream "zone:0" is invalid`, "1-65535"}},
		{"upstream named port", func(c *Config) { c.Upstream = "zone:grpc" }, []string{`port "grpc" is not a number`}},
		{"CA not PEM", func(c *Config) { c.CAPEM = []byte("not a certificate") }, []string{"CA holds no PEM certificate", "or nothing for plaintext"}},
		{"no token file", func(c *Config) { c.TokenFile = "" }, []string{"token file is empty", "projected ServiceAccount token"}},
		{"negative max message size", func(c *Config) { c.MaxMessageSize = -1 }, []string{"max message size -1 is invalid", "use 0 for the default"}},
		{"every field", func(c *Config) { *c = Config{CAPEM: []byte("x"), MaxMessageSize: -1} },
			[]string{"upstream is empty", "CA holds no PEM", "token file is empty", "max message size -1"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			c := good
			tc.edit(&c)
			err := c.Validate()
			if len(tc.want) == 0 {
				if err != nil {
					t.Fatalf("Validate: %v, want nil", err)
				}
				return
			}
			if err == nil {
				t.Fatalf("Validate accepted %+v", c)
			}
			for _, w := range tc.want {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("Validate: %q, want it to say %q", err, w)
				}
			}
			if _, nerr := New(c); nerr == nil || nerr.Error() != err.Error() {
				t.Errorf("New: %v, want Validate's error", nerr)
			}
		})
	}
}

func TestDefaultMaxMessageSize(t *testing.T) {
	if DefaultMaxMessageSize < 64<<20 {
		t.Fatalf("DefaultMaxMessageSize is %d, want at least 64 MiB", DefaultMaxMessageSize)
	}
	if got := (Config{}).maxMessageSize(); got != DefaultMaxMessageSize {
		t.Fatalf("the limit with MaxMessageSize 0 is %d, want %d", got, DefaultMaxMessageSize)
	}
	if got := (Config{MaxMessageSize: 5}).maxMessageSize(); got != 5 {
		t.Fatalf("the limit with MaxMessageSize 5 is %d, want 5", got)
	}
}
