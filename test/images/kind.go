package images

import (
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"

	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/tarball"
)

// ControlPlaneSources are what the control plane images of a kind node are made of.
type ControlPlaneSources struct {
	// BinDir holds the static kube-apiserver, kube-controller-manager, kube-scheduler,
	// kube-proxy, etcd and coredns (hack/install-kind.sh).
	BinDir string
	// Pause is berth-pause, the pause image's /pause.
	Pause string
	// Net is berth-kind-net (test/kind/nodenet), the pod network's program: KindNetRef's.
	Net string
	// RootFS is an uncompressed tar of a Debian root file system with iptables, nftables and
	// conntrack: kube-proxy's base, as Kubernetes' own kube-proxy image is Debian's iptables.
	RootFS string
	// Busybox is a static busybox: the local-path provisioner's helper image (it runs the
	// provisioner's setup and teardown scripts).
	Busybox string
	// KubernetesVersion, and the tags kubeadm gives etcd ("3.7.0-0"), CoreDNS and pause.
	KubernetesVersion, EtcdTag, CoreDNSTag, PauseTag string
}

// The images of berth's kind nodes besides the control plane's: the pod network's
// (default-cni.yaml runs it) and the default StorageClass's provisioner and its helper
// (default-storage.yaml runs them; the provisioner is BinDir's local-path-provisioner).
const (
	KindNetRef           = "localhost/berth/kind-net:1"
	LocalPathProvisioner = "localhost/berth/local-path-provisioner:1"
	LocalPathHelper      = "localhost/berth/local-path-helper:1"
)

// ControlPlane builds the images kubeadm's control plane runs (`kubeadm config images list`),
// by their registry.k8s.io names: each component's static binary where its manifests look for
// it, kube-proxy over a Debian root file system; and KindNetRef, the pod network's program over
// the same (it runs ip and iptables).
func ControlPlane(src ControlPlaneSources) (map[string]v1.Image, error) {
	b := &builder{}
	out := map[string]v1.Image{}
	binary := func(ref, name, path, at string, cfg v1.Config, base ...v1.Layer) error {
		if path == "" {
			path = filepath.Join(src.BinDir, name)
		}
		content, err := os.ReadFile(path)
		if err != nil {
			return fmt.Errorf("image %s: %w", ref, err)
		}
		l, err := layer(file(at, 0o755, content), dir("tmp", 0o1777), dir("etc", 0o755))
		if err != nil {
			return err
		}
		img, err := b.image(cfg, append(base, l)...)
		if err != nil {
			return err
		}
		out[ref] = img
		return nil
	}
	path := []string{"PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"}
	for _, c := range []string{"kube-apiserver", "kube-controller-manager", "kube-scheduler"} {
		ref := "registry.k8s.io/" + c + ":" + src.KubernetesVersion
		if err := binary(ref, c, "", "usr/local/bin/"+c, v1.Config{Env: path, Entrypoint: []string{"/usr/local/bin/" + c}}); err != nil {
			return nil, err
		}
	}
	if err := binary("registry.k8s.io/etcd:"+src.EtcdTag, "etcd", "", "usr/local/bin/etcd",
		v1.Config{Env: path, Entrypoint: []string{"/usr/local/bin/etcd"}}); err != nil {
		return nil, err
	}
	if err := binary("registry.k8s.io/coredns/coredns:"+src.CoreDNSTag, "coredns", "", "coredns",
		v1.Config{Entrypoint: []string{"/coredns"}, ExposedPorts: map[string]struct{}{"53/tcp": {}, "53/udp": {}}}); err != nil {
		return nil, err
	}
	rootfs, err := tarball.LayerFromFile(src.RootFS)
	if err != nil {
		return nil, fmt.Errorf("kube-proxy's base %s: %w", src.RootFS, err)
	}
	if err := binary("registry.k8s.io/kube-proxy:"+src.KubernetesVersion, "kube-proxy", "", "usr/local/bin/kube-proxy",
		v1.Config{Env: path, Entrypoint: []string{"/usr/local/bin/kube-proxy"}}, rootfs); err != nil {
		return nil, err
	}
	if err := binary(KindNetRef, "", src.Net, "usr/local/bin/berth-kind-net",
		v1.Config{Env: path, Entrypoint: []string{"/usr/local/bin/berth-kind-net"}}, rootfs); err != nil {
		return nil, err
	}
	if err := binary(LocalPathProvisioner, "local-path-provisioner", "", "usr/local/bin/local-path-provisioner",
		v1.Config{Env: path, Entrypoint: []string{"/usr/local/bin/local-path-provisioner"}}); err != nil {
		return nil, err
	}
	busybox, err := os.ReadFile(src.Busybox)
	if err != nil {
		return nil, fmt.Errorf("local-path helper image: %w", err)
	}
	applets, err := exec.Command(src.Busybox, "--list-full").Output()
	if err != nil {
		return nil, fmt.Errorf("list busybox applets: %w", err)
	}
	helper, err := baseLayer(busybox, strings.Fields(string(applets)))
	if err != nil {
		return nil, err
	}
	if out[LocalPathHelper], err = b.image(v1.Config{Env: path, Cmd: []string{"sh"}}, helper); err != nil {
		return nil, err
	}
	pause, err := os.ReadFile(src.Pause)
	if err != nil {
		return nil, fmt.Errorf("pause image: %w", err)
	}
	l, err := layer(file("pause", 0o755, pause))
	if err != nil {
		return nil, err
	}
	if out["registry.k8s.io/pause:"+src.PauseTag], err = b.image(v1.Config{Entrypoint: []string{"/pause"}}, l); err != nil {
		return nil, err
	}
	return out, nil
}
