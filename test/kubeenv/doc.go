// Package kubeenv starts a real Kubernetes API server for tests: a
// kube-apiserver process, built from the k8s.io/kubernetes module that
// test/kubeapiserver pins, against an embedded etcd, both on free loopback
// ports and both stopped when the test ends.
//
// There is no kubelet, scheduler or controller manager. Tests play them:
// they create Pods and set status.podIP through the status subresource,
// and create the ServiceAccounts they use (ServiceAccount admission is off,
// so a Pod needs none).
//
// The binary is built once per machine, into the user's cache directory:
//
//	make kube-apiserver
//
// or named by ATOLL_KUBE_APISERVER. Start fails the test, saying so, when
// it is missing.
//
// Usage:
//
//	func TestPods(t *testing.T) {
//		env := kubeenv.Start(t)
//		admin := env.Clientset(t) // system:masters, may do anything
//		// ... create Namespaces, Pods, Services with admin ...
//
//		// A ServiceAccount's own view, limited by RBAC:
//		sa := kubernetes.NewForConfigOrDie(env.ServiceAccountConfig(t, "ns", "zone-cp"))
//		_ = sa
//	}
package kubeenv
