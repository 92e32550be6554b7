package e2e

import (
	"crypto/tls"
	"crypto/x509"
	"encoding/json"
	"fmt"
	"net/http"
	"os"
	"strings"
	"testing"
	"time"
)

// The generated KDS certificate covers the names given with
// --kds-tls-san; adding one later re-issues the certificate with the same
// CA, so zones that trust the CA keep syncing.
func TestKDSCertificateNames(t *testing.T) {
	dir := t.TempDir()
	kdsAddr := freePort(t) // the same across the restart below
	g := startGlobal(t, dir, "--kds-addr", kdsAddr, "--kds-tls-san", "atoll-global.example")
	caPEM, err := os.ReadFile(g.caFile())
	if err != nil {
		t.Fatal(err)
	}
	status, served := call(t, "GET", g.apiURL+"/kds-ca.pem", "")
	if status != http.StatusOK || served != string(caPEM) {
		t.Fatalf("/kds-ca.pem: %d, want the CA file", status)
	}
	pool := x509.NewCertPool()
	pool.AppendCertsFromPEM(caPEM)
	// handshake reaches the global's KDS port verifying it as name.
	handshake := func(p *process, name string) error {
		t.Helper()
		c, err := tls.Dial("tcp", p.kdsAddr, &tls.Config{RootCAs: pool, ServerName: name, NextProtos: []string{"h2"}})
		if err == nil {
			c.Close()
		}
		return err
	}
	if err := handshake(g, "atoll-global.example"); err != nil {
		t.Errorf("as atoll-global.example: %v", err)
	}
	if err := handshake(g, "localhost"); err != nil {
		t.Errorf("as localhost: %v", err)
	}
	if err := handshake(g, "other.example"); err == nil || !strings.Contains(err.Error(), "other.example") {
		t.Errorf("as other.example: %v, want a verification error", err)
	}

	startSyncedZone(t, "zone-1", t.TempDir(), g.kdsAddr, g.caFile())
	// connectedSince waits until the global shows zone-1 online, connected
	// after since.
	connectedSince := func(g *process, since time.Time) {
		t.Helper()
		waitFor(t, syncWait, "zone-1 connected", func() error {
			status, body := call(t, "GET", g.apiURL+"/zones/zone-1", "")
			var v struct {
				Online    bool   `json:"online"`
				Connected string `json:"connectTime"`
			}
			json.Unmarshal([]byte(body), &v)
			connected, _ := time.Parse(time.RFC3339Nano, v.Connected)
			if status != 200 || !v.Online || connected.Before(since) {
				return fmt.Errorf("%d %s", status, body)
			}
			return nil
		})
	}
	connectedSince(g, time.Time{})

	// Restarted with one more name: the same CA, a certificate that now
	// covers it, and the zone syncs again without fetching anything.
	g.stop()
	restarted := time.Now()
	g = startGlobal(t, dir, "--kds-addr", kdsAddr, "--kds-tls-san", "atoll-global.example,10.11.12.13")
	if now, err := os.ReadFile(g.caFile()); err != nil || string(now) != string(caPEM) {
		t.Fatalf("the CA changed when a name was added: %v", err)
	}
	if err := handshake(g, "10.11.12.13"); err != nil {
		t.Errorf("as 10.11.12.13 after the restart: %v", err)
	}
	if !strings.Contains(g.logs.String(), "re-issued the KDS certificate with the same CA") {
		t.Errorf("the re-issue was not logged:\n%s", g.logs)
	}
	connectedSince(g, restarted)
}
