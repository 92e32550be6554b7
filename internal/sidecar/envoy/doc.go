// Package envoy runs the sidecar's Envoy and stops it the way a pod's
// termination needs.
//
// Run starts the binary with its arguments (Args builds the sidecar's
// command line), Envoy writing straight to the given stdout and stderr.
// When Run's context ends, the pod is terminating: the application is
// finishing its requests, which leave through Envoy, so Envoy keeps serving
// for Config.Drain; then it gets SIGTERM and, if it has not exited within
// Config.Grace, SIGKILL. That stop returns nil. Envoy exiting by itself at
// any other time is an *ExitError carrying its status (ExitCode gives the
// process's exit code for it), so the container exits non-zero and the
// kubelet restarts it.
//
// On Linux Envoy runs in its own process group, so a terminal's Ctrl-C
// reaches only the sidecar (which drains first), and the kernel kills
// Envoy if the sidecar dies without stopping it.
//
//	e, err := envoy.New(envoy.Config{
//		Binary: "envoy",
//		Args:   envoy.Args("/var/run/atoll/envoy.json", "info", 5*time.Second),
//		Drain:  5 * time.Second,
//		Stdout: os.Stdout, Stderr: os.Stderr,
//	})
//	err = e.Run(ctx) // until Envoy exits or ctx ends and Envoy is stopped
package envoy
