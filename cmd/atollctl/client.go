package main

import (
	"bytes"
	"context"
	"crypto/tls"
	"crypto/x509"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"os"
	"strings"
	"time"

	"github.com/atoll-mesh/atoll/internal/resource"
)

const defaultTimeout = 30 * time.Second

// client talks to one control plane's REST API.
type client struct {
	baseURL string
	timeout time.Duration
	http    http.Client
	// token is sent when set (--api-token-file, ATOLL_API_TOKEN).
	token     string
	tokenFile string
	// caFile verifies an https:// API (--api-ca-file); empty uses envCAFile
	// (ATOLL_API_CA_FILE), and that empty the system's roots. The
	// environment's CA is ignored for an http:// API, so that one shell can
	// reach a remote API over TLS and a local one in plaintext.
	caFile, envCAFile string
	// caSource names where caFile came from, for messages; caFrom, when
	// set, names where an explicit caFile came from (else --api-ca-file).
	caSource, caFrom string
	// urlFrom and tokenFrom name where baseURL and tokenFile came from;
	// context is the context whose settings apply, if any.
	urlFrom, tokenFrom, context string
	// resolve, when set, fills in the settings above from the flags, the
	// environment and the contexts before the first request.
	resolve func() error
	// ready is set once http is configured from the flags.
	ready bool
	// ident is the control plane's identity, asked once per command.
	ident *identity
	// hints says, by the plane a command needs, what to run instead.
	hints map[string]string
	// outcome is the Atoll-Outcome header of the last answer: what a PUT
	// did (created, updated, unchanged).
	outcome string
}

// apiError is an error answer of the API.
type apiError struct {
	status int
	Error  string               `json:"error"`
	Causes []resource.Violation `json:"causes"`
}

func (e *apiError) String() string {
	var b strings.Builder
	b.WriteString(e.Error)
	for _, c := range e.Causes {
		if !strings.Contains(e.Error, c.Message) {
			fmt.Fprintf(&b, "\n  * %s: %s", c.Field, c.Message)
		}
	}
	return b.String()
}

// do sends a request to the control plane, once it has said it is one,
// and returns the body of a 2xx answer, or an error with the API's message.
func (c *client) do(ctx context.Context, method, path string, body []byte) ([]byte, int, error) {
	if _, err := c.identify(ctx); err != nil {
		return nil, 0, err
	}
	data, status, u, err := c.roundTrip(ctx, method, path, body)
	if err != nil {
		return nil, status, err
	}
	if status/100 != 2 {
		ae := &apiError{status: status}
		if json.Unmarshal(data, ae) != nil || ae.Error == "" {
			ae.Error = fmt.Sprintf("%s %s: %d %s: %s", method, u, status, http.StatusText(status), strings.TrimSpace(string(data)))
		}
		return nil, status, fmt.Errorf("%s", ae.String())
	}
	return data, status, nil
}

// roundTrip sends a request and returns the answer's body and status,
// whatever the status, and the URL asked.
func (c *client) roundTrip(ctx context.Context, method, path string, body []byte) ([]byte, int, string, error) {
	if err := c.configure(); err != nil {
		return nil, 0, "", err
	}
	ctx, cancel := context.WithTimeout(ctx, c.timeout)
	defer cancel()
	path, query, _ := strings.Cut(path, "?")
	u, err := url.JoinPath(c.baseURL, path)
	if err != nil {
		return nil, 0, "", fmt.Errorf("%s %q: %w", c.urlSource(), c.baseURL, err)
	}
	if query != "" {
		u += "?" + query
	}
	req, err := http.NewRequestWithContext(ctx, method, u, bytes.NewReader(body))
	if err != nil {
		return nil, 0, u, fmt.Errorf("%s %q: %w", c.urlSource(), c.baseURL, err)
	}
	if body != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	token, err := c.apiToken()
	if err != nil {
		return nil, 0, u, err
	}
	if token != "" {
		req.Header.Set("Authorization", "Bearer "+token)
	}
	resp, err := c.http.Do(req)
	if err != nil {
		return nil, 0, u, c.explain(err)
	}
	defer resp.Body.Close()
	data, err := io.ReadAll(io.LimitReader(resp.Body, 256<<20))
	if err != nil {
		return nil, resp.StatusCode, u, fmt.Errorf("reading the answer of %s %s: %w", method, u, err)
	}
	if resp.StatusCode == http.StatusBadRequest && bytes.Contains(data, []byte("HTTP request to an HTTPS server")) {
		return nil, resp.StatusCode, u, fmt.Errorf("the API at %s serves HTTPS: use --api-url %s", c.baseURL, strings.Replace(c.baseURL, "http://", "https://", 1))
	}
	c.outcome = resp.Header.Get("Atoll-Outcome")
	return data, resp.StatusCode, u, nil
}

// urlSource names where baseURL came from, for messages.
func (c *client) urlSource() string {
	if c.urlFrom == "" {
		return "--api-url"
	}
	return c.urlFrom
}

// resourcePath is the API path of one resource, or of a list when name is "".
func resourcePath(d *resource.Descriptor, mesh, name string) string {
	p := "/" + d.Plural
	if d.Scope == resource.ScopeMesh {
		p = "/meshes/" + url.PathEscape(mesh) + p
	}
	if name != "" {
		p += "/" + url.PathEscape(name)
	}
	return p
}

// list fetches every resource of d (in mesh, for mesh-scoped types).
func (c *client) list(ctx context.Context, d *resource.Descriptor, mesh string) ([]*resource.Resource, error) {
	data, _, err := c.do(ctx, http.MethodGet, resourcePath(d, mesh, ""), nil)
	if err != nil {
		return nil, err
	}
	var page struct {
		Items []json.RawMessage `json:"items"`
	}
	if err := json.Unmarshal(data, &page); err != nil {
		return nil, fmt.Errorf("the API answered with something that is not a list: %w", err)
	}
	out := make([]*resource.Resource, 0, len(page.Items))
	for _, item := range page.Items {
		r, err := resource.Decode(item)
		if err != nil {
			return nil, fmt.Errorf("the API answered with a resource this atollctl cannot read (versions differ?): %w", err)
		}
		out = append(out, r)
	}
	return out, nil
}

func (c *client) get(ctx context.Context, d *resource.Descriptor, mesh, name string) (*resource.Resource, error) {
	data, _, err := c.do(ctx, http.MethodGet, resourcePath(d, mesh, name), nil)
	if err != nil {
		return nil, err
	}
	return resource.Decode(data)
}

// copyTo writes the API's answer to GET path to w as it is.
func (c *client) copyTo(ctx context.Context, w io.Writer, path string) error {
	data, _, err := c.do(ctx, http.MethodGet, path, nil)
	if err != nil {
		return err
	}
	_, err = w.Write(data)
	return err
}

// apiToken is the token to send: the file's, else ATOLL_API_TOKEN's.
func (c *client) apiToken() (string, error) {
	if c.tokenFile != "" {
		b, err := os.ReadFile(c.tokenFile)
		if err != nil {
			from := c.tokenFrom
			if from == "" {
				from = "--api-token-file"
			}
			return "", fmt.Errorf("%s: %w", from, err)
		}
		return strings.TrimSpace(string(b)), nil
	}
	return c.token, nil
}

// configure sets up the HTTP client from the flags, once.
func (c *client) configure() error {
	if c.ready {
		return nil
	}
	if c.resolve != nil {
		if err := c.resolve(); err != nil {
			return err
		}
	}
	https := strings.HasPrefix(c.baseURL, "https://")
	if c.caFile != "" && !https {
		from := c.caFrom
		if from == "" {
			from = "--api-ca-file"
		}
		return fmt.Errorf("%s verifies an API served over TLS, but the API URL %s (%s) is not https://: use an https:// URL, or drop %s", from, c.baseURL, c.urlSource(), from)
	}
	c.caSource = c.caFrom
	if c.caSource == "" {
		c.caSource = "--api-ca-file"
	}
	if c.caFile == "" && https {
		c.caFile, c.caSource = c.envCAFile, "ATOLL_API_CA_FILE"
	}
	if c.caFile != "" {
		pem, err := os.ReadFile(c.caFile)
		if err != nil {
			return fmt.Errorf("%s: %w", c.caSource, err)
		}
		pool := x509.NewCertPool()
		if !pool.AppendCertsFromPEM(pem) {
			return fmt.Errorf("%s: %s holds no PEM certificate (a control plane with --api-tls serves its CA at /api-ca.pem)", c.caSource, c.caFile)
		}
		tr := http.DefaultTransport.(*http.Transport).Clone()
		tr.TLSClientConfig = &tls.Config{RootCAs: pool, MinVersion: tls.VersionTLS12}
		c.http.Transport = tr
	}
	c.ready = true
	return nil
}

// explain turns a failed request into what to do about it.
func (c *client) explain(err error) error {
	var unknownCA x509.UnknownAuthorityError
	var hostname x509.HostnameError
	var invalid x509.CertificateInvalidError
	var verify *tls.CertificateVerificationError
	switch {
	case errors.As(err, &unknownCA), errors.As(err, &verify) && !errors.As(err, &hostname) && !errors.As(err, &invalid):
		which := "the system's trusted roots"
		if c.caFile != "" {
			which = "the CA in " + c.caSource + " " + c.caFile
		}
		return fmt.Errorf("the API's certificate at %s is not signed by %s: pass --api-ca-file with the CA that signed it (a control plane with --api-tls serves its CA at /api-ca.pem and keeps it in its data dir as api-tls/kds-ca.pem): %w", c.baseURL, which, err)
	case errors.As(err, &hostname):
		return fmt.Errorf("the API's certificate does not cover the host in --api-url %s: reach the API by a name the certificate covers, or add this one (--api-tls-san on the control plane): %w", c.baseURL, err)
	case errors.As(err, &invalid):
		return fmt.Errorf("the API's certificate at %s is not valid (expired, or not a server certificate): %w", c.baseURL, err)
	case strings.Contains(err.Error(), "server gave HTTP response to HTTPS client"):
		return fmt.Errorf("the API at %s serves plaintext HTTP, not HTTPS: use --api-url %s", c.baseURL, strings.Replace(c.baseURL, "https://", "http://", 1))
	}
	return fmt.Errorf("cannot reach the API at %s: %w (is the control plane running? %s)", c.baseURL, err, c.fixURL())
}
