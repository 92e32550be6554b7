package chart

import (
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
)

// proc is a control plane the tests run as the chart's pod would.
type proc struct {
	logPath string
	exited  chan struct{} // closed once the process ended
	err     error         // how it ended, once exited is closed
}

// runPod plays the kubelet for the pod of the workload kind (Deployment or
// StatefulSet) named Release in objs: it writes every mounted Secret and
// ConfigMap the chart rendered into a directory per mount, rewrites the
// container's arguments to those directories, and runs cmd/atoll with them,
// extraArgs and env added. The process is stopped (TERM, then KILL) when
// the test ends. It returns the arguments run.
func runPod(t *testing.T, objs []*unstructured.Unstructured, kind string, extraArgs, env []string) (*proc, []string) {
	t.Helper()
	w := Find(objs, kind, Release)
	if w == nil {
		t.Fatalf("no %s %s", kind, Release)
	}
	var spec struct {
		Spec struct {
			Template corev1.PodTemplateSpec `json:"template"`
		} `json:"spec"`
	}
	fromUnstructured(t, w, &spec)
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

	cmd := exec.Command(buildAtoll(t), args...)
	cmd.Env = append(os.Environ(), env...)
	p := &proc{logPath: filepath.Join(t.TempDir(), c.Name+".log"), exited: make(chan struct{})}
	logFile, err := os.Create(p.logPath)
	if err != nil {
		t.Fatal(err)
	}
	cmd.Stdout, cmd.Stderr = logFile, logFile
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	go func() { p.err = cmd.Wait(); close(p.exited) }()
	t.Cleanup(func() {
		_ = cmd.Process.Signal(syscall.SIGTERM)
		select {
		case <-p.exited:
		case <-time.After(30 * time.Second):
			_ = cmd.Process.Kill()
			<-p.exited
		}
		_ = logFile.Close()
	})
	return p, args
}

// writeVolume writes into dir what the kubelet would mount for v, from the
// rendered objects: a Secret's or ConfigMap's keys (or the items chosen).
func writeVolume(t *testing.T, objs []*unstructured.Unstructured, v corev1.Volume, dir string) {
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

func tail(path string) string {
	b, _ := os.ReadFile(path)
	if len(b) > 6000 {
		b = b[len(b)-6000:]
	}
	return string(b)
}
