package global

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
	// defaults.yaml spells the empty list "endpoints: []"; Default() leaves
	// it nil. Both mean "run an embedded etcd".
	if got.Etcd.Endpoints != nil && len(got.Etcd.Endpoints) == 0 {
		got.Etcd.Endpoints = nil
	}
	if got.KDS.TLSSANs != nil && len(got.KDS.TLSSANs) == 0 {
		got.KDS.TLSSANs = nil
	}
	if want := Default(); !reflect.DeepEqual(got, want) {
		t.Errorf("defaults.yaml = %+v\nDefault()     = %+v", got, want)
	}

	// Every field of Config must be spelled out, so the file documents all
	// settings: decoding it over non-zero values must overwrite them all.
	filled := Config{
		APIAddr: "x", KDSAddr: "x", DataDir: "x",
		Etcd: Etcd{
			Endpoints: []string{"x"}, ClientAddr: "x", PeerAddr: "x", Prefix: "x",
			DialTimeout: time.Hour, CAFile: "x", CertFile: "x", KeyFile: "x",
		},
		KDS: KDS{TLSSANs: []string{"x"}, ZoneAuth: "x"},
	}
	filled.Log.Level, filled.Log.Format = "x", "x"
	if err := yaml.Unmarshal(DefaultYAML, &filled); err != nil {
		t.Fatalf("defaults.yaml: %v", err)
	}
	if len(filled.Etcd.Endpoints) == 0 {
		filled.Etcd.Endpoints = nil
	}
	if len(filled.KDS.TLSSANs) == 0 {
		filled.KDS.TLSSANs = nil
	}
	if want := Default(); !reflect.DeepEqual(filled, want) {
		t.Errorf("defaults.yaml leaves settings out:\ngot  %+v\nwant %+v", filled, want)
	}
}

func TestDefaultIsValid(t *testing.T) {
	if err := Default().Validate(); err != nil {
		t.Fatalf("Default().Validate() = %v", err)
	}
}

func TestValidate(t *testing.T) {
	tests := []struct {
		name string
		edit func(c *Config)
		// want is a substring of the error; "" means the config is valid.
		want string
	}{
		{name: "defaults", edit: func(*Config) {}},
		{name: "external etcd", edit: func(c *Config) {
			c.Etcd.Endpoints = []string{"https://etcd-0:2379", "http://10.0.0.2:2379"}
			c.Etcd.ClientAddr, c.Etcd.PeerAddr = "", ""
			c.Etcd.CAFile, c.Etcd.CertFile, c.Etcd.KeyFile = "ca.pem", "client.pem", "client-key.pem"
		}},
		{name: "zone auth none", edit: func(c *Config) { c.KDS.ZoneAuth = ZoneAuthNone }},
		{name: "zone auth unknown", edit: func(c *Config) { c.KDS.ZoneAuth = "jwt" }, want: "kds.zoneAuth"},
		{name: "port 0 picks a free port", edit: func(c *Config) { c.APIAddr = "127.0.0.1:0" }},
		{name: "apiAddr without port", edit: func(c *Config) { c.APIAddr = "foo" }, want: "apiAddr"},
		{name: "apiAddr host not an IP", edit: func(c *Config) { c.APIAddr = "example.com:5681" }, want: "apiAddr"},
		{name: "kdsAddr port out of range", edit: func(c *Config) { c.KDSAddr = ":99999" }, want: "kdsAddr"},
		{name: "empty dataDir", edit: func(c *Config) { c.DataDir = "" }, want: "dataDir"},
		{name: "bad embedded clientAddr", edit: func(c *Config) { c.Etcd.ClientAddr = "2379" }, want: "etcd.clientAddr"},
		{name: "endpoint with another scheme", edit: func(c *Config) { c.Etcd.Endpoints = []string{"ftp://x"} }, want: "etcd.endpoints[0]"},
		{name: "endpoint without scheme", edit: func(c *Config) { c.Etcd.Endpoints = []string{"https://a:2379", "10.0.0.1:2379"} }, want: "etcd.endpoints[1]"},
		{name: "relative prefix", edit: func(c *Config) { c.Etcd.Prefix = "atoll" }, want: "etcd.prefix"},
		{name: "empty prefix", edit: func(c *Config) { c.Etcd.Prefix = "" }, want: "etcd.prefix"},
		{name: "zero dialTimeout", edit: func(c *Config) { c.Etcd.DialTimeout = 0 }, want: "etcd.dialTimeout"},
		{name: "negative dialTimeout", edit: func(c *Config) { c.Etcd.DialTimeout = -time.Second }, want: "etcd.dialTimeout"},
		{name: "certFile without keyFile", edit: func(c *Config) {
			c.Etcd.Endpoints = []string{"https://etcd-0:2379"}
			c.Etcd.CertFile = "client.pem"
		}, want: "etcd.keyFile"},
		{name: "keyFile without certFile", edit: func(c *Config) {
			c.Etcd.Endpoints = []string{"https://etcd-0:2379"}
			c.Etcd.KeyFile = "client-key.pem"
		}, want: "etcd.certFile"},
		{name: "TLS files for embedded etcd", edit: func(c *Config) { c.Etcd.CAFile = "ca.pem" }, want: "etcd.endpoints"},
		{name: "KDS certificate names", edit: func(c *Config) {
			c.KDS.TLSSANs = []string{"atoll-global.atoll-system.svc", "*.example.com", "10.0.0.5", "fd00::5"}
		}},
		{name: "KDS certificate name with a port", edit: func(c *Config) { c.KDS.TLSSANs = []string{"ok.example", "global:5685"} }, want: "kds.tlsSANs[1]"},
		{name: "KDS certificate name with a scheme", edit: func(c *Config) { c.KDS.TLSSANs = []string{"https://global"} }, want: "kds.tlsSANs[0]"},
		{name: "KDS certificate names with a given certificate", edit: func(c *Config) {
			c.KDS.TLSSANs = []string{"global.example"}
			c.KDS.TLSCert, c.KDS.TLSKey = "kds.pem", "kds-key.pem"
		}, want: "kds.tlsSANs"},
		{name: "unknown log level", edit: func(c *Config) { c.Log.Level = "loud" }, want: "log.level"},
		{name: "unknown log format", edit: func(c *Config) { c.Log.Format = "xml" }, want: "log.format"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c := Default()
			tt.edit(&c)
			err := c.Validate()
			if tt.want == "" {
				if err != nil {
					t.Fatalf("Validate() = %v, want no error", err)
				}
				return
			}
			if err == nil {
				t.Fatalf("Validate() = nil, want an error naming %s", tt.want)
			}
			if !strings.Contains(err.Error(), tt.want) {
				t.Errorf("Validate() = %q, want it to name %s", err, tt.want)
			}
		})
	}
}

func TestValidateReportsEverySetting(t *testing.T) {
	c := Default()
	c.APIAddr = "foo"
	c.DataDir = ""
	c.Log.Format = "xml"
	err := c.Validate()
	if err == nil {
		t.Fatal("Validate() = nil, want errors")
	}
	for _, setting := range []string{"apiAddr", "dataDir", "log.format"} {
		if !strings.Contains(err.Error(), setting) {
			t.Errorf("Validate() = %q, want it to name %s", err, setting)
		}
	}
}
