// Command fuzzcri fuzzes the whole CRI surface of a live berthd: for FUZZTIME (default 2m) it
// sends requests to every RPC of the RuntimeService and the ImageService, each a valid protobuf
// message whose fields are filled at random with hostile values (huge, empty, unicode, path
// characters, control characters, negative and extreme numbers, enum values that do not
// exist), often naming the pods and containers that earlier calls made, so that calls reach
// deep. Afterwards every pod is stopped and removed as the kubelet would, and the node is
// compared with how it was before (test/traces): no namespace, mount, cgroup, shim, IP or
// record may be left, no call may have panicked (berth answers a handler's panic with
// Internal), and berthd must still serve.
//
// It prints "fuzzcri: N calls, N panics, N leaks" and fails on anything but zeros.
//
// Environment: FUZZTIME (a duration, default 2m), FUZZ_SEED (default: the time).
package main

import (
	"context"
	"fmt"
	"io"
	"math"
	"math/rand"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"syscall"
	"time"

	containerd "github.com/containerd/containerd/v2/client"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/reflect/protoreflect"
	"google.golang.org/protobuf/reflect/protoregistry"
	runtimeapi "k8s.io/cri-api/pkg/apis/runtime/v1"

	"github.com/berth-runtime/berth/test/daemon"
	"github.com/berth-runtime/berth/test/images"
	"github.com/berth-runtime/berth/test/traces"
)

const (
	fuzzNetwork  = "berth-fuzz"
	fuzzBridge   = "berth-fuzz0"
	fuzzSubnet   = "10.69.0.0/16"
	cgroupParent = "berth-fuzz"
	image        = "registry.k8s.io/e2e-test-images/busybox:1.29-2"
)

// services are the CRI services fuzzed, every method of each.
var services = []protoreflect.FullName{"runtime.v1.RuntimeService", "runtime.v1.ImageService"}

func main() {
	if err := run(); err != nil {
		fmt.Fprintln(os.Stderr, "fuzzcri:", err)
		os.Exit(1)
	}
}

func run() error {
	duration := 2 * time.Minute
	if v := os.Getenv("FUZZTIME"); v != "" {
		d, err := time.ParseDuration(v)
		if err != nil {
			return fmt.Errorf("FUZZTIME: %w", err)
		}
		duration = d
	}
	seed := time.Now().UnixNano()
	if v, err := strconv.ParseInt(os.Getenv("FUZZ_SEED"), 10, 64); err == nil {
		seed = v
	}
	moduleDir, err := images.ModuleRoot()
	if err != nil {
		return err
	}
	tmp, err := os.MkdirTemp("", "berth-fuzzcri-")
	if err != nil {
		return err
	}
	defer os.RemoveAll(tmp)
	reg, _, err := images.Serve(moduleDir, tmp, "", "")
	if err != nil {
		return err
	}
	defer reg.Close()
	hosts := filepath.Join(tmp, "certs.d")
	if err := reg.WriteHostsDir(hosts); err != nil {
		return err
	}
	cniDir := filepath.Join(tmp, "net.d")
	if err := os.MkdirAll(cniDir, 0o755); err != nil {
		return err
	}
	if err := os.WriteFile(filepath.Join(cniDir, "10-fuzz.conflist"), []byte(daemon.CNIConflist(fuzzNetwork, fuzzBridge, fuzzSubnet)), 0o644); err != nil {
		return err
	}
	d, err := daemon.Start("--registry-config-dir", hosts, "--cni-conf-dir", cniDir)
	if err != nil {
		return err
	}
	defer func() {
		if b, err := os.ReadFile(filepath.Join(d.Dir, "berthd.log")); err == nil {
			os.WriteFile(filepath.Join(moduleDir, "bin", "fuzzcri-berthd.log"), b, 0o644)
		}
		d.Cleanup()
		exec.Command("ip", "link", "delete", fuzzBridge).Run()
		os.RemoveAll(filepath.Join("/var/lib/cni/networks", fuzzNetwork))
		for _, top := range []string{cgroupParent, cgroupParent + "-escape"} {
			for _, dir := range traces.CgroupDirs(top) {
				syscall.Rmdir(dir)
			}
		}
	}()
	client, err := containerd.New(filepath.Join(d.State, "containerd", "containerd.sock"), containerd.WithDefaultNamespace("berth"), containerd.WithTimeout(2*time.Second))
	if err != nil {
		return err
	}
	defer client.Close()
	conn, err := daemon.Dial(d.Endpoint())
	if err != nil {
		return err
	}
	defer conn.Close()

	f := &fuzzer{d: d, conn: conn, rng: rand.New(rand.NewSource(seed)), tmp: tmp, codes: map[string]map[codes.Code]int{}, samples: map[string]string{}}
	if err := f.pull(); err != nil {
		return err
	}
	// Warm-up: one pod through its whole life, so that the bridge and its rules are there.
	f.warmUp()
	host := traces.Host{Client: client, Daemon: d, Network: fuzzNetwork, CgroupParents: []string{cgroupParent, cgroupParent + "-escape"}}
	before := host.Settled(nil)

	methods, err := f.methods()
	if err != nil {
		return err
	}
	fmt.Printf("fuzzcri: %d RPCs for %s, seed %d\n", len(methods), duration, seed)
	start := time.Now()
	for time.Since(start) < duration {
		m := methods[f.rng.Intn(len(methods))]
		f.call(m)
		if f.calls%500 == 0 {
			f.pull() // RemoveImage takes it away now and then
		}
		select {
		case <-d.Exited():
			return fmt.Errorf("berthd exited after %d calls (the last: %s); its log is in bin/fuzzcri-berthd.log", f.calls, m.FullName())
		default:
		}
	}
	f.clear()
	after := host.Settled(before)
	leaks := traces.Leaks(os.Stdout, "fuzzcri", before, after)
	if _, err := d.Runtime.Version(context.Background(), &runtimeapi.VersionRequest{}); err != nil {
		return fmt.Errorf("berthd does not answer after the fuzz: %v", err)
	}
	if b, err := os.ReadFile(filepath.Join(d.Dir, "berthd.log")); err == nil && strings.Contains(string(b), "panic in CRI handler") {
		f.panics = max(f.panics, strings.Count(string(b), "panic in CRI handler"))
	}
	f.report()
	fmt.Printf("fuzzcri: %d calls, %d panics, %d leaks\n", f.calls, f.panics, leaks)
	if f.panics > 0 || leaks > 0 {
		return fmt.Errorf("%d panics, %d leaks (seed %d; berthd's log in bin/fuzzcri-berthd.log)", f.panics, leaks, seed)
	}
	return nil
}

// fuzzer sends the requests and remembers what they made.
type fuzzer struct {
	d      *daemon.Daemon
	conn   *grpc.ClientConn
	rng    *rand.Rand
	tmp    string
	calls  int
	panics int
	// pods and containers are the ids of those the fuzz made, for later calls to name.
	pods, containers []string
	// codes counts the answers of each method by code; samples keeps the first error of each.
	codes   map[string]map[codes.Code]int
	samples map[string]string
}

func (f *fuzzer) pull() error {
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	if _, err := f.d.Image.PullImage(ctx, &runtimeapi.PullImageRequest{Image: &runtimeapi.ImageSpec{Image: image}}); err != nil {
		return fmt.Errorf("pull %s: %w", image, err)
	}
	return nil
}

func (f *fuzzer) warmUp() {
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	cfg := &runtimeapi.PodSandboxConfig{Metadata: &runtimeapi.PodSandboxMetadata{Name: "warm-up", Namespace: "fuzz", Uid: "warm-up"}}
	resp, err := f.d.Runtime.RunPodSandbox(ctx, &runtimeapi.RunPodSandboxRequest{Config: cfg})
	if err != nil {
		return
	}
	f.d.Runtime.StopPodSandbox(ctx, &runtimeapi.StopPodSandboxRequest{PodSandboxId: resp.PodSandboxId})
	f.d.Runtime.RemovePodSandbox(ctx, &runtimeapi.RemovePodSandboxRequest{PodSandboxId: resp.PodSandboxId})
}

// methods are every method of the fuzzed services.
func (f *fuzzer) methods() ([]protoreflect.MethodDescriptor, error) {
	var out []protoreflect.MethodDescriptor
	for _, name := range services {
		desc, err := protoregistry.GlobalFiles.FindDescriptorByName(name)
		if err != nil {
			return nil, err
		}
		ms := desc.(protoreflect.ServiceDescriptor).Methods()
		for i := range ms.Len() {
			out = append(out, ms.Get(i))
		}
	}
	return out, nil
}

// call sends one request of method m, filled at random.
func (f *fuzzer) call(m protoreflect.MethodDescriptor) {
	in, err := protoregistry.GlobalTypes.FindMessageByName(m.Input().FullName())
	if err != nil {
		return
	}
	outType, err := protoregistry.GlobalTypes.FindMessageByName(m.Output().FullName())
	if err != nil {
		return
	}
	req := in.New()
	if base := f.valid(string(m.Name())); base != nil && f.rng.Intn(3) > 0 {
		// A valid request with a few fields made hostile: past the validation, into the code
		// that acts on it.
		proto.Merge(req.Interface(), base)
		f.fillSome(req, 0, 20)
	} else {
		f.fill(req, 0)
	}
	resp := outType.New().Interface()
	full := "/" + string(m.Parent().FullName()) + "/" + string(m.Name())
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	f.calls++
	if m.IsStreamingServer() {
		err = f.stream(ctx, full, req.Interface(), resp)
	} else {
		err = f.conn.Invoke(ctx, full, req.Interface(), resp)
	}
	code := status.Code(err)
	if f.codes[string(m.Name())] == nil {
		f.codes[string(m.Name())] = map[codes.Code]int{}
	}
	f.codes[string(m.Name())][code]++
	if key := fmt.Sprintf("%s %s", m.Name(), code); err != nil && f.samples[key] == "" {
		f.samples[key] = status.Convert(err).Message()
	}
	if code == codes.Internal && strings.Contains(status.Convert(err).Message(), "internal error") {
		f.panics++
		fmt.Printf("fuzzcri: PANIC in %s: %v\nrequest: %v\n", m.Name(), err, req.Interface())
	}
	if err == nil {
		f.remember(resp)
	}
}

// stream opens a server stream (GetContainerEvents), reads for a moment and leaves.
func (f *fuzzer) stream(ctx context.Context, method string, req, resp proto.Message) error {
	ctx, cancel := context.WithTimeout(ctx, 300*time.Millisecond)
	defer cancel()
	s, err := f.conn.NewStream(ctx, &grpc.StreamDesc{ServerStreams: true}, method)
	if err != nil {
		return err
	}
	if err := s.SendMsg(req); err != nil {
		return err
	}
	s.CloseSend()
	for err = s.RecvMsg(resp); err == nil; err = s.RecvMsg(resp) {
	}
	if err == io.EOF || status.Code(err) == codes.DeadlineExceeded {
		return nil // the end of a list, or of the moment given to an event stream
	}
	return err
}

// valid is a valid request of the method named, as the kubelet would send it, for the methods
// that make things (nil for the others: random requests, with the ids of the fuzz's pods and
// containers, reach them well enough).
func (f *fuzzer) valid(method string) proto.Message {
	n := strconv.Itoa(f.rng.Intn(1 << 20))
	pod := func() *runtimeapi.PodSandboxConfig {
		c := &runtimeapi.PodSandboxConfig{
			Metadata:     &runtimeapi.PodSandboxMetadata{Name: "fuzz-" + n, Namespace: "fuzz", Uid: "uid-" + n},
			Hostname:     "fuzz-" + n,
			LogDirectory: filepath.Join(f.tmp, "logs", n),
			DnsConfig:    &runtimeapi.DNSConfig{Servers: []string{"10.96.0.10"}, Searches: []string{"fuzz.svc.cluster.local"}, Options: []string{"ndots:5"}},
			Labels:       map[string]string{"app": "fuzz"},
			Linux: &runtimeapi.LinuxPodSandboxConfig{CgroupParent: "/" + cgroupParent + "/" + n,
				SecurityContext: &runtimeapi.LinuxSandboxSecurityContext{NamespaceOptions: &runtimeapi.NamespaceOption{}}},
		}
		if f.rng.Intn(3) == 0 {
			c.PortMappings = []*runtimeapi.PortMapping{{ContainerPort: 80, HostPort: int32(30000 + f.rng.Intn(1000))}}
		}
		return c
	}
	switch method {
	case "RunPodSandbox":
		return &runtimeapi.RunPodSandboxRequest{Config: pod()}
	case "CreateContainer":
		if len(f.pods) == 0 {
			return nil
		}
		return &runtimeapi.CreateContainerRequest{PodSandboxId: f.pods[f.rng.Intn(len(f.pods))], SandboxConfig: pod(),
			Config: &runtimeapi.ContainerConfig{
				Metadata: &runtimeapi.ContainerMetadata{Name: "c-" + n}, Image: &runtimeapi.ImageSpec{Image: image},
				Command: []string{"sleep", "3600"}, LogPath: "c-" + n + ".log",
				Envs:   []*runtimeapi.KeyValue{{Key: "FUZZ", Value: []byte(n)}},
				Mounts: []*runtimeapi.Mount{{HostPath: filepath.Join(f.tmp, "vol"), ContainerPath: "/data"}},
				Linux: &runtimeapi.LinuxContainerConfig{
					Resources:       &runtimeapi.LinuxContainerResources{CpuShares: 512, MemoryLimitInBytes: 64 << 20},
					SecurityContext: &runtimeapi.LinuxContainerSecurityContext{NamespaceOptions: &runtimeapi.NamespaceOption{}},
				},
			}}
	case "StartContainer":
		if len(f.containers) == 0 {
			return nil
		}
		return &runtimeapi.StartContainerRequest{ContainerId: f.containers[f.rng.Intn(len(f.containers))]}
	case "ExecSync":
		if len(f.containers) == 0 {
			return nil
		}
		return &runtimeapi.ExecSyncRequest{ContainerId: f.containers[f.rng.Intn(len(f.containers))], Cmd: []string{"echo", "fuzz"}, Timeout: 2}
	}
	return nil
}

// remember keeps the pod and container ids an answer names.
func (f *fuzzer) remember(resp proto.Message) {
	switch r := resp.(type) {
	case *runtimeapi.RunPodSandboxResponse:
		f.pods = append(f.pods, r.PodSandboxId)
	case *runtimeapi.CreateContainerResponse:
		f.containers = append(f.containers, r.ContainerId)
	}
}

// clear stops and removes every pod, as the kubelet would, trying for a minute.
func (f *fuzzer) clear() {
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	for deadline := time.Now().Add(time.Minute); time.Now().Before(deadline); {
		pods, err := f.d.Runtime.ListPodSandbox(ctx, &runtimeapi.ListPodSandboxRequest{})
		if err != nil || ctx.Err() != nil {
			return
		}
		if len(pods.Items) == 0 {
			break
		}
		for _, p := range pods.Items {
			f.d.Runtime.StopPodSandbox(ctx, &runtimeapi.StopPodSandboxRequest{PodSandboxId: p.Id})
			if _, err := f.d.Runtime.RemovePodSandbox(ctx, &runtimeapi.RemovePodSandboxRequest{PodSandboxId: p.Id}); err != nil {
				fmt.Printf("fuzzcri: remove pod %s: %v\n", p.Id, err)
			}
		}
		time.Sleep(200 * time.Millisecond)
	}
	if cs, err := f.d.Runtime.ListContainers(ctx, &runtimeapi.ListContainersRequest{}); err == nil {
		for _, c := range cs.Containers {
			fmt.Printf("fuzzcri: container %s left after its pod's removal\n", c.Id)
		}
	}
}

// report prints how each method answered.
func (f *fuzzer) report() {
	names := make([]string, 0, len(f.codes))
	for n := range f.codes {
		names = append(names, n)
	}
	sort.Strings(names)
	for _, n := range names {
		var parts []string
		for c, k := range f.codes[n] {
			parts = append(parts, fmt.Sprintf("%s %d", c, k))
		}
		sort.Strings(parts)
		fmt.Printf("fuzzcri: %s: %s\n", n, strings.Join(parts, ", "))
	}
	if os.Getenv("FUZZ_VERBOSE") != "" {
		keys := make([]string, 0, len(f.samples))
		for k := range f.samples {
			keys = append(keys, k)
		}
		sort.Strings(keys)
		for _, k := range keys {
			fmt.Printf("fuzzcri: %s: e.g. %.200q\n", k, f.samples[k])
		}
	}
}

// fill sets fields of m at random, to depth 5.
func (f *fuzzer) fill(m protoreflect.Message, depth int) { f.fillSome(m, depth, 1) }

// fillSome sets each field of m, to depth 5, with a chance of 4 in 5*odds: with odds 1, most
// fields; with larger odds, a few fields of a message that is otherwise left as it is.
func (f *fuzzer) fillSome(m protoreflect.Message, depth, odds int) {
	fields := m.Descriptor().Fields()
	for i := range fields.Len() {
		fd := fields.Get(i)
		if depth > 5 {
			continue
		}
		if fd.Kind() == protoreflect.MessageKind && !fd.IsList() && !fd.IsMap() && odds > 1 && m.Has(fd) {
			f.fillSome(m.Mutable(fd).Message(), depth+1, odds) // into a set message, to reach its fields
			continue
		}
		if f.rng.Intn(5*odds) >= 4 {
			continue // left as it is
		}
		if o := fd.ContainingOneof(); o != nil && m.WhichOneof(o) != nil {
			continue
		}
		switch {
		case fd.IsList():
			list := m.Mutable(fd).List()
			for range f.rng.Intn(4) {
				if fd.Kind() == protoreflect.MessageKind {
					v := list.NewElement()
					f.fillSome(v.Message(), depth+1, odds)
					list.Append(v)
				} else {
					list.Append(f.scalar(fd))
				}
			}
		case fd.IsMap():
			mp := m.Mutable(fd).Map()
			for range f.rng.Intn(4) {
				k := f.scalar(fd.MapKey()).MapKey()
				if fd.MapValue().Kind() == protoreflect.MessageKind {
					f.fillSome(mp.Mutable(k).Message(), depth+1, odds)
				} else {
					mp.Set(k, f.scalar(fd.MapValue()))
				}
			}
		case fd.Kind() == protoreflect.MessageKind:
			f.fillSome(m.Mutable(fd).Message(), depth+1, odds)
		default:
			m.Set(fd, f.scalar(fd))
		}
	}
}

// scalar is a random value of a scalar field.
func (f *fuzzer) scalar(fd protoreflect.FieldDescriptor) protoreflect.Value {
	pick := func(vs ...int64) int64 {
		if f.rng.Intn(3) == 0 {
			return f.rng.Int63n(1<<20) - 1<<10
		}
		return vs[f.rng.Intn(len(vs))]
	}
	switch fd.Kind() {
	case protoreflect.StringKind:
		return protoreflect.ValueOfString(f.str(string(fd.Name())))
	case protoreflect.BytesKind:
		return protoreflect.ValueOfBytes([]byte(f.str(string(fd.Name()))))
	case protoreflect.BoolKind:
		return protoreflect.ValueOfBool(f.rng.Intn(2) == 1)
	case protoreflect.Int32Kind, protoreflect.Sint32Kind, protoreflect.Sfixed32Kind:
		return protoreflect.ValueOfInt32(int32(pick(0, 1, -1, 80, 65535, 70000, math.MaxInt32, math.MinInt32)))
	case protoreflect.Int64Kind, protoreflect.Sint64Kind, protoreflect.Sfixed64Kind:
		return protoreflect.ValueOfInt64(pick(0, 1, -1, 1000, 1<<32, 1<<31, math.MaxInt64, math.MinInt64))
	case protoreflect.Uint32Kind, protoreflect.Fixed32Kind:
		return protoreflect.ValueOfUint32(uint32(pick(0, 1, 80, math.MaxUint32)))
	case protoreflect.Uint64Kind, protoreflect.Fixed64Kind:
		v := uint64(pick(0, 1, 1<<32, math.MaxInt64))
		if f.rng.Intn(5) == 0 {
			v = math.MaxUint64
		}
		return protoreflect.ValueOfUint64(v)
	case protoreflect.FloatKind:
		return protoreflect.ValueOfFloat32(float32([]float64{0, -1, math.Inf(1), math.NaN(), 1e38}[f.rng.Intn(5)]))
	case protoreflect.DoubleKind:
		return protoreflect.ValueOfFloat64([]float64{0, -1, math.Inf(-1), math.NaN(), 1e308}[f.rng.Intn(5)])
	case protoreflect.EnumKind:
		vals := fd.Enum().Values()
		if f.rng.Intn(6) == 0 {
			return protoreflect.ValueOfEnum(protoreflect.EnumNumber(f.rng.Int31n(1000) - 10)) // no such value
		}
		return protoreflect.ValueOfEnum(vals.Get(f.rng.Intn(vals.Len())).Number())
	}
	return fd.Default()
}

// hostile are strings every string field may get.
var hostile = []string{
	"", " ", "a", ".", "..", "/", "../../../../etc/passwd", "/etc/shadow", "a/b", "a\nb", "a\x00b", "\t",
	"ünïcødé-名前-😀", "\u202e\u200b", "$(id)", "`id`", "%s%n%x", "-1", "--help", "*", "?", "[", "\\",
	"a:b:c", "a=b", "0", "4294967296", "-9223372036854775808", "NaN", "null", "{}", "\"", "'",
	"registry.k8s.io/pause:3.10", "sha256:" + strings.Repeat("0", 64), "localhost:0/x@sha256:abc",
	strings.Repeat("x", 4096), strings.Repeat("é", 70000),
}

// str is a random string for a field named name: for fields that name the node's paths, only
// paths under the fuzz's own directory (or hostile ones berth must refuse), so that nothing the
// fuzz makes can touch the node's files; ids of the fuzz's own pods and containers for fields
// that name them, so that calls reach them.
func (f *fuzzer) str(name string) string {
	oneOf := func(vs ...string) string { return vs[f.rng.Intn(len(vs))] }
	switch name {
	case "host_path", "log_directory", "path", "spec_dir", "location", "output_path", "checkpoint_path":
		return oneOf(filepath.Join(f.tmp, "vol"), filepath.Join(f.tmp, "logs", strconv.Itoa(f.rng.Intn(10))), "", "relative/path",
			filepath.Join(f.tmp, "..", filepath.Base(f.tmp), "vol"), f.tmp+"/a\nb", f.tmp+"/\x00")
	case "cgroup_parent":
		return oneOf("", "/"+cgroupParent+"/"+strconv.Itoa(f.rng.Intn(100)), cgroupParent+"-"+strconv.Itoa(f.rng.Intn(10))+".slice",
			"/"+cgroupParent+"/../"+cgroupParent+"-escape", "../../"+cgroupParent, "/"+cgroupParent+"/a\nb")
	case "pod_sandbox_id", "sandbox_id":
		if len(f.pods) > 0 && f.rng.Intn(3) > 0 {
			return f.pods[f.rng.Intn(len(f.pods))]
		}
	case "container_id", "id":
		if len(f.containers) > 0 && f.rng.Intn(3) > 0 {
			return f.containers[f.rng.Intn(len(f.containers))]
		}
	case "image", "image_ref", "user_specified_image":
		if f.rng.Intn(2) == 0 {
			return image
		}
	case "command", "args", "cmd":
		if f.rng.Intn(2) == 0 {
			return oneOf("sleep", "3600", "true", "sh", "-c", "echo fuzz", "cat")
		}
	case "key":
		if f.rng.Intn(2) == 0 {
			return oneOf("net.ipv4.ip_forward", "kernel.shm_rmid_forced", "net.core.somaxconn", "kernel.core_pattern", "fs.mqueue.msg_max", "vm.overcommit_memory")
		}
	case "name", "namespace", "uid":
		if f.rng.Intn(2) == 0 {
			return oneOf("fuzz", "app", "web", strconv.Itoa(f.rng.Intn(1000)))
		}
	case "runtime_handler", "handler":
		return oneOf("", "runc", "kata", "../runc", "RUNC")
	case "pod_cidr":
		return oneOf("", "10.244.0.0/24", "fd00::/64", "10.244.0.0/33", "nonsense", "0.0.0.0/0")
	}
	if f.rng.Intn(4) == 0 { // random characters (proto strings are UTF-8, or the client refuses them)
		r := make([]rune, f.rng.Intn(64))
		for i := range r {
			r[i] = rune(f.rng.Intn(0x3000))
		}
		return string(r)
	}
	return hostile[f.rng.Intn(len(hostile))]
}
