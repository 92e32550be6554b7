// Package multicluster is the multi-cluster end-to-end suite: one global
// and two zone clusters, and scenarios that check what a user of the chart
// sees (zones online with their tokens, a delegated gateway reaching the
// global, `.mesh` names resolving to one VIP through each cluster's own
// DNS, an ExternalName Service into the mesh, the gateway's requests
// routed by its xDS configuration to the backend's pods in the other zone,
// a zone cut off from the global and reconnected, zones serving through a
// global restart and restarting while it is down, endpoints following a
// backend scaled to zero, a revoked zone token cutting the zone off).
//
// Scenarios are functions of a Provider, which gives the clusters. The
// local provider (provider_local_test.go, run by TestLocal) builds each
// cluster on loopback without a container engine: a real kube-apiserver
// and etcd (test/kubeenv); the zone rendered from charts/atoll and run as
// the chart's ServiceAccount under the chart's RBAC, its Secrets written as
// files (chart.RunPod plays the kubelet); and a real CoreDNS as the
// cluster's DNS (test/clusterdns) whose stub-domain stanza sends `mesh` to
// that zone's DNS. Pods get loopback addresses (127.244.<cluster>.<n>):
// a backend pod is a real gRPC server on its pod IP answering with its
// name, and the gateway's requests are made by grpc-go's own xDS client
// (test/sample/grpcdemo) from the bootstrap the zone serves for the
// gateway pod's Dataplane, presenting the pod's projected ServiceAccount
// token over xDS TLS. A zone reaches the global through a relay the
// provider can cut (connections reset, as a rejecting firewall would).
// The global is a plain `atoll global` process with an
// embedded etcd: in the local provider it belongs to no cluster, and the
// chart's global rendering is run by test/chart. There is no kubelet or
// controller-manager, so workloads are Pods the provider creates and marks
// Ready itself.
//
// The kind provider (provider_kind_test.go and kind_*_test.go, built with
// the tag kind, run by TestKind through `make e2e-kind`) runs the same
// scenarios on kind clusters: the global and each zone in a cluster of its
// own, the images of `make images` loaded, the chart installed with helm,
// Kong as the delegated gateway and an HTTP backend answering with its pod
// name. Its pieces that need no container engine (kind_config_test.go)
// are built without the tag and checked against the chart by every run.
//
// `make e2e` runs the suite with -v; `go test ./...` includes it.
package multicluster
