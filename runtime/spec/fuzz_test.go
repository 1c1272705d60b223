package spec

import (
	"testing"

	"google.golang.org/protobuf/proto"
	runtimeapi "k8s.io/cri-api/pkg/apis/runtime/v1"
)

// FuzzGenerate feeds arbitrary container configs (as the kubelet's protobuf) to Generate: any
// config gives a spec or an error, never a panic. Run longer with `make fuzz`.
func FuzzGenerate(f *testing.F) {
	for _, c := range []*runtimeapi.ContainerConfig{
		{Metadata: &runtimeapi.ContainerMetadata{Name: "app"}},
		{Metadata: &runtimeapi.ContainerMetadata{Name: "app"}, Command: []string{"sh"}, Args: []string{"-c", "x"}, WorkingDir: "/w",
			Envs: []*runtimeapi.KeyValue{{Key: "A", Value: []byte("b")}}, Tty: true, Stdin: true,
			Mounts:  []*runtimeapi.Mount{{ContainerPath: "/data", HostPath: "/tmp", Readonly: true, RecursiveReadOnly: true}},
			Devices: []*runtimeapi.Device{{HostPath: "/dev/null", ContainerPath: "/dev/x", Permissions: "rwm"}},
			Linux: &runtimeapi.LinuxContainerConfig{
				Resources: &runtimeapi.LinuxContainerResources{CpuShares: 2, CpuQuota: 1000, CpuPeriod: 100000, MemoryLimitInBytes: 1 << 20, OomScoreAdj: -1000,
					HugepageLimits: []*runtimeapi.HugepageLimit{{PageSize: "2MB", Limit: 1 << 21}}, Unified: map[string]string{"memory.high": "1"}},
				SecurityContext: &runtimeapi.LinuxContainerSecurityContext{
					Capabilities: &runtimeapi.Capability{AddCapabilities: []string{"ALL"}, DropCapabilities: []string{"NET_RAW"}},
					RunAsUser:    &runtimeapi.Int64Value{Value: 1000}, RunAsGroup: &runtimeapi.Int64Value{Value: 1000},
					RunAsUsername:      "nobody",
					SupplementalGroups: []int64{1, 2}, SupplementalGroupsPolicy: runtimeapi.SupplementalGroupsPolicy_Strict,
					Seccomp:     &runtimeapi.SecurityProfile{ProfileType: runtimeapi.SecurityProfile_Localhost, LocalhostRef: "../x.json"},
					Apparmor:    &runtimeapi.SecurityProfile{ProfileType: runtimeapi.SecurityProfile_Localhost, LocalhostRef: "p"},
					MaskedPaths: []string{"/proc/x"}, ReadonlyPaths: []string{"/sys"}, Privileged: true, NoNewPrivs: true, ReadonlyRootfs: true,
					NamespaceOptions: &runtimeapi.NamespaceOption{Pid: runtimeapi.NamespaceMode_TARGET, TargetId: "c2"},
				},
			}},
	} {
		b, err := proto.Marshal(c)
		if err != nil {
			f.Fatal(err)
		}
		f.Add(b)
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		var cfg runtimeapi.ContainerConfig
		if err := proto.Unmarshal(data, &cfg); err != nil {
			return
		}
		in := baseInput()
		in.Config = &cfg
		r, err := Generate(in)
		if err == nil && (r == nil || r.Spec == nil || r.Spec.Process == nil) {
			t.Fatalf("no error and no spec for %v", &cfg)
		}
	})
}
