package zone

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"time"

	"github.com/atoll-mesh/atoll/internal/certs"
)

// The xDS server's certificate comes from one of two places: a CA and
// certificate the zone generates and keeps in dataDir/xds-tls (each
// replica its own), or files every replica shares (xds.tlsCert, tlsKey,
// tlsCA), such as a cert-manager Secret mounted into each pod.

func xdsTLSDir(dataDir string) string { return filepath.Join(dataDir, "xds-tls") }

// xdsCAFile is the CA file of the zone's xDS certificate: xds.tlsCA, or
// the one the zone generates; empty when xDS is plaintext.
func (c Config) xdsCAFile() string {
	switch {
	case !c.XDS.TLS:
		return ""
	case c.XDS.TLSCA != "":
		return c.XDS.TLSCA
	default:
		return certs.FilesIn(xdsTLSDir(c.DataDir)).CA
	}
}

// checkFiles checks xds.tlsCert, tlsKey and tlsCA: given together, with
// xds.tls, without tlsSANs, and (read at now) a certificate valid now,
// its key, and a CA that verifies it for a server.
func (x XDS) checkFiles(now time.Time) error {
	if x.TLSCert == "" && x.TLSKey == "" && x.TLSCA == "" {
		return nil
	}
	var errs []error
	for _, f := range []struct{ field, flag, value string }{
		{"xds.tlsCert", "--xds-tls-cert", x.TLSCert}, {"xds.tlsKey", "--xds-tls-key", x.TLSKey}, {"xds.tlsCA", "--xds-tls-ca", x.TLSCA},
	} {
		if f.value == "" {
			errs = append(errs, fmt.Errorf("%s: is required with the other xDS certificate files: give %s too (all three, e.g. a kubernetes.io/tls Secret's tls.crt, tls.key and ca.crt), or none to let the zone generate one", f.field, f.flag))
		}
	}
	if !x.TLS {
		errs = append(errs, errors.New("xds.tlsCert: xDS certificate files are given, but xds.tls is off: add --xds-tls (the files then replace the certificate the zone would generate)"))
	}
	if len(x.TLSSANs) > 0 {
		errs = append(errs, errors.New("xds.tlsSANs: names for the certificate the zone generates, but xds.tlsCert gives the certificate (its names are its own): drop --xds-tls-san"))
	}
	if len(errs) > 0 {
		return errors.Join(errs...)
	}
	return checkServingFiles(x.TLSCert, x.TLSKey, x.TLSCA, now)
}

// checkServingFiles reads a certificate, its key and its CA and says what
// is wrong with them as a server's identity at now.
func checkServingFiles(certFile, keyFile, caFile string, now time.Time) error {
	certPEM, err := os.ReadFile(certFile)
	if err != nil {
		return fmt.Errorf("xds.tlsCert: %w", err)
	}
	keyPEM, err := os.ReadFile(keyFile)
	if err != nil {
		return fmt.Errorf("xds.tlsKey: %w", err)
	}
	caPEM, err := os.ReadFile(caFile)
	if err != nil {
		return fmt.Errorf("xds.tlsCA: %w", err)
	}
	chain, err := certs.ParseCertificates(certPEM)
	if err != nil {
		return fmt.Errorf("xds.tlsCert: %s %w: give the server certificate (PEM), such as a Secret's tls.crt", certFile, err)
	}
	if _, err := tls.X509KeyPair(certPEM, keyPEM); err != nil {
		return fmt.Errorf("xds.tlsKey: %s is not the key of the certificate in %s (%w): give the key issued with it, such as the same Secret's tls.key", keyFile, certFile, err)
	}
	leaf := chain[0]
	if now.Before(leaf.NotBefore) || now.After(leaf.NotAfter) {
		return fmt.Errorf("xds.tlsCert: the certificate in %s is valid from %s to %s, not now (%s): renew it, or check this machine's clock",
			certFile, leaf.NotBefore.UTC().Format(time.RFC3339), leaf.NotAfter.UTC().Format(time.RFC3339), now.UTC().Format(time.RFC3339))
	}
	cas, err := certs.ParseCertificates(caPEM)
	if err != nil {
		return fmt.Errorf("xds.tlsCA: %s %w: give the CA that signed the xDS certificate (PEM), such as the Secret's ca.crt", caFile, err)
	}
	roots, intermediates := x509.NewCertPool(), x509.NewCertPool()
	for _, c := range cas {
		roots.AddCert(c)
	}
	for _, c := range chain[1:] {
		intermediates.AddCert(c)
	}
	if _, err := leaf.Verify(x509.VerifyOptions{Roots: roots, Intermediates: intermediates, CurrentTime: now,
		KeyUsages: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth}}); err != nil {
		return fmt.Errorf("xds.tlsCA: %s does not verify the certificate in %s, so sidecars would refuse it (%w): give the CA that signed it, such as the same Secret's ca.crt", caFile, certFile, err)
	}
	return nil
}

// xdsCertificate returns the xDS server's TLS configuration and its CA,
// both following their files: xds.tlsCert, tlsKey and tlsCA when given,
// else a CA and certificate kept current in dataDir/xds-tls until ctx
// ends.
func xdsCertificate(ctx context.Context, cfg Config, log *slog.Logger) (*tls.Config, func() []byte, error) {
	certFile, keyFile, caFile := cfg.XDS.TLSCert, cfg.XDS.TLSKey, cfg.XDS.TLSCA
	if certFile == "" {
		files, err := maintainXDSCertificate(ctx, cfg, log)
		if err != nil {
			return nil, nil, err
		}
		certFile, keyFile, caFile = files.Cert, files.Key, files.CA
	} else {
		log.Info("serving xDS with the certificate in files, followed on disk", "cert", certFile, "ca", caFile)
	}
	ca, err := certs.NewCAFile(caFile)
	if err != nil {
		return nil, nil, fmt.Errorf("xds.tlsCA: %w", err)
	}
	reloader, err := certs.NewReloader(certFile, keyFile)
	if err != nil {
		return nil, nil, fmt.Errorf("xds.tlsCert/xds.tlsKey: %w", err)
	}
	return &tls.Config{GetCertificate: reloader.GetCertificate, MinVersion: tls.VersionTLS12}, ca.PEM, nil
}

// maintainXDSCertificate keeps the zone's own xDS CA and certificate in
// dataDir/xds-tls current while the zone runs.
func maintainXDSCertificate(ctx context.Context, cfg Config, log *slog.Logger) (certs.Files, error) {
	dir := xdsTLSDir(cfg.DataDir)
	hosts := func() []string { return append(certs.DefaultHosts(), cfg.XDS.TLSSANs...) }
	files, err := certs.Maintain(ctx, dir, hosts, 365*24*time.Hour, 12*time.Hour, func(out certs.Outcome, err error) {
		switch {
		case err != nil:
			log.Error("keeping the xDS certificate current failed; retrying in 12h", "dir", dir, "error", err)
		case out.ReplacedCA:
			log.Warn("generated a new xDS CA: proxies need bootstraps (or /xds-ca.pem) fetched again", "dir", dir, "reason", out.Reason)
		case out.Issued:
			log.Info("issued the xDS certificate", "reason", out.Reason, "dir", dir)
		}
	})
	if err != nil {
		return files, fmt.Errorf("dataDir: keeping the xDS certificate in %s: %w", dir, err)
	}
	return files, nil
}
