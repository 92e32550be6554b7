package sidecar

import (
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/atoll-mesh/atoll/zone/kubernetes"
)

func valid() Config {
	c := Default()
	c.PodName, c.PodNamespace = "kong-7d9c-x2", "kong"
	c.XDSAddress, c.DNSAddress = "atoll-zone.atoll-system.svc:5678", "10.96.0.20:53"
	return c
}

func TestDefaultIsTheContract(t *testing.T) {
	c := Default()
	if c.Mesh != "default" || c.TokenFile != "/var/run/secrets/atoll.io/token" || c.RunDir != "/var/run/atoll" ||
		c.DNSPort != 15053 || c.AdminPort != 9901 || c.EnvoyBinary != "envoy" || c.EnvoyLogLevel != "info" || c.DrainDuration != 5*time.Second {
		t.Errorf("Default() = %+v differs from the sidecar contract", c)
	}
	if err := valid().Validate(); err != nil {
		t.Errorf("the defaults with the pod and the zone's addresses: %v", err)
	}
}

// Every field of Config is a setting with a flag and a variable, and the
// variables are the contract's.
func TestSettingsCoverConfig(t *testing.T) {
	keys := map[string]bool{}
	for _, s := range Settings {
		keys[s.Key] = true
	}
	ct := reflect.TypeOf(Config{})
	for i := 0; i < ct.NumField(); i++ {
		tag := ct.Field(i).Tag.Get("yaml")
		if tag == "log" {
			tag = "log.level"
		}
		if !keys[tag] {
			t.Errorf("Config.%s (%s) has no setting", ct.Field(i).Name, tag)
		}
	}
	for key, want := range map[string]string{
		"podName": "--pod-name (POD_NAME)", "podNamespace": "--pod-namespace (POD_NAMESPACE)", "mesh": "--mesh (ATOLL_MESH)",
		"zone": "--zone (ATOLL_ZONE)", "xdsAddress": "--xds-address (ATOLL_XDS_ADDRESS)", "xdsCA": "--xds-ca (ATOLL_XDS_CA)",
		"tokenFile": "--token-file (ATOLL_TOKEN_FILE)", "dnsAddress": "--dns-address (ATOLL_DNS_ADDRESS)", "runDir": "--run-dir (ATOLL_RUN_DIR)",
		"envoyBinary": "--envoy-binary (ATOLL_ENVOY_BINARY)", "envoyLogLevel": "--envoy-log-level (ENVOY_LOG_LEVEL)",
		"drainDuration": "--drain-duration (ATOLL_DRAIN_DURATION)", "dnsPort": "--dns-port (ATOLL_DNS_PORT)", "adminPort": "--admin-port (ATOLL_ADMIN_PORT)",
	} {
		if got := Name(key); got != want {
			t.Errorf("Name(%q) = %q, want %q", key, got, want)
		}
	}
}

func TestValidateNamesFlagAndVariable(t *testing.T) {
	for _, c := range []struct {
		change func(*Config)
		want   string
	}{
		{func(c *Config) { c.PodName = "" }, "--pod-name (POD_NAME) is empty"},
		{func(c *Config) { c.PodNamespace = "" }, "--pod-namespace (POD_NAMESPACE) is empty"},
		{func(c *Config) { c.Mesh = "Default" }, `--mesh (ATOLL_MESH) "Default" is invalid`},
		{func(c *Config) { c.XDSAddress = "atoll-zone:0" }, `--xds-address (ATOLL_XDS_ADDRESS) "atoll-zone:0" is invalid`},
		{func(c *Config) { c.XDSCA = "-----BEGIN CERTIFICATE-----\nnope\n-----END CERTIFICATE-----\n" }, "--xds-ca (ATOLL_XDS_CA) holds no PEM certificate"},
		{func(c *Config) { c.TokenFile = "" }, "--token-file (ATOLL_TOKEN_FILE) is empty"},
		{func(c *Config) { c.DNSAddress = ":53" }, `--dns-address (ATOLL_DNS_ADDRESS) ":53" is invalid: the host is empty`},
		{func(c *Config) { c.DNSPort = -1 }, "--dns-port (ATOLL_DNS_PORT) -1 is not a port"},
		{func(c *Config) { c.RunDir = "" }, "--run-dir (ATOLL_RUN_DIR) is empty"},
		{func(c *Config) { c.EnvoyBinary = "" }, "--envoy-binary (ATOLL_ENVOY_BINARY) is empty"},
		{func(c *Config) { c.EnvoyLogLevel = "verbose" }, `--envoy-log-level (ENVOY_LOG_LEVEL) "verbose" is not a level`},
		{func(c *Config) { c.DrainDuration = -time.Second }, "--drain-duration (ATOLL_DRAIN_DURATION) -1s is out of range"},
		{func(c *Config) { c.DrainDuration = time.Hour }, "--drain-duration (ATOLL_DRAIN_DURATION) 1h0m0s is out of range"},
		{func(c *Config) { c.AdminPort = 0 }, "--admin-port (ATOLL_ADMIN_PORT) 0 is not a port"},
		{func(c *Config) { c.AdminPort = c.DNSPort }, "--admin-port (ATOLL_ADMIN_PORT) 15053 is the DNS proxy's port too"},
		{func(c *Config) { c.Log.Format = "xml" }, "--log-level/--log-format: log.format"},
	} {
		cfg := valid()
		c.change(&cfg)
		if err := cfg.Validate(); err == nil || !strings.Contains(err.Error(), c.want) {
			t.Errorf("%v, want an error containing %q", err, c.want)
		}
	}
	// Every problem at once.
	err := Config{}.Validate()
	if err == nil || strings.Count(err.Error(), "\n") < 10 {
		t.Errorf("an empty configuration: %v, want every setting named", err)
	}
}

// node.id is the name the zone gives the pod's Dataplane, in its mesh.
func TestNodeID(t *testing.T) {
	if got, want := NodeID("default", "kong", "kong-7d9c-x2"), "default."+kubernetes.DataplaneName("kong", "kong-7d9c-x2"); got != want {
		t.Errorf("NodeID = %q, want %q", got, want)
	}
}

func TestWriteFileAtomic(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, BootstrapFile)
	for _, content := range []string{"first\n", "second\n"} {
		if err := writeFileAtomic(path, []byte(content)); err != nil {
			t.Fatal(err)
		}
		if got, err := os.ReadFile(path); err != nil || string(got) != content {
			t.Fatalf("%s holds %q (%v), want %q", path, got, err, content)
		}
	}
	entries, _ := os.ReadDir(dir)
	if len(entries) != 1 {
		t.Errorf("the run directory holds %v, want only %s (no temporary files left)", entries, BootstrapFile)
	}
	if err := writeFileAtomic(filepath.Join(dir, "missing", "envoy.json"), []byte("x")); err == nil {
		t.Error("writing into a missing directory succeeded")
	}
}
