package xdsrelay

import (
	"crypto/tls"
	"errors"
	"io"
	"os"
	"strings"
	"testing"
	"time"

	discoveryv3 "github.com/envoyproxy/go-control-plane/envoy/service/discovery/v3"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/atoll-mesh/atoll/internal/certs"
)

// TestTLS runs the zone with a certificate for "localhost" from a
// generated CA: the relay reaches it as localhost with that CA, and fails
// with another CA, or when it names the zone by an address the
// certificate does not cover (the server name is Upstream's host).
func TestTLS(t *testing.T) {
	files, _, err := certs.EnsureSelfSigned(t.TempDir(), []string{"localhost"}, time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	other, _, err := certs.EnsureSelfSigned(t.TempDir(), []string{"localhost"}, time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	cert, err := tls.LoadX509KeyPair(files.Cert, files.Key)
	if err != nil {
		t.Fatal(err)
	}
	z := startZone(t, &zone{}, &cert)
	_, port, _ := strings.Cut(z.addr, ":")
	ca, otherCA := readFile(t, files.CA), readFile(t, other.CA)

	t.Run("the zone's CA", func(t *testing.T) {
		e := startRelay(t, "localhost:"+port, Config{CAPEM: ca})
		roundTrip(t, e, testContext(t))
		if got := z.streams()[0].Get("authorization"); len(got) != 1 || got[0] != "Bearer token-1" {
			t.Fatalf("the zone got authorization %q over TLS", got)
		}
	})
	for _, tc := range []struct {
		name, upstream string
		ca             []byte
		want           string
	}{
		{"another CA", "localhost:" + port, otherCA, "certificate signed by unknown authority"},
		{"an address the certificate does not cover", z.addr, ca, "127.0.0.1 because it doesn't contain any IP SANs"},
		{"plaintext", "localhost:" + port, nil, ""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			before := len(z.streams())
			e := startRelay(t, tc.upstream, Config{CAPEM: tc.ca})
			s, err := e.client.StreamAggregatedResources(testContext(t))
			if err != nil {
				t.Fatal(err)
			}
			// The relay may have failed the stream already: Send then
			// returns io.EOF, and Recv the stream's status.
			if err := s.Send(&discoveryv3.DiscoveryRequest{TypeUrl: clusterType}); err != nil && !errors.Is(err, io.EOF) {
				t.Fatal(err)
			}
			_, err = s.Recv()
			if status.Code(err) != codes.Unavailable || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("stream through a relay with %s: %v, want Unavailable saying %q", tc.name, err, tc.want)
			}
			t.Log(err)
			if n := len(z.streams()); n != before {
				t.Fatalf("the zone saw a stream from a relay with %s", tc.name)
			}
		})
	}
}

func readFile(t *testing.T, path string) []byte {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	return b
}
