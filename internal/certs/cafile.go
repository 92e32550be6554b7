package certs

import (
	"bytes"
	"crypto/x509"
	"encoding/pem"
	"fmt"
	"os"
	"sync"
)

// CAFile serves the CA certificates in a PEM file and follows it, as
// Reloader does a certificate and key: each read after the file changed (a
// Secret updated by the kubelet) returns the new content, and a file that
// cannot be read or holds no certificate keeps the last good one in use.
type CAFile struct {
	path string

	mu      sync.Mutex
	pem     []byte
	lastErr error
}

// NewCAFile reads path once: a file that holds no certificate is an error.
func NewCAFile(path string) (*CAFile, error) {
	c := &CAFile{path: path}
	if err := c.read(); err != nil {
		return nil, err
	}
	return c, nil
}

// PEM is the file's content as last read whole.
func (c *CAFile) PEM() []byte {
	err := c.read()
	c.mu.Lock()
	defer c.mu.Unlock()
	c.lastErr = err
	return c.pem
}

// Err is the last failure to read a changed file (nil once one reads).
func (c *CAFile) Err() error {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.lastErr
}

func (c *CAFile) read() error {
	b, err := os.ReadFile(c.path)
	if err != nil {
		return fmt.Errorf("reading the CA: %w", err)
	}
	c.mu.Lock()
	same := bytes.Equal(b, c.pem)
	c.mu.Unlock()
	if same {
		return nil
	}
	if _, err := ParseCertificates(b); err != nil {
		return fmt.Errorf("%s: %w", c.path, err)
	}
	c.mu.Lock()
	c.pem = b
	c.mu.Unlock()
	return nil
}

// ParseCertificates parses every CERTIFICATE block of a PEM bundle; one
// that does not parse, or none at all, is an error.
func ParseCertificates(b []byte) ([]*x509.Certificate, error) {
	var out []*x509.Certificate
	for {
		var block *pem.Block
		block, b = pem.Decode(b)
		if block == nil {
			break
		}
		if block.Type != "CERTIFICATE" {
			continue
		}
		c, err := x509.ParseCertificate(block.Bytes)
		if err != nil {
			return nil, fmt.Errorf("certificate %d does not parse: %w", len(out)+1, err)
		}
		out = append(out, c)
	}
	if len(out) == 0 {
		return nil, fmt.Errorf("holds no PEM certificate")
	}
	return out, nil
}
