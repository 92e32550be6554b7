package inject

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"os"
	"time"

	"golang.org/x/sync/errgroup"

	"github.com/atoll-mesh/atoll/internal/certs"
)

// ServeConfig is where and how the webhook is served.
type ServeConfig struct {
	// Addr is the HTTPS listener, such as ":5443".
	Addr string
	// Listener, when set, is Addr already bound: Run serves on it, so
	// the caller learns of a taken port before it starts anything.
	Listener net.Listener
	// CertFile and KeyFile are the serving certificate, followed on disk
	// (a renewal by cert-manager shows at the next handshake). Empty: a
	// CA and a certificate are generated in Dir and kept current, and the
	// CA goes into the webhook configuration's caBundle.
	CertFile, KeyFile string
	// Dir keeps the generated CA and certificate.
	Dir string
	// Hosts are the names the generated certificate covers besides
	// certs.DefaultHosts: the webhook Service's DNS name
	// (<service>.<namespace>.svc), which the API server calls.
	Hosts []string
	// WebhookName names the MutatingWebhookConfiguration whose caBundle
	// is kept holding the generated CA; empty leaves it to whoever
	// installs the configuration.
	WebhookName string
}

// Validate checks the config.
func (c ServeConfig) Validate() error {
	if _, _, err := net.SplitHostPort(c.Addr); err != nil {
		return fmt.Errorf("injector address %q is not host:port (such as :5443): %w", c.Addr, err)
	}
	if (c.CertFile == "") != (c.KeyFile == "") {
		return errors.New("injector TLS: give both the certificate and the key file, or neither to generate them")
	}
	if c.CertFile == "" && c.Dir == "" {
		return errors.New("injector TLS: no directory to keep a generated certificate in")
	}
	return nil
}

// Generated certificates: valid a year, checked daily, renewed within
// certs.Renewal of expiry.
const (
	certValidity = 365 * 24 * time.Hour
	certCheck    = 24 * time.Hour
)

// Server serves the webhook over HTTPS and keeps its CA in the webhook
// configuration.
type Server struct {
	cfg      ServeConfig
	handler  http.Handler
	webhooks Webhooks
	log      *slog.Logger
	ready    chan net.Addr
}

// NewServer returns a Server of handler. webhooks may be nil when
// cfg.WebhookName is empty.
func NewServer(cfg ServeConfig, handler http.Handler, webhooks Webhooks, log *slog.Logger) (*Server, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	if cfg.WebhookName != "" && webhooks == nil {
		return nil, errors.New("injector: a webhook configuration to keep is named but no client given")
	}
	return &Server{cfg: cfg, handler: handler, webhooks: webhooks,
		log: log.With("component", "injector"), ready: make(chan net.Addr, 1)}, nil
}

// Addr returns the listener's address once Run listens.
func (s *Server) Addr(ctx context.Context) (net.Addr, error) {
	select {
	case a := <-s.ready:
		s.ready <- a
		return a, nil
	case <-ctx.Done():
		return nil, ctx.Err()
	}
}

// Run serves until ctx ends.
func (s *Server) Run(ctx context.Context) error {
	// Ends the certificate's upkeep too when Run fails before serving.
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	certFile, keyFile := s.cfg.CertFile, s.cfg.KeyFile
	var caPEM []byte
	g, ctx := errgroup.WithContext(ctx)
	if certFile == "" {
		hosts := func() []string { return append(certs.DefaultHosts(), s.cfg.Hosts...) }
		files, err := certs.Maintain(ctx, s.cfg.Dir, hosts, certValidity, certCheck, func(out certs.Outcome, err error) {
			switch {
			case err != nil:
				s.log.Error("keeping the injector's certificate", "dir", s.cfg.Dir, "error", err)
			case out.Issued:
				s.log.Info("injector certificate issued", "dir", s.cfg.Dir, "reason", out.Reason, "new_ca", out.CreatedCA)
			}
		})
		if err != nil {
			return fmt.Errorf("injector certificate in %s: %w", s.cfg.Dir, err)
		}
		certFile, keyFile = files.Cert, files.Key
		if caPEM, err = os.ReadFile(files.CA); err != nil {
			return fmt.Errorf("injector CA: %w", err)
		}
	}
	reloader, err := certs.NewReloader(certFile, keyFile)
	if err != nil {
		return fmt.Errorf("injector TLS: %w", err)
	}
	ln := s.cfg.Listener
	if ln == nil {
		if ln, err = net.Listen("tcp", s.cfg.Addr); err != nil {
			return fmt.Errorf("injector: %w", err)
		}
	}
	mux := http.NewServeMux()
	mux.Handle(Path, s.handler)
	srv := &http.Server{
		Handler:           mux,
		TLSConfig:         &tls.Config{GetCertificate: reloader.GetCertificate, MinVersion: tls.VersionTLS12},
		ReadHeaderTimeout: 10 * time.Second,
		ReadTimeout:       30 * time.Second,
		WriteTimeout:      30 * time.Second,
		ErrorLog:          slog.NewLogLogger(s.log.Handler(), slog.LevelDebug),
	}
	s.ready <- ln.Addr()
	s.log.Info("serving the sidecar injector", "addr", ln.Addr().String(), "path", Path)
	g.Go(func() error {
		if err := srv.ServeTLS(ln, "", ""); !errors.Is(err, http.ErrServerClosed) {
			return fmt.Errorf("injector: %w", err)
		}
		return nil
	})
	g.Go(func() error {
		<-ctx.Done()
		shut, cancel := context.WithTimeout(context.WithoutCancel(ctx), 5*time.Second)
		defer cancel()
		return srv.Shutdown(shut)
	})
	if s.cfg.WebhookName != "" && caPEM != nil {
		g.Go(func() error {
			return keepCABundle(ctx, s.webhooks, s.cfg.WebhookName, caPEM, s.log)
		})
	}
	return g.Wait()
}
