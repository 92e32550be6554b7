package xdsrelay

import (
	"bytes"
	"errors"
	"io"
	"io/fs"
	"os"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
)

// readToken reads the token file for a stream that is opening. Every
// failure is a codes.Unavailable status naming the file: the kubelet
// writes and rotates the file, so Envoy's retry of the stream can
// succeed.
func readToken(path string) (string, error) {
	f, err := os.Open(path)
	if errors.Is(err, fs.ErrNotExist) {
		return "", status.Errorf(codes.Unavailable, "xds relay: the token file %s does not exist: it is the pod's projected ServiceAccount token (audience atoll-xds), written by the kubelet: check the sidecar's token volume and --token-file", path)
	}
	if err != nil {
		return "", status.Errorf(codes.Unavailable, "xds relay: opening the token file %s failed: %v", path, err)
	}
	defer f.Close()
	b, err := io.ReadAll(io.LimitReader(f, maxTokenSize+1))
	if err != nil {
		return "", status.Errorf(codes.Unavailable, "xds relay: reading the token file %s failed: %v", path, err)
	}
	if len(b) > maxTokenSize {
		return "", status.Errorf(codes.Unavailable, "xds relay: the token file %s is larger than %d bytes: it must hold one ServiceAccount token", path, maxTokenSize)
	}
	token := bytes.TrimSpace(b)
	if len(token) == 0 {
		return "", status.Errorf(codes.Unavailable, "xds relay: the token file %s is empty: the kubelet has not written the pod's ServiceAccount token yet, or --token-file names the wrong file", path)
	}
	for i, c := range token {
		if c < 0x21 || c > 0x7e {
			return "", status.Errorf(codes.Unavailable, "xds relay: the token file %s holds byte %#x at offset %d, which a bearer token cannot have: it must hold one ServiceAccount token", path, c, i)
		}
	}
	return string(token), nil
}
