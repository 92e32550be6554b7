package chart

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/client-go/discovery"
	"k8s.io/client-go/dynamic"
	"k8s.io/client-go/rest"
	"k8s.io/client-go/restmapper"
)

// stopGrace is how long a pod's process has after SIGTERM before it is
// killed at the end of a test.
const stopGrace = 30 * time.Second

// Pod is a control plane run as the chart's pod would run: cmd/atoll with
// the rendered container's arguments.
type Pod struct {
	// Args are the arguments it runs with, mount paths rewritten.
	Args []string
	// LogPath holds its combined output.
	LogPath string
	// Exited is closed once the process ended; Err is how it ended.
	Exited chan struct{}
	Err    error

	cmd *exec.Cmd
}

// Stop sends SIGTERM and waits for the exit, killing the process after
// 30 s; anything but a clean exit is an error. A stopped Pod stays
// stopped: the test runs a new one to restart it.
func (p *Pod) Stop() error {
	select {
	case <-p.Exited:
		return fmt.Errorf("%s had already exited: %v", p.cmd.Path, p.Err)
	default:
	}
	_ = p.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-p.Exited:
		if p.Err != nil {
			return fmt.Errorf("%s did not exit cleanly on SIGTERM: %v", p.cmd.Path, p.Err)
		}
		return nil
	case <-time.After(stopGrace):
		_ = p.cmd.Process.Kill()
		<-p.Exited
		return fmt.Errorf("%s did not stop within %s of SIGTERM; killed", p.cmd.Path, stopGrace)
	}
}

// RunPod plays the kubelet for the pod of the workload kind (Deployment or
// StatefulSet) named Release in objs: it writes every mounted Secret and
// ConfigMap the chart rendered into a directory per mount, rewrites the
// container's arguments to those directories, and runs the atoll binary
// with them, extraArgs and env added. The process is stopped (TERM, then
// KILL after 30 s) when the test ends, unless Stop stopped it before.
func RunPod(t testing.TB, atoll string, objs []*unstructured.Unstructured, kind string, extraArgs, env []string) *Pod {
	t.Helper()
	w := Find(objs, kind, Release)
	if w == nil {
		t.Fatalf("no %s %s in the rendered chart", kind, Release)
	}
	var spec struct {
		Spec struct {
			Template corev1.PodTemplateSpec `json:"template"`
		} `json:"spec"`
	}
	if err := runtime.DefaultUnstructuredConverter.FromUnstructured(w.Object, &spec); err != nil {
		t.Fatalf("%s %s: %v", kind, Release, err)
	}
	pod := spec.Spec.Template.Spec
	if pod.ServiceAccountName != Release {
		t.Fatalf("the %s runs as ServiceAccount %q, not the release's %q", kind, pod.ServiceAccountName, Release)
	}
	c := pod.Containers[0]

	root := t.TempDir()
	local := func(p string) string { return filepath.Join(root, p) }
	for _, m := range c.VolumeMounts {
		dir := local(m.MountPath)
		if err := os.MkdirAll(dir, 0o700); err != nil {
			t.Fatal(err)
		}
		for _, v := range pod.Volumes {
			if v.Name == m.Name {
				writeVolume(t, objs, v, dir)
			}
		}
	}
	args := append([]string(nil), c.Args...)
	for i, a := range args {
		for _, m := range c.VolumeMounts {
			a = strings.ReplaceAll(a, "="+m.MountPath, "="+local(m.MountPath))
		}
		args[i] = a
	}
	args = append(args, extraArgs...)

	cmd := exec.Command(atoll, args...)
	cmd.Env = append(os.Environ(), env...)
	p := &Pod{Args: args, LogPath: filepath.Join(t.TempDir(), c.Name+".log"), Exited: make(chan struct{}), cmd: cmd}
	logFile, err := os.Create(p.LogPath)
	if err != nil {
		t.Fatal(err)
	}
	cmd.Stdout, cmd.Stderr = logFile, logFile
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	go func() { p.Err = cmd.Wait(); close(p.Exited) }()
	t.Cleanup(func() {
		select {
		case <-p.Exited:
		default:
			_ = p.Stop()
		}
		_ = logFile.Close()
	})
	return p
}

// writeVolume writes into dir what the kubelet would mount for v, from the
// rendered objects: a Secret's or ConfigMap's keys (or the items chosen).
func writeVolume(t testing.TB, objs []*unstructured.Unstructured, v corev1.Volume, dir string) {
	t.Helper()
	var kind, name string
	var items []corev1.KeyToPath
	switch {
	case v.Secret != nil:
		kind, name, items = "Secret", v.Secret.SecretName, v.Secret.Items
	case v.ConfigMap != nil:
		kind, name, items = "ConfigMap", v.ConfigMap.Name, v.ConfigMap.Items
	default:
		return
	}
	o := Find(objs, kind, name)
	if o == nil {
		t.Fatalf("volume %s mounts %s %s, which the chart does not render (the test renders what it mounts)", v.Name, kind, name)
	}
	field := "data"
	if kind == "Secret" {
		field = "stringData"
	}
	data, _, _ := unstructured.NestedStringMap(o.Object, field)
	if len(items) == 0 {
		for k := range data {
			items = append(items, corev1.KeyToPath{Key: k, Path: k})
		}
	}
	for _, it := range items {
		val, ok := data[it.Key]
		if !ok {
			t.Fatalf("volume %s mounts key %q of %s %s, which has no such key", v.Name, it.Key, kind, name)
		}
		if err := os.WriteFile(filepath.Join(dir, it.Path), []byte(val), 0o600); err != nil {
			t.Fatal(err)
		}
	}
}

// CreateAll creates objs on the API server of cfg, for real, in order.
func CreateAll(ctx context.Context, t testing.TB, cfg *rest.Config, dyn *dynamic.DynamicClient, objs []*unstructured.Unstructured) {
	t.Helper()
	disc, err := discovery.NewDiscoveryClientForConfig(cfg)
	if err != nil {
		t.Fatal(err)
	}
	groups, err := restmapper.GetAPIGroupResources(disc)
	if err != nil {
		t.Fatal(err)
	}
	mapper := restmapper.NewDiscoveryRESTMapper(groups)
	for _, o := range objs {
		gvk := o.GroupVersionKind()
		m, err := mapper.RESTMapping(gvk.GroupKind(), gvk.Version)
		if err != nil {
			t.Fatal(err)
		}
		var r dynamic.ResourceInterface = dyn.Resource(m.Resource)
		if o.GetNamespace() != "" {
			r = dyn.Resource(m.Resource).Namespace(o.GetNamespace())
		}
		if _, err := r.Create(ctx, o, metav1.CreateOptions{}); err != nil {
			t.Fatalf("creating %s %s: %v", gvk.Kind, o.GetName(), err)
		}
	}
}

// Tail is the end of the file at path (its last 6000 bytes), for logs.
func Tail(path string) string {
	b, _ := os.ReadFile(path)
	if len(b) > 6000 {
		b = b[len(b)-6000:]
	}
	return string(b)
}
