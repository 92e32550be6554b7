package global

import (
	"crypto/tls"
	"fmt"
	"log/slog"
	"net"
	"os"
	"path/filepath"
	"strconv"

	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials"

	"github.com/atoll-mesh/atoll/api/v1alpha1"
	"github.com/atoll-mesh/atoll/internal/certs"
	"github.com/atoll-mesh/atoll/internal/version"
	"github.com/atoll-mesh/atoll/kds"
)

// startKDS binds the KDS listener and prepares its gRPC server. With no
// certificate configured it generates a CA and certificate in the data
// directory and returns the CA's PEM for /kds-ca.pem.
func startKDS(cfg Config, handler kds.ZoneHandler, instanceID string, log *slog.Logger) (*grpc.Server, net.Listener, []byte, error) {
	srv := kds.NewServer(kds.ServerConfig{
		Handler:    handler,
		InstanceID: instanceID,
		// Three heartbeats fit in the offline timeout.
		ZoneHeartbeat: cfg.KDS.ZoneOfflineAfter / 3,
		Session:       kds.SessionConfig{MaxMessageSize: cfg.KDS.MaxMessageSize, Debounce: cfg.KDS.Debounce},
		Log:           log,
	})
	opts := srv.GRPCServerOptions()
	var caPEM []byte
	switch {
	case cfg.KDS.Insecure:
		log.Warn("KDS serves plaintext (kds.insecure): zones' traffic is not encrypted")
	default:
		certFile, keyFile := cfg.KDS.TLSCert, cfg.KDS.TLSKey
		if certFile == "" {
			files, err := certs.EnsureSelfSigned(filepath.Join(cfg.DataDir, "kds-tls"), certs.DefaultHosts())
			if err != nil {
				return nil, nil, nil, fmt.Errorf("generating the KDS certificate: %w", err)
			}
			certFile, keyFile = files.Cert, files.Key
			if caPEM, err = os.ReadFile(files.CA); err != nil {
				return nil, nil, nil, err
			}
		}
		cert, err := tls.LoadX509KeyPair(certFile, keyFile)
		if err != nil {
			return nil, nil, nil, fmt.Errorf("kds.tlsCert/kds.tlsKey: %w", err)
		}
		opts = append(opts, grpc.Creds(credentials.NewTLS(&tls.Config{Certificates: []tls.Certificate{cert}, MinVersion: tls.VersionTLS12})))
	}
	gs := grpc.NewServer(opts...)
	v1alpha1.RegisterKDSServer(gs, srv)
	ln, err := net.Listen("tcp", cfg.KDSAddr)
	if err != nil {
		return nil, nil, nil, fmt.Errorf("kdsAddr: %w", err)
	}
	return gs, ln, caPEM, nil
}

// stopGRPC stops at once: KDS streams never end on their own, so a
// graceful stop would only wait; zones reconnect, to another replica if any.
func stopGRPC(gs *grpc.Server) { gs.Stop() }

// instanceName identifies this process among global replicas.
func instanceName() string {
	host, err := os.Hostname()
	if err != nil {
		host = "global"
	}
	return host + "-" + strconv.Itoa(os.Getpid()) + "-" + version.Version
}
