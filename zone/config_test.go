package zone

import (
	"bytes"
	"reflect"
	"strings"
	"testing"
	"time"

	"go.yaml.in/yaml/v3"
)

// TestDefaultYAMLMatchesDefault keeps the committed defaults file honest: it
// must hold every setting, and nothing but Default().
func TestDefaultYAMLMatchesDefault(t *testing.T) {
	var got Config
	dec := yaml.NewDecoder(bytes.NewReader(DefaultYAML))
	dec.KnownFields(true)
	if err := dec.Decode(&got); err != nil {
		t.Fatalf("defaults.yaml does not decode into Config: %v", err)
	}
	if want := Default(); !reflect.DeepEqual(got, want) {
		t.Errorf("defaults.yaml = %+v\nDefault()     = %+v", got, want)
	}

	// Every field of Config must be spelled out, so the file documents all
	// settings: decoding it over non-zero values must overwrite them all.
	filled := Config{Zone: "x", Mode: "x", APIAddr: "x", DataDir: "x", GlobalAddress: "x", GlobalTokenFile: "x"}
	filled.Log.Level, filled.Log.Format = "x", "x"
	if err := yaml.Unmarshal(DefaultYAML, &filled); err != nil {
		t.Fatalf("defaults.yaml: %v", err)
	}
	if want := Default(); !reflect.DeepEqual(filled, want) {
		t.Errorf("defaults.yaml leaves settings out:\ngot  %+v\nwant %+v", filled, want)
	}
}

func TestDefaultNeedsAZoneName(t *testing.T) {
	err := Default().Validate()
	if err == nil || !strings.Contains(err.Error(), "zone") {
		t.Fatalf("Default().Validate() = %v, want an error naming zone", err)
	}
}

func TestValidate(t *testing.T) {
	tests := []struct {
		name string
		edit func(c *Config)
		// want are substrings of the error; none means the config is valid.
		want []string
	}{
		{name: "defaults with a zone name", edit: func(*Config) {}},
		{name: "with a global", edit: func(c *Config) { c.GlobalAddress = "grpcs://global.example.com:5685" }},
		{name: "with a plaintext global allowed", edit: func(c *Config) { c.GlobalAddress, c.KDSInsecure = "grpc://127.0.0.1:5685", true }},
		{name: "plaintext global not allowed", edit: func(c *Config) { c.GlobalAddress = "grpc://127.0.0.1:5685" }, want: []string{"globalAddress", "--kds-insecure"}},
		{name: "insecure with a TLS global", edit: func(c *Config) { c.GlobalAddress, c.KDSInsecure = "grpcs://127.0.0.1:5685", true }, want: []string{"kdsInsecure"}},
		{name: "ingress port 0", edit: func(c *Config) { c.Ingress.Port = 0 }, want: []string{"ingress.port"}},
		{name: "xDS over TLS with names", edit: func(c *Config) { c.XDS.TLS, c.XDS.TLSSANs = true, []string{"zone-1.example", "10.0.0.5"} }},
		{name: "xDS names without TLS", edit: func(c *Config) { c.XDS.TLSSANs = []string{"zone-1.example"} }, want: []string{"xds.tlsSANs", "xds.tls"}},
		{name: "xDS name with a port", edit: func(c *Config) { c.XDS.TLS, c.XDS.TLSSANs = true, []string{"zone-1.example:5678"} }, want: []string{"xds.tlsSANs[0]"}},
		{name: "xDS debounce too long", edit: func(c *Config) { c.XDS.Debounce = time.Second }, want: []string{"xds.debounce", "50ms"}},
		{name: "xDS debounce zero", edit: func(c *Config) { c.XDS.Debounce = 0 }, want: []string{"xds.debounce"}},
		{name: "empty zone", edit: func(c *Config) { c.Zone = "" }, want: []string{"zone", "--zone"}},
		{name: "invalid zone name", edit: func(c *Config) { c.Zone = "Zone_1" }, want: []string{"zone", `"Zone_1"`}},
		{name: "kubernetes mode", edit: func(c *Config) { c.Mode = ModeKubernetes }},
		{name: "kubernetes namespace invalid", edit: func(c *Config) { c.Mode, c.Kubernetes.Namespace = ModeKubernetes, "Atoll_System" }, want: []string{"kubernetes.namespace", `"Atoll_System"`}},
		{name: "kubernetes namespace ignored in universal mode", edit: func(c *Config) { c.Kubernetes.Namespace = "Atoll_System" }},
		{name: "kubernetes context without kubeconfig", edit: func(c *Config) { c.Mode, c.Kubernetes.Context = ModeKubernetes, "kind-zone-1" }, want: []string{"kubernetes.context", "--kubeconfig"}},
		{name: "injector enabled", edit: func(c *Config) {
			c.Mode, c.Kubernetes.Injector.Addr, c.Kubernetes.Injector.XDSAddress = ModeKubernetes, ":5443", "atoll-zone.atoll-system.svc:5678"
			c.Kubernetes.Injector.DNSAddress = "atoll-zone-dns.atoll-system.svc:53"
		}},
		{name: "injector without a DNS address", edit: func(c *Config) {
			c.Mode, c.Kubernetes.Injector.Addr, c.Kubernetes.Injector.XDSAddress = ModeKubernetes, ":5443", "zone.svc:5678"
		}, want: []string{"kubernetes.injector.dnsAddress: is required", "--injector-dns-address"}},
		{name: "injector with a CA file but plaintext xDS", edit: func(c *Config) {
			c.Mode, c.Kubernetes.Injector.Addr, c.Kubernetes.Injector.XDSAddress = ModeKubernetes, ":5443", "zone.svc:5678"
			c.Kubernetes.Injector.DNSAddress, c.Kubernetes.Injector.XDSCAFile = "dns.svc:53", "/tls/ca.pem"
		}, want: []string{"kubernetes.injector.xdsCAFile", "--xds-tls"}},
		{name: "injector with a CA file that is not there", edit: func(c *Config) {
			c.Mode, c.Kubernetes.Injector.Addr, c.Kubernetes.Injector.XDSAddress = ModeKubernetes, ":5443", "zone.svc:5678"
			c.Kubernetes.Injector.DNSAddress, c.Kubernetes.Injector.XDSCAFile, c.XDS.TLS = "dns.svc:53", "/nonexistent/ca.pem", true
		}, want: []string{"kubernetes.injector.xdsCAFile: xds CA file: open /nonexistent/ca.pem"}},
		{name: "injector with xDS TLS, the zone's own CA and a relative data dir", edit: func(c *Config) {
			c.Mode, c.Kubernetes.Injector.Addr, c.Kubernetes.Injector.XDSAddress = ModeKubernetes, ":5443", "zone.svc:5678"
			c.Kubernetes.Injector.DNSAddress, c.XDS.TLS, c.DataDir = "dns.svc:53", true, ".run/zone-1"
		}},
		{name: "injector with xDS TLS and the zone's own CA", edit: func(c *Config) {
			c.Mode, c.Kubernetes.Injector.Addr, c.Kubernetes.Injector.XDSAddress = ModeKubernetes, ":5443", "zone.svc:5678"
			c.Kubernetes.Injector.DNSAddress, c.XDS.TLS = "dns.svc:53", true
		}},
		{name: "injector without an xDS address", edit: func(c *Config) { c.Mode, c.Kubernetes.Injector.Addr = ModeKubernetes, ":5443" },
			want: []string{"kubernetes.injector.xdsAddress: is required", "--injector-xds-address"}},
		{name: "injector with a cert but no key", edit: func(c *Config) {
			c.Mode, c.Kubernetes.Injector.Addr, c.Kubernetes.Injector.XDSAddress = ModeKubernetes, ":5443", "zone.svc:5678"
			c.Kubernetes.Injector.TLSCert, c.Kubernetes.Injector.DNSAddress = "/tls/tls.crt", "dns.svc:53"
		}, want: []string{"kubernetes.injector: injector TLS: give both"}},
		{name: "injector with a bad log level", edit: func(c *Config) {
			c.Mode, c.Kubernetes.Injector.Addr, c.Kubernetes.Injector.XDSAddress = ModeKubernetes, ":5443", "zone.svc:5678"
			c.Kubernetes.Injector.EnvoyLogLevel, c.Kubernetes.Injector.DNSAddress = "loud", "dns.svc:53"
		}, want: []string{`envoy log level "loud"`}},
		{name: "injector off ignores its settings", edit: func(c *Config) { c.Mode, c.Kubernetes.Injector.EnvoyLogLevel = ModeKubernetes, "loud" }},
		{name: "kubernetes qps zero", edit: func(c *Config) { c.Mode, c.Kubernetes.QPS = ModeKubernetes, 0 }, want: []string{"kubernetes.qps", "1-100000"}},
		{name: "kubernetes burst below qps", edit: func(c *Config) { c.Mode, c.Kubernetes.Burst = ModeKubernetes, 100 }, want: []string{"kubernetes.burst", "kubernetes.qps (1000)"}},
		{name: "kubernetes short leases", edit: func(c *Config) {
			c.Mode = ModeKubernetes
			c.Kubernetes.LeaderElection = LeaderElection{LeaseName: "zone-1-leader", LeaseDuration: 3 * time.Second, RenewDeadline: 2 * time.Second, RetryPeriod: 500 * time.Millisecond}
		}},
		{name: "kubernetes renew deadline not below lease duration", edit: func(c *Config) {
			c.Mode, c.Kubernetes.LeaderElection.RenewDeadline = ModeKubernetes, 15*time.Second
		}, want: []string{"kubernetes.leaderElection.leaseDuration: 15s must exceed renewDeadline (15s)"}},
		{name: "kubernetes retry period not below renew deadline", edit: func(c *Config) {
			c.Mode, c.Kubernetes.LeaderElection.RetryPeriod = ModeKubernetes, 9*time.Second
		}, want: []string{"kubernetes.leaderElection.renewDeadline: 10s must exceed 1.2 times retryPeriod (9s)"}},
		{name: "kubernetes retry period zero", edit: func(c *Config) { c.Mode, c.Kubernetes.LeaderElection.RetryPeriod = ModeKubernetes, 0 },
			want: []string{"kubernetes.leaderElection.retryPeriod: 0s is out of range"}},
		{name: "kubernetes lease too long", edit: func(c *Config) {
			c.Mode, c.Kubernetes.LeaderElection.LeaseDuration = ModeKubernetes, time.Hour
		}, want: []string{"kubernetes.leaderElection.leaseDuration: 1h0m0s is out of range"}},
		{name: "kubernetes lease name invalid", edit: func(c *Config) {
			c.Mode, c.Kubernetes.LeaderElection.LeaseName = ModeKubernetes, "Zone_1"
		}, want: []string{`kubernetes.leaderElection.leaseName: "Zone_1" is not a Lease name`}},
		{name: "kubernetes leases ignored in universal mode", edit: func(c *Config) { c.Kubernetes.LeaderElection.RetryPeriod = 0 }},
		{name: "unknown mode", edit: func(c *Config) { c.Mode = "foo" }, want: []string{"mode", `"foo"`}},
		{name: "empty mode", edit: func(c *Config) { c.Mode = "" }, want: []string{"mode"}},
		{name: "apiAddr without port", edit: func(c *Config) { c.APIAddr = "foo" }, want: []string{"apiAddr"}},
		{name: "empty dataDir", edit: func(c *Config) { c.DataDir = "" }, want: []string{"dataDir"}},
		{name: "globalAddress with http scheme", edit: func(c *Config) { c.GlobalAddress = "http://x:1" }, want: []string{"globalAddress", "grpcs"}},
		{name: "globalAddress not a URL", edit: func(c *Config) { c.GlobalAddress = "nope" }, want: []string{"globalAddress"}},
		{name: "globalAddress: two replicas", edit: func(c *Config) { c.GlobalAddress = "grpcs://g1:5685, grpcs://g2:5685" }},
		{name: "globalAddress: replicas reached two ways", edit: func(c *Config) { c.GlobalAddress = "grpcs://g1:5685,grpc://g2:5685"; c.KDSInsecure = false },
			want: []string{`"grpcs://g1:5685" is grpcs:// but "grpc://g2:5685" is grpc://`, "all grpcs:// or all grpc://"}},
		{name: "globalAddress: a bad second replica", edit: func(c *Config) { c.GlobalAddress = "grpcs://g1:5685,nope" }, want: []string{"globalAddress (address 2 of 2)"}},
		{name: "globalAddress: only commas", edit: func(c *Config) { c.GlobalAddress = " , " }, want: []string{"names no address"}},
		{name: "DNS forwarding for nobody", edit: func(c *Config) { c.DNS.UpstreamAllow = nil }},
		{name: "DNS allowlist entry not a network", edit: func(c *Config) { c.DNS.UpstreamAllow = []string{"10.0.0.0/8", "10.1.2.3"} }, want: []string{`dns.upstreamAllow[1]: "10.1.2.3" is not a network`}},
		{name: "DNS allowlist entry with host bits", edit: func(c *Config) { c.DNS.UpstreamAllow = []string{"10.1.2.3/8"} }, want: []string{"dns.upstreamAllow[0]", "use 10.0.0.0/8"}},
		{name: "DNS in-flight bound zero", edit: func(c *Config) { c.DNS.MaxInFlight = 0 }, want: []string{"dns.maxInFlight", "1-65536"}},
		{name: "DNS TCP connection bound zero", edit: func(c *Config) { c.DNS.MaxTCPConns = 0 }, want: []string{"dns.maxTCPConns", "1-65536"}},
		{name: "unknown log level", edit: func(c *Config) { c.Log.Level = "loud" }, want: []string{"log.level"}},
		{name: "unknown log format", edit: func(c *Config) { c.Log.Format = "xml" }, want: []string{"log.format"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c := Default()
			c.Zone = "zone-1"
			tt.edit(&c)
			err := c.Validate()
			if len(tt.want) == 0 {
				if err != nil {
					t.Fatalf("Validate() = %v, want no error", err)
				}
				return
			}
			if err == nil {
				t.Fatalf("Validate() = nil, want an error naming %s", tt.want[0])
			}
			for _, w := range tt.want {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("Validate() = %q, want it to contain %q", err, w)
				}
			}
		})
	}
}

func TestValidateReportsEverySetting(t *testing.T) {
	c := Default()
	c.Zone = "Zone_1"
	c.Mode = "foo"
	c.GlobalAddress = "nope"
	err := c.Validate()
	if err == nil {
		t.Fatal("Validate() = nil, want errors")
	}
	for _, setting := range []string{"zone:", "mode:", "globalAddress:"} {
		if !strings.Contains(err.Error(), setting) {
			t.Errorf("Validate() = %q, want it to name %s", err, setting)
		}
	}
}

func TestLeaseName(t *testing.T) {
	if got := (LeaderElection{}).Lease("zone-1"); got != "atoll-zone-zone-1" {
		t.Errorf("default Lease name = %q, want atoll-zone-zone-1", got)
	}
	if got := (LeaderElection{LeaseName: "mine"}).Lease("zone-1"); got != "mine" {
		t.Errorf("Lease name = %q, want mine", got)
	}
}
