package perf

import (
	"bytes"
	"encoding/json"
	"os"
	"path/filepath"
	"testing"
)

// zoneToken has the global at globalURL issue a token for zone, as an
// operator would with atollctl generate zone-token.
func zoneToken(tb testing.TB, globalURL, zone string) string {
	resp, err := client.Post(globalURL+"/zones/"+zone+"/tokens", "application/json", bytes.NewReader([]byte(`{"validFor":"24h"}`)))
	if err != nil {
		tb.Fatal(err)
	}
	defer resp.Body.Close()
	var out struct {
		Token string `json:"token"`
		Error string `json:"error"`
	}
	if err := json.NewDecoder(resp.Body).Decode(&out); err != nil || out.Token == "" {
		tb.Fatalf("issuing a token for %s: %s %v %s", zone, resp.Status, err, out.Error)
	}
	return out.Token
}

// zoneTokenFile writes zone's token into dir and returns the file, for
// zone.Config.GlobalTokenFile.
func zoneTokenFile(tb testing.TB, globalURL, zone, dir string) string {
	path := filepath.Join(dir, zone+".token")
	if err := os.WriteFile(path, []byte(zoneToken(tb, globalURL, zone)), 0o600); err != nil {
		tb.Fatal(err)
	}
	return path
}
