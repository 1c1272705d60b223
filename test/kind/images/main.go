// Command images writes the control plane images of berth's kind node image (make kind-image)
// as image archives, one per image, for `ctr images import`: the images `kubeadm config images
// list` names for the pinned Kubernetes version, the pod network's and the local-path
// provisioner's, built here
// (test/images.ControlPlane). It prints the archives' paths.
//
// Usage: images -bin DIR -pause FILE -net FILE -rootfs TAR -out DIR
package main

import (
	"flag"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"

	"github.com/google/go-containerregistry/pkg/name"
	"github.com/google/go-containerregistry/pkg/v1/tarball"

	"github.com/berth-runtime/berth/test/images"
)

func main() {
	bin := flag.String("bin", "/opt/berth/kind/bin", "the control plane's binaries (hack/install-kind.sh)")
	pause := flag.String("pause", "bin/berth-pause", "the pause image's program")
	net := flag.String("net", "", "berth-kind-net, the pod network's program (test/kind/nodenet)")
	rootfs := flag.String("rootfs", "", "an uncompressed tar of a Debian root file system: kube-proxy's base")
	out := flag.String("out", "", "where the archives go")
	flag.Parse()
	if err := run(*bin, *pause, *net, *rootfs, *out); err != nil {
		fmt.Fprintln(os.Stderr, "images:", err)
		os.Exit(1)
	}
}

func run(bin, pause, net, rootfs, out string) error {
	// The tags kubeadm will ask for.
	version, err := kubeVersion(bin)
	if err != nil {
		return err
	}
	list, err := exec.Command(filepath.Join(bin, "kubeadm"), "config", "images", "list", "--kubernetes-version", version).Output()
	if err != nil {
		return fmt.Errorf("kubeadm config images list: %w", err)
	}
	busybox, err := images.BusyboxPath()
	if err != nil {
		return err
	}
	src := images.ControlPlaneSources{BinDir: bin, Pause: pause, Net: net, RootFS: rootfs, Busybox: busybox, KubernetesVersion: version}
	ours := []string{images.KindNetRef, images.LocalPathProvisioner, images.LocalPathHelper}
	wanted := append(strings.Fields(string(list)), ours...)
	for _, ref := range wanted {
		if slices.Contains(ours, ref) {
			continue
		}
		repo, tag, _ := strings.Cut(ref[strings.LastIndex(ref, "/")+1:], ":")
		switch repo {
		case "etcd":
			src.EtcdTag = tag
		case "coredns":
			src.CoreDNSTag = tag
		case "pause":
			src.PauseTag = tag
		}
	}
	imgs, err := images.ControlPlane(src)
	if err != nil {
		return err
	}
	if err := os.MkdirAll(out, 0o755); err != nil {
		return err
	}
	for _, ref := range wanted {
		img, ok := imgs[ref]
		if !ok {
			return fmt.Errorf("kubeadm wants %s, which is not built here", ref)
		}
		tag, err := name.NewTag(ref)
		if err != nil {
			return err
		}
		file := filepath.Join(out, strings.NewReplacer("/", "_", ":", "_").Replace(ref)+".tar")
		if err := tarball.WriteToFile(file, tag, img); err != nil {
			return fmt.Errorf("write %s: %w", ref, err)
		}
		fmt.Println(file)
	}
	return nil
}

// kubeVersion is the version the kubeadm in bin was built as.
func kubeVersion(bin string) (string, error) {
	v, err := exec.Command(filepath.Join(bin, "kubeadm"), "version", "-o", "short").Output()
	if err != nil {
		return "", fmt.Errorf("kubeadm version: %w", err)
	}
	return strings.TrimSpace(string(v)), nil
}
