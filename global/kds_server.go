package global

import (
	"context"
	"crypto/tls"
	"fmt"
	"log/slog"
	"net"
	"os"
	"path/filepath"
	"strconv"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials"

	"github.com/atoll-mesh/atoll/api/v1alpha1"
	"github.com/atoll-mesh/atoll/internal/certs"
	"github.com/atoll-mesh/atoll/internal/version"
	"github.com/atoll-mesh/atoll/kds"
)

// kdsCertValidity is how long a generated KDS certificate is valid; it is
// re-issued by the same CA certs.Renewal before it expires, while the
// global runs, and zones keep trusting the CA.
const kdsCertValidity = 365 * 24 * time.Hour

// kdsEndpoint is the KDS gRPC server and its listener.
type kdsEndpoint struct {
	server   *grpc.Server
	listener net.Listener
	// caPEM is the generated CA, served at /kds-ca.pem (nil otherwise).
	caPEM []byte
}

// startKDS prepares the KDS gRPC server on ln, the bound kdsAddr. With no
// certificate configured it keeps a CA and certificate in the data
// directory. Either way the certificate files are followed: a certificate
// replaced on disk is served from the next connection on.
// A generated certificate is kept current until ctx ends.
func startKDS(ctx context.Context, cfg Config, ln net.Listener, handler kds.ZoneHandler, auth kds.Authenticator, instanceID, clusterID string, log *slog.Logger) (*kdsEndpoint, error) {
	srv := kds.NewServer(kds.ServerConfig{
		Handler:    handler,
		Auth:       auth,
		InstanceID: instanceID,
		ClusterID:  clusterID,
		// Three heartbeats fit in the offline timeout.
		ZoneHeartbeat: cfg.KDS.ZoneOfflineAfter / 3,
		Session:       kds.SessionConfig{MaxMessageSize: cfg.KDS.MaxMessageSize, Debounce: cfg.KDS.Debounce},
		Limits: kds.Limits{
			Streams:               cfg.KDS.MaxStreams,
			PendingStreams:        cfg.KDS.MaxPendingStreams,
			PendingStreamsPerPeer: cfg.KDS.MaxPendingStreamsPerPeer,
			StreamsPerConnection:  uint32(cfg.KDS.MaxStreamsPerConnection),
			IdleConnection:        cfg.KDS.IdleConnectionTimeout,
		},
		Log: log,
	})
	// Stop waits for handlers: each records its session's end in etcd.
	opts := append(srv.GRPCServerOptions(), grpc.WaitForHandlers(true))
	ep := &kdsEndpoint{}
	switch {
	case cfg.KDS.Insecure:
		log.Warn("KDS serves plaintext (kds.insecure): zones' traffic is not encrypted")
	default:
		certFile, keyFile := cfg.KDS.TLSCert, cfg.KDS.TLSKey
		if certFile == "" {
			dir := filepath.Join(cfg.DataDir, "kds-tls")
			hosts := func() []string { return append(certs.DefaultHosts(), cfg.KDS.TLSSANs...) }
			files, err := certs.Maintain(ctx, dir, hosts, kdsCertValidity, 12*time.Hour, func(out certs.Outcome, err error) {
				switch {
				case err != nil:
					log.Error("keeping the KDS certificate current failed; retrying in 12h", "dir", dir, "error", err)
				case out.ReplacedCA:
					log.Warn("generated a new KDS CA: zones that trusted the previous one must fetch /kds-ca.pem again", "dir", dir, "reason", out.Reason)
				case out.CreatedCA:
					log.Info("generated a KDS CA and certificate; zones fetch the CA from /kds-ca.pem", "dir", dir)
				case out.Issued:
					log.Info("re-issued the KDS certificate with the same CA", "reason", out.Reason, "dir", dir)
				}
			})
			if err != nil {
				return nil, fmt.Errorf("dataDir: keeping the KDS certificate in %s: %w", dir, err)
			}
			certFile, keyFile = files.Cert, files.Key
			if ep.caPEM, err = os.ReadFile(files.CA); err != nil {
				return nil, err
			}
		}
		reloader, err := certs.NewReloader(certFile, keyFile)
		if err != nil {
			return nil, fmt.Errorf("kds.tlsCert/kds.tlsKey: %w", err)
		}
		opts = append(opts, grpc.Creds(credentials.NewTLS(&tls.Config{GetCertificate: reloader.GetCertificate, MinVersion: tls.VersionTLS12})))
	}
	ep.server = grpc.NewServer(opts...)
	v1alpha1.RegisterKDSServer(ep.server, srv)
	ep.listener = kds.LimitPerPeer(ln, cfg.KDS.MaxConnectionsPerPeer)
	return ep, nil
}

// stopGRPC ends every stream at once (KDS streams never end on their own,
// so a graceful stop would only wait; zones reconnect, to another replica
// if any) and returns when their handlers have (grpc.WaitForHandlers).
func stopGRPC(gs *grpc.Server) { gs.Stop() }

// instanceName identifies this process among global replicas.
func instanceName() string {
	host, err := os.Hostname()
	if err != nil {
		host = "global"
	}
	return host + "-" + strconv.Itoa(os.Getpid()) + "-" + version.Version
}
