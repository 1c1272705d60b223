package spec

import (
	"os"
	"path/filepath"
	"slices"
	"testing"

	"github.com/containerd/errdefs"
	specs "github.com/opencontainers/runtime-spec/specs-go"
	runtimeapi "k8s.io/cri-api/pkg/apis/runtime/v1"
	"tags.cncf.io/container-device-interface/pkg/cdi"
)

const testCDISpec = `{"cdiVersion": "0.6.0", "kind": "example.com/gpu",
 "devices": [{"name": "0", "containerEdits": {"env": ["GPU=0"], "deviceNodes": [{"path": "/dev/gpu0", "hostPath": "/dev/null"}]}},
             {"name": "1", "containerEdits": {"env": ["GPU=1"]}}],
 "containerEdits": {"env": ["GPU_VENDOR=example"]}}`

func TestCDIDevices(t *testing.T) {
	dir := t.TempDir()
	if err := os.WriteFile(filepath.Join(dir, "gpu.json"), []byte(testCDISpec), 0o644); err != nil {
		t.Fatal(err)
	}
	cache, err := cdi.NewCache(cdi.WithSpecDirs(dir), cdi.WithAutoRefresh(false))
	if err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		desc      string
		off       bool
		devices   []string
		annotated map[string]string
		wantEnv   []string
		wantErr   bool
	}{
		{desc: "none asked", wantEnv: nil},
		{desc: "from CDI_devices", devices: []string{"example.com/gpu=0"}, wantEnv: []string{"GPU=0", "GPU_VENDOR=example"}},
		{desc: "from an annotation", annotated: map[string]string{"cdi.k8s.io/gpu": "example.com/gpu=1"}, wantEnv: []string{"GPU=1", "GPU_VENDOR=example"}},
		{desc: "both, the same device once", devices: []string{"example.com/gpu=0"}, annotated: map[string]string{"cdi.k8s.io/gpu": "example.com/gpu=0"},
			wantEnv: []string{"GPU=0", "GPU_VENDOR=example"}},
		{desc: "unknown device", devices: []string{"example.com/gpu=9"}, wantErr: true},
		{desc: "bad annotation", annotated: map[string]string{"cdi.k8s.io/gpu": "not a device"}, wantErr: true},
		{desc: "CDI off", off: true, devices: []string{"example.com/gpu=0"}, wantErr: true},
	}
	for _, test := range tests {
		t.Run(test.desc, func(t *testing.T) {
			r, err := generate(t, func(in *Input) {
				if !test.off {
					in.Settings.CDI = cache
				}
				for _, d := range test.devices {
					in.Config.CDIDevices = append(in.Config.CDIDevices, &runtimeapi.CDIDevice{Name: d})
				}
				in.Config.Annotations = test.annotated
			})
			if test.wantErr {
				if !errdefs.IsInvalidArgument(err) {
					t.Fatalf("err = %v, want InvalidArgument", err)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			for _, e := range test.wantEnv {
				if !slices.Contains(r.Spec.Process.Env, e) {
					t.Errorf("env %v lacks %s", r.Spec.Process.Env, e)
				}
			}
			if slices.Contains(test.devices, "example.com/gpu=0") && !slices.ContainsFunc(r.Spec.Linux.Devices, func(d specs.LinuxDevice) bool { return d.Path == "/dev/gpu0" }) {
				t.Errorf("devices %v lack /dev/gpu0", r.Spec.Linux.Devices)
			}
		})
	}
}
