package images

import (
	v1 "github.com/google/go-containerregistry/pkg/v1"
)

// Advisory images: image configs and layers that replay the peers' advisories (make security,
// test/e2e's TestAdvisory tests). Each is busybox with one hostile property.
const (
	// AdvisoryLabels has config labels named as containerd's and the CRI's own
	// (containerd's GHSA-xhf5-7wjv-pqxp: image labels reaching containerd's reserved ones).
	AdvisoryLabels = "docker.io/berth/advisory-labels:1"
	// AdvisoryEndlessPasswd has an /etc/passwd and an /etc/group that never end (symlinks to
	// a /dev/zero of its own) and a USER to look up in them (containerd's GHSA-jpcc-p29g-p8mq).
	AdvisoryEndlessPasswd = "docker.io/berth/advisory-passwd:endless"
	// AdvisoryVolumes declares volumes that climb out of the root file system, by their path
	// and through a symlink in the image (containerd's GHSA-crp2-qrr5-8pq7).
	AdvisoryVolumes = "docker.io/berth/advisory-volumes:1"
	// AdvisoryEtcSymlink has /etc as a symlink to a node path, where the pod's hosts,
	// resolv.conf and hostname files are mounted (CRI-O's GHSA-j9hf-98c3-wrm8).
	AdvisoryEtcSymlink = "docker.io/berth/advisory-etc:symlink"
	// AdvisoryDevSymlink has /dev as a symlink to a node path, where runc makes device nodes
	// (runc's GHSA-xjvp-4fhw-gc47).
	AdvisoryDevSymlink = "docker.io/berth/advisory-dev:symlink"
)

// Node paths the advisory images aim at; a test checks that none was made.
const (
	AdvisoryVolumeTarget = "/tmp/berth-advisory-volume"
	AdvisoryEtcTarget    = "/tmp/berth-advisory-etc"
	AdvisoryDevTarget    = "/tmp/berth-advisory-dev"
)

// addAdvisoryImages adds the advisory images to the catalog through add.
func addAdvisoryImages(b *builder, add func(ref string, cfg v1.Config, layers ...v1.Layer)) error {
	sleep := []string{"sleep", "3600"}
	add(AdvisoryLabels, v1.Config{Cmd: sleep, Env: []string{defaultPath}, Labels: map[string]string{
		"containerd.io/restart.status":           "running",
		"containerd.io/gc.ref.content.l.0":       "sha256:0000000000000000000000000000000000000000000000000000000000000000",
		"io.cri-containerd.image":                "managed",
		"io.kubernetes.cri.container-type":       "sandbox",
		"io.containerd.image.config.stop-signal": "SIGKILL",
		"berth.kind":                             "sandbox",
	}}, b.base)

	endless, err := layer(chardev("dev/zero", 1, 5), symlink("etc/passwd", "/dev/zero"), symlink("etc/group", "/dev/zero"))
	if err != nil {
		return err
	}
	add(AdvisoryEndlessPasswd, v1.Config{Cmd: sleep, Env: []string{defaultPath}, User: "www-data:www-data"}, b.base, endless)

	climb, err := layer(symlink("data", "../../../../../.."+AdvisoryVolumeTarget+"-link"), symlink("abs", AdvisoryVolumeTarget+"-abs"))
	if err != nil {
		return err
	}
	add(AdvisoryVolumes, v1.Config{Cmd: sleep, Env: []string{defaultPath}, Volumes: map[string]struct{}{
		"/../../../../../.." + AdvisoryVolumeTarget: {}, "/data/sub": {}, "/abs": {},
	}}, b.base, climb)

	etc, err := layer(symlink("etc", AdvisoryEtcTarget))
	if err != nil {
		return err
	}
	add(AdvisoryEtcSymlink, v1.Config{Cmd: sleep, Env: []string{defaultPath}}, b.base, etc)

	dev, err := layer(symlink("dev", AdvisoryDevTarget))
	if err != nil {
		return err
	}
	add(AdvisoryDevSymlink, v1.Config{Cmd: sleep, Env: []string{defaultPath}}, b.base, dev)
	return nil
}
