package kubeenv

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"net"
	"os"
	"path/filepath"
	"strconv"
	"testing"
	"time"

	authenticationv1 "k8s.io/api/authentication/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/rest"

	"github.com/atoll-mesh/atoll/internal/embedetcd"
)

// Version is the kube-apiserver that test/kubeapiserver/go.mod pins and
// `make kube-apiserver` builds.
const Version = "v1.37.2"

// BinaryEnv names the environment variable that, when set, is the path of
// the kube-apiserver binary to run instead of the cached one.
const BinaryEnv = "ATOLL_KUBE_APISERVER"

// ServiceAccountIssuer is the issuer (and default audience) of the
// ServiceAccount tokens the apiserver signs.
const ServiceAccountIssuer = "https://kubernetes.default.svc.cluster.local"

// ServiceCIDR is the range Services' cluster IPs are allocated from.
const ServiceCIDR = "10.96.0.0/16"

// Bounds on how long starting and stopping may take. A warm start is a few
// seconds; the margin is for a machine busy with other tests.
const (
	etcdStartTimeout  = time.Minute
	readyTimeout      = 2 * time.Minute
	readyPollInterval = 100 * time.Millisecond
	stopTimeout       = 15 * time.Second
	requestTimeout    = 10 * time.Second
)

// Env is a running etcd and kube-apiserver on loopback.
type Env struct {
	config *rest.Config
	// Dir holds the apiserver's certificates, keys and log.
	Dir string
	// LogFile is the apiserver's combined stdout and stderr.
	LogFile string
}

// BinaryPath returns where the kube-apiserver binary is expected: the value
// of ATOLL_KUBE_APISERVER when set, else the versioned file in the user's
// cache directory that `make kube-apiserver` writes.
func BinaryPath() (string, error) {
	if p := os.Getenv(BinaryEnv); p != "" {
		return p, nil
	}
	cache, err := os.UserCacheDir()
	if err != nil {
		return "", fmt.Errorf("finding the cache directory for kube-apiserver (set %s instead): %w", BinaryEnv, err)
	}
	return filepath.Join(cache, "atoll", "tools", "kube-apiserver-"+Version), nil
}

// Start runs an embedded etcd and a kube-apiserver on free loopback ports,
// waits until the apiserver's /readyz answers ok, and stops both when the
// test ends. It fails the test when the binary is missing or anything does
// not come up in time.
func Start(t testing.TB) *Env {
	t.Helper()
	bin, err := BinaryPath()
	if err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(bin); err != nil {
		t.Fatalf("kube-apiserver %s is not at %s: run `make kube-apiserver` to build it (or set %s to a kube-apiserver binary): %v",
			Version, bin, BinaryEnv, err)
	}
	dir := t.TempDir()
	certs, err := newPKI(dir)
	if err != nil {
		t.Fatalf("kube-apiserver certificates: %v", err)
	}

	etcd, err := embedetcd.Start(context.Background(), embedetcd.Config{
		DataDir:      filepath.Join(dir, "etcd"),
		ClientAddr:   "127.0.0.1:0",
		PeerAddr:     "127.0.0.1:0",
		StartTimeout: etcdStartTimeout,
	}, slog.New(slog.NewTextHandler(io.Discard, nil)))
	if err != nil {
		t.Fatalf("etcd for kube-apiserver: %v", err)
	}
	t.Cleanup(etcd.Close)

	port, err := freePort()
	if err != nil {
		t.Fatalf("a port for kube-apiserver: %v", err)
	}
	env := &Env{Dir: dir, LogFile: filepath.Join(dir, "kube-apiserver.log")}
	proc, err := StartProcess(bin, apiserverArgs(certs, dir, etcd.ClientEndpoint(), port), env.LogFile)
	if err != nil {
		t.Fatalf("starting %s: %v", bin, err)
	}
	t.Cleanup(func() {
		if err := proc.Stop(stopTimeout); err != nil {
			t.Errorf("stopping kube-apiserver: %v", err)
		}
	})

	env.config = &rest.Config{
		Host: "https://" + net.JoinHostPort("127.0.0.1", strconv.Itoa(port)),
		TLSClientConfig: rest.TLSClientConfig{
			CAData:   certs.caPEM,
			CertData: certs.adminCertPEM,
			KeyData:  certs.adminKeyPEM,
		},
		// Tests create objects in bursts; the client's default of 5 QPS
		// would make them slow, not more real.
		QPS:   200,
		Burst: 400,
	}
	ctx, cancel := context.WithTimeout(context.Background(), readyTimeout)
	defer cancel()
	if err := waitReady(ctx, env.config, proc); err != nil {
		t.Fatalf("kube-apiserver on %s: %v\nlast lines of %s:\n%s", env.config.Host, err, env.LogFile, logTail(env.LogFile, 40))
	}
	return env
}

// apiserverArgs configures a single apiserver for tests: TLS with the
// generated certificates, client-certificate admin, ServiceAccount tokens,
// RBAC, no endpoint reconciler, and default admission less ServiceAccount, which would refuse every
// Pod until a controller (not run here) creates each namespace's "default"
// ServiceAccount.
func apiserverArgs(certs *pki, dir, etcdEndpoint string, port int) []string {
	return []string{
		"--etcd-servers=" + etcdEndpoint,
		"--bind-address=127.0.0.1",
		"--advertise-address=127.0.0.1",
		// The endpoint reconciler refuses a loopback advertise address; with
		// none, the "kubernetes" Service simply has no endpoints.
		"--endpoint-reconciler-type=none",
		"--secure-port=" + strconv.Itoa(port),
		"--cert-dir=" + dir,
		"--tls-cert-file=" + certs.servingCertFile,
		"--tls-private-key-file=" + certs.servingKeyFile,
		"--client-ca-file=" + certs.caFile,
		"--service-account-issuer=" + ServiceAccountIssuer,
		"--service-account-key-file=" + certs.saPubFile,
		"--service-account-signing-key-file=" + certs.saKeyFile,
		"--service-cluster-ip-range=" + ServiceCIDR,
		"--authorization-mode=RBAC",
		"--disable-admission-plugins=ServiceAccount",
		"--profiling=false",
	}
}

// Config returns a copy of the admin's client configuration: a client
// certificate in group system:masters, so every request is allowed.
func (e *Env) Config() *rest.Config { return rest.CopyConfig(e.config) }

// Clientset returns a typed client for the admin.
func (e *Env) Clientset(t testing.TB) *kubernetes.Clientset {
	t.Helper()
	return clientset(t, e.Config())
}

// ServiceAccountToken issues a token for the ServiceAccount namespace/name
// through the TokenRequest API, with the apiserver's default audience and
// lifetime (one hour). The ServiceAccount must exist.
func (e *Env) ServiceAccountToken(t testing.TB, namespace, name string) string {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), requestTimeout)
	defer cancel()
	tr, err := e.Clientset(t).CoreV1().ServiceAccounts(namespace).CreateToken(ctx, name,
		&authenticationv1.TokenRequest{}, metav1.CreateOptions{})
	if err != nil {
		t.Fatalf("token for ServiceAccount %s/%s: %v", namespace, name, err)
	}
	return tr.Status.Token
}

// ServiceAccountConfig returns a client configuration that authenticates
// as the ServiceAccount namespace/name with a fresh token, so RBAC decides
// what it may do.
func (e *Env) ServiceAccountConfig(t testing.TB, namespace, name string) *rest.Config {
	t.Helper()
	return &rest.Config{
		Host:            e.config.Host,
		TLSClientConfig: rest.TLSClientConfig{CAData: e.config.CAData},
		BearerToken:     e.ServiceAccountToken(t, namespace, name),
		QPS:             e.config.QPS,
		Burst:           e.config.Burst,
	}
}

func clientset(t testing.TB, cfg *rest.Config) *kubernetes.Clientset {
	t.Helper()
	cs, err := kubernetes.NewForConfig(cfg)
	if err != nil {
		t.Fatalf("kubernetes client for %s: %v", cfg.Host, err)
	}
	return cs
}

// freePort asks the kernel for a free loopback port. Another process could
// take it before the apiserver binds it; the apiserver then exits with
// "address already in use", which Start reports.
func freePort() (int, error) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return 0, err
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port, nil
}
