package xdsrelay

import (
	"crypto/x509"
	"errors"
	"fmt"
	"log/slog"
	"math"
	"net"
	"strconv"
)

// DefaultMaxMessageSize bounds one message relayed either way when
// Config.MaxMessageSize is 0: 128 MiB.
//
// The relay must not be the narrowest link between the zone and Envoy:
// the zone's xDS server sends with grpc-go's default send limit (2 GiB)
// and Envoy's gRPC client receives any size by default
// (max_receive_message_length 0), while a relay left at grpc-go's default
// receive limit would fail every response above 4 MiB. A
// state-of-the-world response, or the first delta response after a
// reconnect, carries every resource of its type at once. Measured with
// zone/xds.Generate (1,000 services of 10 endpoints each, one gateway):
// a listener is about 210 bytes, a cluster 28, a ClusterLoadAssignment
// 240. So 4 MiB is reached near 17,000 services in one response (fewer
// with Kubernetes ClusterIP listeners or larger services), and a mesh of
// 100,000 such services needs about 24 MB for its endpoints. 128 MiB
// leaves five times that, and still bounds what one message can make the
// sidecar hold. In the other direction, a delta reconnect lists every
// resource Envoy holds with its version, far smaller.
const DefaultMaxMessageSize = 128 << 20

// maxTokenSize bounds the token file read for a stream: ServiceAccount
// tokens are a few kilobytes.
const maxTokenSize = 64 << 10

// Config says where the relay forwards and with which credential.
type Config struct {
	// Upstream is the host:port of the zone's xDS server, a name or an
	// IP. The host is the server name TLS verifies.
	Upstream string
	// CAPEM is the PEM text of the CA the zone's xDS server certificate
	// chains to. Empty (nil or no bytes) means plaintext.
	CAPEM []byte
	// TokenFile holds the pod's ServiceAccount token; it is read again
	// when each stream opens, so the kubelet's rotations are picked up.
	TokenFile string
	// MaxMessageSize is the largest message relayed either way, in bytes;
	// 0 means DefaultMaxMessageSize.
	MaxMessageSize int
	// Logger receives the relay's logs; nil discards them.
	Logger *slog.Logger
}

// Validate reports every field that is wrong, each with what to do.
func (c Config) Validate() error {
	var errs []error
	if c.Upstream == "" {
		errs = append(errs, errors.New("xds relay upstream is empty: set the host:port of the zone's xDS server, e.g. <service>.<namespace>.svc:<port>"))
	} else if err := validUpstream(c.Upstream); err != nil {
		errs = append(errs, fmt.Errorf("xds relay upstream %q is invalid: %w", c.Upstream, err))
	}
	if len(c.CAPEM) > 0 {
		if _, err := certPool(c.CAPEM); err != nil {
			errs = append(errs, err)
		}
	}
	if c.TokenFile == "" {
		errs = append(errs, errors.New("xds relay token file is empty: set the path of the pod's projected ServiceAccount token, e.g. /var/run/secrets/atoll.io/token"))
	}
	if c.MaxMessageSize < 0 || c.MaxMessageSize > math.MaxInt32 {
		errs = append(errs, fmt.Errorf("xds relay max message size %d is invalid: use 0 for the default (%d bytes) or a positive number of bytes up to %d", c.MaxMessageSize, DefaultMaxMessageSize, math.MaxInt32))
	}
	return errors.Join(errs...)
}

// maxMessageSize is the limit in force.
func (c Config) maxMessageSize() int {
	if c.MaxMessageSize == 0 {
		return DefaultMaxMessageSize
	}
	return c.MaxMessageSize
}

// validUpstream checks a host:port with a non-empty host and a port
// number in 1-65535.
func validUpstream(hostport string) error {
	host, port, err := net.SplitHostPort(hostport)
	if err != nil {
		return fmt.Errorf("%w: use host:port, e.g. <service>.<namespace>.svc:<port> or <ip>:<port>", err)
	}
	if host == "" {
		return errors.New("the host is empty: name the zone's xDS Service or give its IP")
	}
	n, err := strconv.Atoi(port)
	if err != nil || n < 1 || n > 65535 {
		return fmt.Errorf("port %q is not a number in 1-65535", port)
	}
	return nil
}

// certPool parses the CA's PEM text; it must hold at least one
// certificate.
func certPool(pem []byte) (*x509.CertPool, error) {
	pool := x509.NewCertPool()
	if !pool.AppendCertsFromPEM(pem) {
		return nil, errors.New("xds relay CA holds no PEM certificate: give the PEM text of the zone's xDS CA (-----BEGIN CERTIFICATE-----), or nothing for plaintext")
	}
	return pool, nil
}
