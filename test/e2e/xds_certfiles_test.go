package e2e

import (
	"bytes"
	"context"
	"crypto/tls"
	"crypto/x509"
	"encoding/pem"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/atoll-mesh/atoll/internal/certs"
)

// writeSecretVolume writes files into dir the way the kubelet updates a
// mounted Secret: into a new directory that the ..data link is swapped to
// at once, each name a link through ..data.
func writeSecretVolume(t *testing.T, dir string, files map[string][]byte) {
	t.Helper()
	version, err := os.MkdirTemp(dir, "..version-")
	if err != nil {
		t.Fatal(err)
	}
	for name, data := range files {
		if err := os.WriteFile(filepath.Join(version, name), data, 0o600); err != nil {
			t.Fatal(err)
		}
	}
	tmp := filepath.Join(dir, "..data_tmp")
	if err := os.Symlink(filepath.Base(version), tmp); err != nil {
		t.Fatal(err)
	}
	if err := os.Rename(tmp, filepath.Join(dir, "..data")); err != nil {
		t.Fatal(err)
	}
	for name := range files {
		link := filepath.Join(dir, name)
		if _, err := os.Lstat(link); err == nil {
			continue
		}
		if err := os.Symlink(filepath.Join("..data", name), link); err != nil {
			t.Fatal(err)
		}
	}
}

// secretFiles are a kubernetes.io/tls Secret's keys holding what
// EnsureSelfSigned keeps in an issuer's directory.
func secretFiles(t *testing.T, f certs.Files) map[string][]byte {
	t.Helper()
	out := map[string][]byte{}
	for name, path := range map[string]string{"tls.crt": f.Cert, "tls.key": f.Key, "ca.crt": f.CA} {
		b, err := os.ReadFile(path)
		if err != nil {
			t.Fatal(err)
		}
		out[name] = b
	}
	return out
}

// servedSerial is the serial of the certificate the xDS server at addr
// presents, verified with the CA in caPEM for localhost.
func servedSerial(addr string, caPEM []byte) (string, error) {
	pool := x509.NewCertPool()
	if !pool.AppendCertsFromPEM(caPEM) {
		return "", fmt.Errorf("the CA holds no certificate")
	}
	conn, err := tls.Dial("tcp", addr, &tls.Config{RootCAs: pool, ServerName: "localhost", NextProtos: []string{"h2"}})
	if err != nil {
		return "", err
	}
	defer conn.Close()
	return conn.ConnectionState().PeerCertificates[0].SerialNumber.String(), nil
}

func certSerial(t *testing.T, certPEM []byte) string {
	t.Helper()
	block, _ := pem.Decode(certPEM)
	if block == nil {
		t.Fatal("no PEM certificate")
	}
	c, err := x509.ParseCertificate(block.Bytes)
	if err != nil {
		t.Fatal(err)
	}
	return c.SerialNumber.String()
}

// TestXDSCertificateSharedByReplicas: two processes of zone-1 serve xDS
// with one certificate, key and CA from a mounted Secret. A proxyless gRPC
// client whose bootstrap (and CA) came from one replica is configured by
// either; a certificate renewed in the Secret by the same CA is served by
// both without a restart; and the flags refuse what cannot work.
func TestXDSCertificateSharedByReplicas(t *testing.T) {
	issuer := t.TempDir()
	files, _, err := certs.EnsureSelfSigned(issuer, []string{"localhost", "127.0.0.1"}, 24*time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	secret := t.TempDir()
	writeSecretVolume(t, secret, secretFiles(t, files))
	certFlags := []string{"--xds-tls",
		"--xds-tls-cert", filepath.Join(secret, "tls.crt"),
		"--xds-tls-key", filepath.Join(secret, "tls.key"),
		"--xds-tls-ca", filepath.Join(secret, "ca.crt")}
	caPEM, err := os.ReadFile(files.CA)
	if err != nil {
		t.Fatal(err)
	}

	_, port := startBackends(t, []string{"local-1"}, []string{"127.0.0.2"})
	var replicas []*process
	var addrs []string
	for range 2 {
		addr := freePort(t)
		z := startZone(t, "zone-1", t.TempDir(), append([]string{"--xds-addr", addr}, certFlags...)...)
		for name, body := range map[string]string{"kong": kongJSON, "local-1": dataplaneJSON("local-1", "127.0.0.2", port)} {
			if status, out := call(t, "PUT", z.apiURL+"/meshes/default/dataplanes/"+name, body); status != 201 {
				t.Fatalf("%s: %d %s", name, status, out)
			}
		}
		if _, body := call(t, "GET", z.apiURL+"/xds-ca.pem", ""); body != string(caPEM) {
			t.Fatalf("replica %s serves /xds-ca.pem %q, want the Secret's ca.crt", z.apiURL, body)
		}
		if _, err := os.Stat(filepath.Join(z.dataDir, "xds-tls")); err == nil {
			t.Errorf("replica %s made an xDS CA of its own in its data dir", z.apiURL)
		}
		replicas, addrs = append(replicas, z), append(addrs, addr)
	}

	// Each replica's proxyless bootstrap (with its own token: in universal
	// mode proxies' tokens are signed per replica) names the CA file
	// atollctl writes from that replica's /xds-ca.pem: the same CA, so a
	// proxy holding it is served by whichever replica it reaches.
	clientsReach := func(what string) {
		t.Helper()
		for _, z := range replicas {
			caFile := filepath.Join(t.TempDir(), "xds-ca.pem")
			bootstrap, errOut, err := atollctl(t, "", "--api-url", z.apiURL, "bootstrap", "dataplane", "kong", "--kind", "proxyless", "--ca-file", caFile)
			if err != nil || !strings.Contains(bootstrap, `"tls"`) {
				t.Fatalf("atollctl bootstrap from %s: %v %q\n%s", z.apiURL, err, errOut, bootstrap)
			}
			if got, err := os.ReadFile(caFile); err != nil || !bytes.Equal(got, caPEM) {
				t.Fatalf("the CA atollctl wrote from %s: %q %v, want the Secret's ca.crt", z.apiURL, got, err)
			}
			client := xdsClientFromBootstrap(t, []byte(bootstrap), "xds:///backend.mesh:"+port)
			waitReached(t, client, what+" through the replica at "+z.apiURL, "local-1")
		}
	}
	clientsReach("the local backend")
	first := certSerial(t, secretFiles(t, files)["tls.crt"])
	for _, addr := range addrs {
		if got, err := servedSerial(addr, caPEM); err != nil || got != first {
			t.Fatalf("the replica at %s serves serial %s (%v), want the Secret's %s", addr, got, err, first)
		}
	}

	// The issuer renews the certificate with the same CA (a name added); the
	// kubelet swaps the Secret's files. Both replicas serve the new one.
	renewed, out, err := certs.EnsureSelfSigned(issuer, []string{"localhost", "127.0.0.1", "atoll-zone-xds.atoll-system.svc"}, 24*time.Hour)
	if err != nil || !out.Issued || out.CreatedCA {
		t.Fatalf("renewing: %+v %v, want a new certificate from the same CA", out, err)
	}
	newFiles := secretFiles(t, renewed)
	if !bytes.Equal(newFiles["ca.crt"], caPEM) {
		t.Fatal("the renewal changed the CA")
	}
	second := certSerial(t, newFiles["tls.crt"])
	if second == first {
		t.Fatal("the renewal kept the serial")
	}
	writeSecretVolume(t, secret, newFiles)
	for _, addr := range addrs {
		if got, err := servedSerial(addr, caPEM); err != nil || got != second {
			t.Errorf("after the renewal the replica at %s serves serial %s (%v), want the renewed %s", addr, got, err, second)
		}
	}
	clientsReach("the local backend after the renewal")
	for _, z := range replicas {
		if !strings.Contains(z.logs.String(), "serving xDS with the certificate in files") {
			t.Errorf("replica %s did not log where its xDS certificate comes from:\n%s", z.apiURL, z.logs)
		}
	}

	// Refusals at start, each naming the flag to change.
	other := t.TempDir()
	otherFiles, _, err := certs.EnsureSelfSigned(other, []string{"localhost"}, 24*time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		name  string
		flags []string
		want  string
	}{
		{"without --xds-tls", certFlags[1:], "add --xds-tls"},
		{"without the CA", certFlags[:5], "give --xds-tls-ca too"},
		{"with names to generate", append(append([]string{}, certFlags...), "--xds-tls-san", "zone.example"), "drop --xds-tls-san"},
		{"with a CA that did not sign it", append(append([]string{}, certFlags[:5]...), "--xds-tls-ca", otherFiles.CA), "xds.tlsCA"},
		{"with another certificate's key", []string{"--xds-tls", "--xds-tls-cert", certFlags[2], "--xds-tls-key", otherFiles.Key, "--xds-tls-ca", certFlags[6]}, "xds.tlsKey"},
	} {
		// A zone that started after all is stopped, and fails the case.
		ctx, cancel := context.WithTimeout(t.Context(), time.Minute)
		out, err := exec.CommandContext(ctx, filepath.Join(binDir, "atoll"), zoneArgs("zone-1", t.TempDir(), append([]string{"--api-addr", "127.0.0.1:0"}, tc.flags...))...).CombinedOutput()
		cancel()
		if err == nil || !strings.Contains(string(out), tc.want) {
			t.Errorf("atoll zone %s: %v, want a refusal with %q:\n%s", tc.name, err, tc.want, out)
		}
	}
}
