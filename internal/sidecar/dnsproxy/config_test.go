package dnsproxy

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

func validConfig() Config {
	c := Default()
	c.Mesh = "127.0.0.1:5653"
	c.Upstream = "10.96.0.10:53"
	return c
}

func TestValidate(t *testing.T) {
	if err := validConfig().Validate(); err != nil {
		t.Fatalf("valid config: %v", err)
	}
	tests := []struct {
		name   string
		modify func(*Config)
		want   string
	}{
		{"listen without port", func(c *Config) { c.Listen = "127.0.0.1" }, "listen address"},
		{"listen bad port", func(c *Config) { c.Listen = "127.0.0.1:99999" }, "listen address"},
		{"empty domain", func(c *Config) { c.Domain = "" }, "domain is empty"},
		{"bad domain", func(c *Config) { c.Domain = "." }, "domain \".\" is invalid"},
		{"empty mesh", func(c *Config) { c.Mesh = "" }, "mesh address is empty"},
		{"mesh without port", func(c *Config) { c.Mesh = "10.0.0.1" }, "mesh address \"10.0.0.1\""},
		{"mesh port 0", func(c *Config) { c.Mesh = "10.0.0.1:0" }, "mesh address"},
		{"empty upstream", func(c *Config) { c.Upstream = "" }, "upstream address is empty"},
		{"upstream without host", func(c *Config) { c.Upstream = ":53" }, "upstream address \":53\""},
		{"zero timeout", func(c *Config) { c.Timeout = 0 }, "timeout"},
		{"negative timeout", func(c *Config) { c.Timeout = -time.Second }, "timeout"},
		{"zero in flight", func(c *Config) { c.MaxInFlight = 0 }, "max in flight"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c := validConfig()
			tt.modify(&c)
			err := c.Validate()
			if err == nil {
				t.Fatal("Validate accepted the config")
			}
			if !strings.Contains(err.Error(), tt.want) {
				t.Fatalf("error %q does not name %q", err, tt.want)
			}
			if _, err := New(c, nil); err == nil {
				t.Fatal("New accepted the config")
			}
		})
	}
}

func TestUpstreamFromResolvConf(t *testing.T) {
	tests := []struct {
		name, content, want, wantErr string
	}{
		{
			name: "kubernetes pod",
			content: "search default.svc.cluster.local svc.cluster.local cluster.local\n" +
				"nameserver 10.96.0.10\noptions ndots:5\n",
			want: "10.96.0.10:53",
		},
		{
			name:    "comments and several nameservers",
			content: "# nameserver 1.1.1.1\n; nameserver 8.8.8.8\n\n  nameserver 10.0.0.2 # the first\nnameserver 10.0.0.3\n",
			want:    "10.0.0.2:53",
		},
		{name: "ipv6", content: "nameserver ::1\n", want: "[::1]:53"},
		{name: "ipv6 first", content: "nameserver fd00::a\nnameserver 10.0.0.3\n", want: "[fd00::a]:53"},
		{name: "none", content: "search cluster.local\n# nameserver 10.0.0.1\n", wantErr: "has no nameserver line"},
		{name: "empty file", content: "", wantErr: "has no nameserver line"},
		{name: "no address", content: "nameserver\n", wantErr: "line 1: nameserver has no address"},
		{name: "not an IP", content: "search x\nnameserver dns.example\n", wantErr: "line 2: nameserver \"dns.example\" is not an IP address"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			path := filepath.Join(t.TempDir(), "resolv.conf")
			if err := os.WriteFile(path, []byte(tt.content), 0o600); err != nil {
				t.Fatal(err)
			}
			got, err := UpstreamFromResolvConf(path)
			if tt.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
					t.Fatalf("got %q, %v; want an error containing %q", got, err, tt.wantErr)
				}
				return
			}
			if err != nil || got != tt.want {
				t.Fatalf("got %q, %v; want %q", got, err, tt.want)
			}
		})
	}
	if _, err := UpstreamFromResolvConf(filepath.Join(t.TempDir(), "missing")); err == nil {
		t.Fatal("a missing file gave no error")
	}
}
