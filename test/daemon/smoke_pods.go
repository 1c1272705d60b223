package daemon

// KubeletSmokePods are the pod shapes a kubelet makes that the kubelet smoke (test/kubelet) and
// the cgroup v2 guest's kubelet test (test/vm/guest) run as static pods; %[1]s is the busybox
// image, %[2]s a host directory.
var KubeletSmokePods = map[string]string{
	// An exec readiness probe and an HTTP liveness probe on busybox's httpd.
	"probes": `apiVersion: v1
kind: Pod
metadata: {name: probes}
spec:
  terminationGracePeriodSeconds: 2
  containers:
  - name: web
    image: %[1]s
    imagePullPolicy: IfNotPresent
    command: [sh, -c, 'mkdir -p /www && echo ok > /www/healthz && exec httpd -f -p 8080 -h /www']
    readinessProbe: {exec: {command: [cat, /www/healthz]}, periodSeconds: 1}
    livenessProbe: {httpGet: {path: /healthz, port: 8080}, periodSeconds: 1, failureThreshold: 2}
`,
	// An init container that fills an emptyDir the main container reads.
	"init": `apiVersion: v1
kind: Pod
metadata: {name: init}
spec:
  initContainers:
  - name: prepare
    image: %[1]s
    imagePullPolicy: IfNotPresent
    command: [sh, -c, 'echo prepared-by-init > /data/msg']
    volumeMounts: [{name: data, mountPath: /data}]
  containers:
  - name: main
    image: %[1]s
    imagePullPolicy: IfNotPresent
    command: [sh, -c, 'cat /data/msg; exec sleep 3600']
    volumeMounts: [{name: data, mountPath: /data}]
  volumes: [{name: data, emptyDir: {}}]
`,
	// A container that exits 3 every time: a crash loop.
	"crash": `apiVersion: v1
kind: Pod
metadata: {name: crash}
spec:
  containers:
  - name: app
    image: %[1]s
    imagePullPolicy: IfNotPresent
    command: [sh, -c, 'echo crashing; exit 3']
`,
	// A preStop hook, then SIGTERM caught: both leave a line in a host file.
	"graceful": `apiVersion: v1
kind: Pod
metadata: {name: graceful}
spec:
  terminationGracePeriodSeconds: 30
  containers:
  - name: app
    image: %[1]s
    imagePullPolicy: IfNotPresent
    command: [sh, -c, 'trap "echo term >> /shared/events; exit 0" TERM; echo started >> /shared/events; while true; do sleep 0.2; done']
    lifecycle: {preStop: {exec: {command: [sh, -c, 'echo prestop >> /shared/events']}}}
    volumeMounts: [{name: shared, mountPath: /shared}]
  volumes: [{name: shared, hostPath: {path: '%[2]s', type: Directory}}]
`,
	// Burstable resources: requests and limits; the kubelet adds a hugepage limit for each page
	// size of the node.
	"limits": `apiVersion: v1
kind: Pod
metadata: {name: limits}
spec:
  containers:
  - name: app
    image: %[1]s
    imagePullPolicy: IfNotPresent
    command: [sleep, "3600"]
    resources: {requests: {cpu: 250m, memory: 32Mi}, limits: {cpu: 500m, memory: 64Mi}}
`,
	// Containers sharing the pod's PID namespace.
	"sharedpid": `apiVersion: v1
kind: Pod
metadata: {name: sharedpid}
spec:
  shareProcessNamespace: true
  containers:
  - name: a
    image: %[1]s
    imagePullPolicy: IfNotPresent
    command: [sleep, "3600"]
  - name: b
    image: %[1]s
    imagePullPolicy: IfNotPresent
    command: [sleep, "3601"]
`,
	"hostnet": `apiVersion: v1
kind: Pod
metadata: {name: hostnet}
spec:
  hostNetwork: true
  containers:
  - name: app
    image: %[1]s
    imagePullPolicy: IfNotPresent
    command: [sleep, "3600"]
`,
	// An image volume (GA in the kubelet since 1.36): the busybox image's files read-only at
	// /img, and its bin directory alone (subPath) at /imgbin.
	"imagevolume": `apiVersion: v1
kind: Pod
metadata: {name: imagevolume}
spec:
  containers:
  - name: app
    image: %[1]s
    imagePullPolicy: IfNotPresent
    command: [sleep, "3600"]
    volumeMounts: [{name: img, mountPath: /img}, {name: img, mountPath: /imgbin, subPath: bin}]
  volumes:
  - name: img
    image: {reference: %[1]s, pullPolicy: IfNotPresent}
`,
	// Numbered lines, ten a second: a lost log line shows as a gap.
	"ticker": `apiVersion: v1
kind: Pod
metadata: {name: ticker}
spec:
  containers:
  - name: app
    image: %[1]s
    imagePullPolicy: IfNotPresent
    command: [sh, -c, 'i=0; while true; do echo tick $i; i=$((i+1)); sleep 0.1; done']
`,
}
