package apiserver

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"strconv"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"

	"github.com/atoll-mesh/atoll/internal/config"
)

// Check is one readiness condition; a nil error means ready.
type Check struct {
	Name  string
	Check func(ctx context.Context) error
}

// NewRegistry returns a Prometheus registry with the Go runtime and process
// collectors, for a process's /metrics.
func NewRegistry() *prometheus.Registry {
	reg := prometheus.NewRegistry()
	reg.MustRegister(collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	return reg
}

// RegisterOps adds /healthz, /readyz and /metrics to mux.
// /healthz answers while the process runs; /readyz runs every check, each
// with a short timeout, and answers 503 naming the first that fails.
func RegisterOps(mux *http.ServeMux, reg *prometheus.Registry, checks ...Check) {
	mux.HandleFunc("GET /healthz", func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "text/plain; charset=utf-8")
		fmt.Fprintln(w, "ok")
	})
	mux.HandleFunc("GET /readyz", func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "text/plain; charset=utf-8")
		for _, c := range checks {
			ctx, cancel := context.WithTimeout(r.Context(), 2*time.Second)
			err := c.Check(ctx)
			cancel()
			if err != nil {
				w.WriteHeader(http.StatusServiceUnavailable)
				fmt.Fprintf(w, "not ready: %s: %v\n", c.Name, err)
				return
			}
		}
		fmt.Fprintln(w, "ok")
	})
	mux.Handle("GET /metrics", promhttp.HandlerFor(reg, promhttp.HandlerOpts{Registry: reg}))
}

// Instrument counts requests and their latency by route and status.
func Instrument(reg prometheus.Registerer, next http.Handler) http.Handler {
	requests := prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "atoll_api_requests_total",
		Help: "REST API requests by method, route and status code.",
	}, []string{"method", "route", "code"})
	latency := prometheus.NewHistogramVec(prometheus.HistogramOpts{
		Name:    "atoll_api_request_duration_seconds",
		Help:    "REST API request latency by method and route.",
		Buckets: prometheus.ExponentialBuckets(0.0005, 4, 8),
	}, []string{"method", "route"})
	reg.MustRegister(requests, latency)
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		start := time.Now()
		rec := &statusRecorder{ResponseWriter: w, status: http.StatusOK}
		next.ServeHTTP(rec, r)
		route := r.Pattern
		if route == "" {
			route = "unmatched"
		}
		requests.WithLabelValues(r.Method, route, strconv.Itoa(rec.status)).Inc()
		latency.WithLabelValues(r.Method, route).Observe(time.Since(start).Seconds())
	})
}

type statusRecorder struct {
	http.ResponseWriter
	status int
}

func (s *statusRecorder) WriteHeader(code int) {
	s.status = code
	s.ResponseWriter.WriteHeader(code)
}

// Server is an HTTP server with a lifecycle.
type Server struct {
	ln  net.Listener
	srv *http.Server
	log *slog.Logger
	// tls is set when srv serves TLS (srv.TLSConfig alone does not say:
	// Serve fills it in for HTTP/2).
	tls bool
}

// Limits of every request. No handler streams: each answers at once, so a
// request that takes longer than these is a slow or stuck client.
const (
	// MaxBodySize bounds a request body (resources are further bounded by
	// resource.MaxDocumentSize).
	MaxBodySize = 4 << 20
	// MaxHeaderBytes bounds a request's header.
	MaxHeaderBytes = 64 << 10
	// ReadHeaderTimeout bounds the TLS handshake and reading the header;
	// ReadTimeout reading the whole request; WriteTimeout the handler and
	// its answer; IdleTimeout a kept-alive connection between requests.
	ReadHeaderTimeout = 10 * time.Second
	ReadTimeout       = 30 * time.Second
	WriteTimeout      = time.Minute
	IdleTimeout       = 2 * time.Minute
)

// ListenConfig configures the API server.
type ListenConfig struct {
	// Addr is the listen address (host:port; port 0 picks a free port).
	Addr string
	// Listener, when set, is Addr already bound: Listen serves on it.
	Listener net.Listener
	Handler  http.Handler
	// TLS says how to serve; the zero value serves plaintext.
	TLS TLS
	Log *slog.Logger
}

// Listen binds cfg.Addr now, so a caller learns of a taken port at start
// and can read the bound address before Run. With cfg.TLS.Generate the
// certificate is kept current until ctx ends. Every request body is bounded
// by MaxBodySize, and GET /api-ca.pem serves a generated CA to anyone.
func Listen(ctx context.Context, cfg ListenConfig) (*Server, error) {
	var tlsConfig *tls.Config
	var caFile string
	if cfg.TLS.Enabled() {
		var err error
		if tlsConfig, caFile, err = serverTLS(ctx, cfg.TLS, cfg.Log); err != nil {
			return nil, err
		}
	}
	ln := cfg.Listener
	if ln == nil {
		var err error
		if ln, err = config.Listen("apiAddr", cfg.Addr); err != nil {
			return nil, err
		}
	}
	if tlsConfig == nil && !loopbackListener(cfg.Addr) {
		cfg.Log.Warn("the REST API serves plaintext beyond loopback (apiInsecure): the API token and proxies' tokens cross the network in the clear", "apiAddr", ln.Addr().String())
	}
	return &Server{
		ln: ln,
		srv: &http.Server{
			Handler:           serveCA(caFile, limitBody(MaxBodySize, cfg.Handler)),
			TLSConfig:         tlsConfig,
			ReadHeaderTimeout: ReadHeaderTimeout,
			ReadTimeout:       ReadTimeout,
			WriteTimeout:      WriteTimeout,
			IdleTimeout:       IdleTimeout,
			MaxHeaderBytes:    MaxHeaderBytes,
			ErrorLog:          slog.NewLogLogger(cfg.Log.Handler(), slog.LevelDebug),
		},
		log: cfg.Log,
		tls: tlsConfig != nil,
	}, nil
}

// limitBody answers 413 to a request whose body is declared larger than
// limit, and makes reading more than limit bytes of any body fail with an
// *http.MaxBytesError, which writeError answers with 413 too.
func limitBody(limit int64, next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.ContentLength > limit {
			writeError(w, &http.MaxBytesError{Limit: limit})
			return
		}
		r.Body = http.MaxBytesReader(w, r.Body, limit)
		next.ServeHTTP(w, r)
	})
}

// URL is the API's base URL, http:// or https://, at the bound address.
func (s *Server) URL() string {
	scheme := "http"
	if s.tls {
		scheme = "https"
	}
	return scheme + "://" + s.ln.Addr().String()
}

// Addr is the bound address.
func (s *Server) Addr() string { return s.ln.Addr().String() }

// Run serves until ctx ends, then drains requests for up to 5 seconds.
func (s *Server) Run(ctx context.Context) error {
	errc := make(chan error, 1)
	go func() {
		if s.tls {
			// The certificate comes from TLSConfig.GetCertificate.
			errc <- s.srv.ServeTLS(s.ln, "", "")
			return
		}
		errc <- s.srv.Serve(s.ln)
	}()
	select {
	case err := <-errc:
		return err
	case <-ctx.Done():
	}
	sctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if err := s.srv.Shutdown(sctx); err != nil {
		s.srv.Close()
	}
	if err := <-errc; err != nil && !errors.Is(err, http.ErrServerClosed) {
		return err
	}
	return nil
}
