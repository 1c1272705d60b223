package main

import (
	"encoding/json"
	"net/netip"
	"testing"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
)

func node(name, ip string, cidrs ...string) *corev1.Node {
	return &corev1.Node{
		ObjectMeta: metav1.ObjectMeta{Name: name},
		Spec:       corev1.NodeSpec{PodCIDRs: cidrs},
		Status:     corev1.NodeStatus{Addresses: []corev1.NodeAddress{{Type: corev1.NodeHostName, Address: name}, {Type: corev1.NodeInternalIP, Address: ip}}},
	}
}

func TestDesired(t *testing.T) {
	for _, tc := range []struct {
		desc    string
		nodes   []*corev1.Node
		own     string
		routes  map[string]string
		wantErr bool
	}{{
		desc:   "three nodes: routes to the two others",
		nodes:  []*corev1.Node{node("cp", "10.89.0.2", "10.244.0.0/24"), node("w1", "10.89.0.3", "10.244.1.0/24"), node("w2", "10.89.0.4", "10.244.2.0/24")},
		own:    "w1",
		routes: map[string]string{"10.244.0.0/24": "10.89.0.2", "10.244.2.0/24": "10.89.0.4"},
	}, {
		desc:   "a node without a CIDR yet gets no route",
		nodes:  []*corev1.Node{node("cp", "10.89.0.2", "10.244.0.0/24"), node("w1", "10.89.0.3")},
		own:    "cp",
		routes: map[string]string{},
	}, {
		desc:    "this node has no CIDR yet",
		nodes:   []*corev1.Node{node("cp", "10.89.0.2", "10.244.0.0/24"), node("w1", "10.89.0.3")},
		own:     "w1",
		wantErr: true,
	}, {
		desc:    "a CIDR that does not parse",
		nodes:   []*corev1.Node{node("cp", "10.89.0.2", "10.244.0.0/33")},
		own:     "cp",
		wantErr: true,
	}, {
		desc:   "dual stack: each family through the address of its family",
		nodes:  []*corev1.Node{node("cp", "10.89.0.2", "10.244.0.0/24", "fd00:10:244::/64"), node("w1", "10.89.0.3", "10.244.1.0/24", "fd00:10:244:1::/64")},
		own:    "w1",
		routes: map[string]string{"10.244.0.0/24": "10.89.0.2"},
	}} {
		t.Run(tc.desc, func(t *testing.T) {
			s, err := desired(tc.nodes, tc.own)
			if (err != nil) != tc.wantErr {
				t.Fatalf("err = %v, want error %v", err, tc.wantErr)
			}
			if tc.wantErr {
				return
			}
			if len(s.routes) != len(tc.routes) {
				t.Fatalf("routes %v, want %v", s.routes, tc.routes)
			}
			for cidr, via := range tc.routes {
				if got := s.routes[netip.MustParsePrefix(cidr)]; got != netip.MustParseAddr(via) {
					t.Errorf("route %s via %s, want %s", cidr, got, via)
				}
			}
		})
	}
}

func TestConflist(t *testing.T) {
	b, err := conflist([]netip.Prefix{netip.MustParsePrefix("10.244.1.0/24")})
	if err != nil {
		t.Fatal(err)
	}
	var c struct {
		CNIVersion string `json:"cniVersion"`
		Plugins    []struct {
			Type string
			IPAM struct {
				Ranges [][]struct{ Subnet string }
			}
		}
	}
	if err := json.Unmarshal(b, &c); err != nil {
		t.Fatal(err)
	}
	if c.CNIVersion != "1.0.0" || len(c.Plugins) != 2 || c.Plugins[0].Type != "ptp" || c.Plugins[1].Type != "portmap" ||
		len(c.Plugins[0].IPAM.Ranges) != 1 || c.Plugins[0].IPAM.Ranges[0][0].Subnet != "10.244.1.0/24" {
		t.Errorf("conflist:\n%s", b)
	}
}
