//go:build kind

package multicluster

import (
	"context"
	"slices"
	"strconv"
	"testing"

	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/intstr"

	"github.com/atoll-mesh/atoll/zone/kubernetes"
)

// The public images of the kind provider's workloads, pulled by the nodes.
const (
	// kongImage is the Kong gateway the delegated gateway runs.
	kongImage = "kong:3.9"
	// curlImage is the gateway pod's client container, which
	// CallFromGateway runs curl in (Kong's image has no curl).
	curlImage = "curlimages/curl:8.10.1"
	// echoImage is the backend: an HTTP server answering with the text
	// it was started with, here its pod's name.
	echoImage = "hashicorp/http-echo:1.0"
)

func (z *kindZone) CreateNamespace(t *testing.T, name string, inMesh bool) {
	t.Helper()
	ns := &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: name}}
	if inMesh {
		ns.Labels = map[string]string{kubernetes.SidecarInjection: kubernetes.Enabled}
	}
	if _, err := z.cl.client.CoreV1().Namespaces().Create(context.Background(), ns, metav1.CreateOptions{}); err != nil {
		t.Fatalf("%s: creating namespace %s: %v", z.zone, name, err)
	}
}

// RunGateway runs Kong (DB-less, proxy on 8000) as the StatefulSet name of
// one pod, name-0, annotated as a delegated gateway, with a client
// container beside it, and the Service name on port 80. It returns once
// the pod is Ready, failing when the injector gave it no sidecar.
func (z *kindZone) RunGateway(t *testing.T, namespace, name string) string {
	t.Helper()
	ctx := context.Background()
	z.createService(t, namespace, name, 80, "proxy")
	labels := map[string]string{"app": name}
	one := int32(1)
	kongEnv := []corev1.EnvVar{
		{Name: "KONG_DATABASE", Value: "off"},
		{Name: "KONG_PROXY_LISTEN", Value: "0.0.0.0:8000"},
		{Name: "KONG_ADMIN_LISTEN", Value: "127.0.0.1:8001"},
		{Name: "KONG_PROXY_ACCESS_LOG", Value: "/dev/stdout"},
		{Name: "KONG_PROXY_ERROR_LOG", Value: "/dev/stderr"},
	}
	if _, err := z.cl.client.AppsV1().StatefulSets(namespace).Create(ctx, &appsv1.StatefulSet{
		ObjectMeta: metav1.ObjectMeta{Name: name},
		Spec: appsv1.StatefulSetSpec{
			Replicas:    &one,
			ServiceName: name,
			Selector:    &metav1.LabelSelector{MatchLabels: labels},
			Template: corev1.PodTemplateSpec{
				ObjectMeta: metav1.ObjectMeta{Labels: labels,
					Annotations: map[string]string{kubernetes.GatewayAnnotation: kubernetes.Enabled}},
				Spec: corev1.PodSpec{Containers: []corev1.Container{
					{
						Name: "proxy", Image: kongImage, Env: kongEnv,
						Ports:          []corev1.ContainerPort{{Name: "proxy", ContainerPort: 8000}},
						ReadinessProbe: &corev1.Probe{ProbeHandler: corev1.ProbeHandler{TCPSocket: &corev1.TCPSocketAction{Port: intstr.FromString("proxy")}}},
					},
					{Name: "client", Image: curlImage, Command: []string{"sleep", "infinity"}},
				}},
			},
		},
	}, metav1.CreateOptions{}); err != nil {
		t.Fatalf("%s: creating the gateway StatefulSet %s/%s: %v", z.zone, namespace, name, err)
	}
	z.cl.kubectl(t, "the gateway's pod: kubectl --kubeconfig "+z.cl.kubeconfig+" -n "+namespace+" describe pod "+name+"-0",
		"-n", namespace, "rollout", "status", "statefulset/"+name, "--timeout", kindStep.String())
	z.cl.waitPods(t, namespace, name, 1)
	pod, err := z.cl.client.CoreV1().Pods(namespace).Get(ctx, name+"-0", metav1.GetOptions{})
	if err != nil {
		t.Fatalf("%s: the gateway's pod: %v", z.zone, err)
	}
	var containers []string
	for _, c := range append(pod.Spec.InitContainers, pod.Spec.Containers...) {
		containers = append(containers, c.Name)
	}
	if !slices.Contains(containers, "atoll-sidecar") {
		t.Fatalf("%s: the gateway's pod %s/%s has no atoll-sidecar container (containers %v): the injector did not mutate it; see the zone's log and the MutatingWebhookConfiguration atoll-sidecar-injector",
			z.zone, namespace, pod.Name, containers)
	}
	return pod.Status.PodIP
}

// RunBackend runs the StatefulSet name of replicas pods (name-0, name-1,
// ..., started and stopped in parallel) answering HTTP on port with their
// pod's name (downward API), behind the Service name.
func (z *kindZone) RunBackend(t *testing.T, namespace, name string, port int32, replicas int) {
	t.Helper()
	z.createService(t, namespace, name, port, "app")
	labels := map[string]string{"app": name}
	n := int32(replicas)
	if _, err := z.cl.client.AppsV1().StatefulSets(namespace).Create(context.Background(), &appsv1.StatefulSet{
		ObjectMeta: metav1.ObjectMeta{Name: name},
		Spec: appsv1.StatefulSetSpec{
			Replicas:            &n,
			ServiceName:         name,
			PodManagementPolicy: appsv1.ParallelPodManagement,
			Selector:            &metav1.LabelSelector{MatchLabels: labels},
			Template: corev1.PodTemplateSpec{
				ObjectMeta: metav1.ObjectMeta{Labels: labels},
				Spec: corev1.PodSpec{Containers: []corev1.Container{{
					Name:  "app",
					Image: echoImage,
					// The kubelet expands $(POD_NAME) from the environment.
					Args: []string{"-listen=:" + strconv.Itoa(int(port)), "-text=$(POD_NAME)"},
					Env: []corev1.EnvVar{{Name: "POD_NAME", ValueFrom: &corev1.EnvVarSource{
						FieldRef: &corev1.ObjectFieldSelector{FieldPath: "metadata.name"}}}},
					Ports:          []corev1.ContainerPort{{Name: "app", ContainerPort: port}},
					ReadinessProbe: &corev1.Probe{ProbeHandler: corev1.ProbeHandler{TCPSocket: &corev1.TCPSocketAction{Port: intstr.FromString("app")}}},
				}}},
			},
		},
	}, metav1.CreateOptions{}); err != nil {
		t.Fatalf("%s: creating the backend StatefulSet %s/%s: %v", z.zone, namespace, name, err)
	}
	z.cl.waitPods(t, namespace, name, replicas)
}

// ScaleBackend scales the backend's StatefulSet (the highest ordinals go
// first) and waits until exactly replicas pods are left, all Ready.
func (z *kindZone) ScaleBackend(t *testing.T, namespace, name string, replicas int) {
	t.Helper()
	t.Logf("%s: scaling statefulset %s/%s to %d", z.zone, namespace, name, replicas)
	z.cl.kubectl(t, "the backend: kubectl --kubeconfig "+z.cl.kubeconfig+" -n "+namespace+" get statefulset "+name,
		"-n", namespace, "scale", "statefulset/"+name, "--replicas="+strconv.Itoa(replicas))
	z.cl.waitPods(t, namespace, name, replicas)
}

func (z *kindZone) createService(t *testing.T, namespace, name string, port int32, targetPort string) {
	t.Helper()
	if _, err := z.cl.client.CoreV1().Services(namespace).Create(context.Background(), &corev1.Service{
		ObjectMeta: metav1.ObjectMeta{Name: name},
		Spec: corev1.ServiceSpec{Selector: map[string]string{"app": name},
			Ports: []corev1.ServicePort{{Name: "http", Port: port, TargetPort: intstr.FromString(targetPort)}}},
	}, metav1.CreateOptions{}); err != nil {
		t.Fatalf("%s: creating Service %s/%s: %v", z.zone, namespace, name, err)
	}
}
