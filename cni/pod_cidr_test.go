package cni

import (
	"encoding/json"
	"os"
	"path/filepath"
	"testing"

	"github.com/containerd/errdefs"
)

const testTemplate = `{
  "cniVersion": "1.0.0", "name": "k8s-pod-network",
  "plugins": [{"type": "bridge", "bridge": "cni0", "ipam": {"type": "host-local",
    "ranges": [{{range $i, $r := .PodCIDRRanges}}{{if $i}}, {{end}}[{"subnet": "{{$r}}"}]{{end}}],
    "routes": [{{range $i, $r := .Routes}}{{if $i}}, {{end}}{"dst": "{{$r}}"}{{end}}]}}]
}`

func TestPodCIDRs(t *testing.T) {
	tests := []struct {
		desc       string
		template   bool
		update     string
		wantErr    bool
		wantCIDRs  []string
		wantRanges []string
		wantRoutes []string
	}{
		{desc: "a template is rendered with the CIDR", template: true, update: "10.244.1.0/24",
			wantCIDRs: []string{"10.244.1.0/24"}, wantRanges: []string{"10.244.1.0/24"}, wantRoutes: []string{"0.0.0.0/0"}},
		{desc: "dual stack", template: true, update: "10.244.1.0/24,fd00:1::/64",
			wantCIDRs: []string{"10.244.1.0/24", "fd00:1::/64"}, wantRanges: []string{"10.244.1.0/24", "fd00:1::/64"}, wantRoutes: []string{"0.0.0.0/0", "::/0"}},
		{desc: "without a template the CIDR is only recorded", update: "10.244.1.0/24", wantCIDRs: []string{"10.244.1.0/24"}},
		{desc: "an empty CIDR changes nothing", template: true, update: ""},
		{desc: "a malformed CIDR is refused", template: true, update: "10.244.1.0/33", wantErr: true},
	}
	for _, test := range tests {
		t.Run(test.desc, func(t *testing.T) {
			dir := t.TempDir()
			confDir, state, tmpl := filepath.Join(dir, "net.d"), filepath.Join(dir, "pod-cidrs.json"), ""
			if test.template {
				tmpl = filepath.Join(dir, "template.json")
				if err := os.WriteFile(tmpl, []byte(testTemplate), 0o644); err != nil {
					t.Fatal(err)
				}
			}
			p, err := NewPodCIDRs(state, tmpl, confDir)
			if err != nil {
				t.Fatal(err)
			}
			err = p.Update(test.update)
			if test.wantErr {
				if !errdefs.IsInvalidArgument(err) {
					t.Fatalf("Update(%q) = %v, want InvalidArgument", test.update, err)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if got := p.Get(); len(got) != len(test.wantCIDRs) || (len(got) > 0 && got[len(got)-1] != test.wantCIDRs[len(got)-1]) {
				t.Errorf("Get = %v, want %v", got, test.wantCIDRs)
			}
			rendered, err := os.ReadFile(filepath.Join(confDir, TemplateConfName))
			if test.wantRanges == nil {
				if err == nil {
					t.Errorf("a CNI config was written: %s", rendered)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			var conf struct {
				Plugins []struct {
					IPAM struct {
						Ranges [][]struct{ Subnet string } `json:"ranges"`
						Routes []struct{ Dst string }      `json:"routes"`
					} `json:"ipam"`
				} `json:"plugins"`
			}
			if err := json.Unmarshal(rendered, &conf); err != nil {
				t.Fatalf("rendered config: %v\n%s", err, rendered)
			}
			ipam := conf.Plugins[0].IPAM
			for i, r := range test.wantRanges {
				if ipam.Ranges[i][0].Subnet != r || ipam.Routes[i].Dst != test.wantRoutes[i] {
					t.Errorf("rendered ranges %v routes %v, want %v %v", ipam.Ranges, ipam.Routes, test.wantRanges, test.wantRoutes)
				}
			}
			// A restart finds the CIDRs again and renders the template anew.
			os.Remove(filepath.Join(confDir, TemplateConfName))
			again, err := NewPodCIDRs(state, tmpl, confDir)
			if err != nil || len(again.Get()) != len(test.wantCIDRs) {
				t.Fatalf("after a restart: %v, %v", again.Get(), err)
			}
			if _, err := os.Stat(filepath.Join(confDir, TemplateConfName)); err != nil {
				t.Errorf("not rendered again after a restart: %v", err)
			}
		})
	}
}
