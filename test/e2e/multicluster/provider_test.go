package multicluster

import (
	"testing"

	k8s "k8s.io/client-go/kubernetes"
)

// Provider is what the scenarios need from an environment: a global and
// zone clusters, each with its zone synced to the global.
type Provider interface {
	// Global is the global control plane.
	Global() Global
	// Zones are the zone clusters, zone-1 first.
	Zones() []Cluster
}

// Global is the global control plane, as the scenarios reach it.
type Global interface {
	// APIURL is the global's REST API ("http://host:port").
	APIURL() string
	// Stop stops the global and returns once it is down; Start brings it
	// back on the same state and address and returns once it is ready.
	Stop(t *testing.T)
	Start(t *testing.T)
}

// Cluster is one zone cluster.
type Cluster interface {
	// Zone is the name of the zone running in the cluster.
	Zone() string
	// Kube is a client of the cluster's API server with every permission.
	Kube() k8s.Interface
	// DNSAddr is the cluster's DNS ("ip:port", UDP and TCP), what pods
	// resolve names with.
	DNSAddr() string
	// ZoneAPIURL is the zone's REST API ("http://host:port").
	ZoneAPIURL() string
	// RestartZone replaces the zone's pod and returns once the new one is
	// ready.
	RestartZone(t *testing.T)
	// CreateNamespace creates a namespace, in the mesh (labelled for it)
	// or not.
	CreateNamespace(t *testing.T, name string, inMesh bool)
	// RunGateway runs one pod of a delegated gateway (annotated
	// atoll.io/gateway: enabled, labelled app: name) and a Service name
	// selecting it, port 80; it returns once the pod is Ready with its IP.
	RunGateway(t *testing.T, namespace, name string) (podIP string)
	// RunBackend runs a workload app: name behind the Service name on
	// port, with replicas Ready pods.
	RunBackend(t *testing.T, namespace, name string, port int32, replicas int)
	// ScaleBackend sets the Ready pods of a backend RunBackend started;
	// pod i is named <name>-<i> and answers requests with its name.
	ScaleBackend(t *testing.T, namespace, name string, replicas int)
	// CallFromGateway has the gateway RunGateway started (namespace, name)
	// make n requests to the backend named meshName (a `.mesh` name) on
	// port, through the gateway's own mesh configuration (its proxy's
	// xDS); it returns the names of the backend pods that answered, one
	// per request, or the error of a request that failed (no endpoints,
	// unreachable).
	CallFromGateway(t *testing.T, namespace, name, meshName string, port int32, n int) (answeredBy []string, err error)
	// Disconnect cuts the zone off from the global (its KDS connection and
	// new ones) and leaves everything else running; Reconnect heals the
	// cut.
	Disconnect(t *testing.T)
	Reconnect(t *testing.T)
}
