package main

import (
	"os"
	"path/filepath"
	"testing"

	"github.com/spf13/cobra"

	"github.com/atoll-mesh/atoll/zone"
)

// TestConfigFileErrors loads --config files with one mistake each and
// checks the message names the file, the line, the setting and the one
// most likely meant.
func TestConfigFileErrors(t *testing.T) {
	tests := []struct {
		name string
		file string
		want string
	}{
		{"misspelt nested setting", "zone: zone-1\ndns:\n  domain: mesh\n  adr: 127.0.0.1:5653\n",
			`zone.yaml:4: dns.adr: unknown field; did you mean "addr"? (run with --print-config to see every setting)`},
		{"misspelt top-level setting", "zone: zone-1\napiAdr: 127.0.0.1:5691\n",
			`zone.yaml:2: apiAdr: unknown field; did you mean "apiAddr"? (run with --print-config to see every setting)`},
		{"deeper", "kubernetes:\n  leaderElection:\n    leaseDuraton: 15s\n",
			`zone.yaml:3: kubernetes.leaderElection.leaseDuraton: unknown field; did you mean "leaseDuration"? (run with --print-config to see every setting)`},
		{"indentation", "zone: zone-1\ndns:\n  domain: mesh\n   addr: 127.0.0.1:5653\n",
			"zone.yaml:4: not valid YAML: mapping values are not allowed in this context (check this line's indentation against the lines above it)"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			dir := t.TempDir()
			t.Chdir(dir)
			if err := os.WriteFile(filepath.Join(dir, "zone.yaml"), []byte(tt.file), 0o600); err != nil {
				t.Fatal(err)
			}
			cmd := &cobra.Command{}
			bindSettings(cmd, zone.Default(), zoneSettings)
			if err := cmd.Flags().Set("config", "zone.yaml"); err != nil {
				t.Fatal(err)
			}
			cfg := zone.Default()
			err := load(cmd, &cfg, zoneSettings)
			if err == nil || err.Error() != tt.want {
				t.Errorf("load() = %v\nwant %s", err, tt.want)
			}
		})
	}
}

// TestConfigFileKeysIgnoreCase keeps accepting what viper accepts: keys
// in any case.
func TestConfigFileKeysIgnoreCase(t *testing.T) {
	path := filepath.Join(t.TempDir(), "zone.yaml")
	if err := os.WriteFile(path, []byte("zone: zone-1\nAPIADDR: 127.0.0.1:7001\nDNS:\n  Domain: corp\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	cmd := &cobra.Command{}
	bindSettings(cmd, zone.Default(), zoneSettings)
	if err := cmd.Flags().Set("config", path); err != nil {
		t.Fatal(err)
	}
	cfg := zone.Default()
	if err := load(cmd, &cfg, zoneSettings); err != nil {
		t.Fatalf("load() = %v", err)
	}
	if cfg.APIAddr != "127.0.0.1:7001" || cfg.DNS.Domain != "corp" {
		t.Errorf("apiAddr %q, dns.domain %q: the file was not read", cfg.APIAddr, cfg.DNS.Domain)
	}
}
