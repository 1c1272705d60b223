package images

import (
	"fmt"
	"os"
	"path/filepath"

	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/tarball"
)

// addNodeE2EImages adds the images Kubernetes v1.37's node e2e suite runs (its
// test/utils/image/manifest.go names and tags), each a stand-in built here that behaves as the
// specs need. agnhost is the real program on a busybox base (the real image is alpine with
// network tools), with ./testbin as its UDP-capable nc and, when hack/install-node-e2e.sh put
// them beside agnhost, the porter's localhost.crt and .key for TLS; nginx and nonewprivs are
// ./testbin; nonroot is busybox with USER 1234; glibc-dns-testing is busybox; kitten (image
// volumes) has the files the specs read. busybox 1.37.0-2
// and pause 3.10.2 are in every catalog.
//
// With agnhostRootFS (a Debian root file system's tar) agnhost is over Debian and its network
// tools, as the real image is over Alpine and its, for the conformance suite.
func addNodeE2EImages(b *builder, agnhostPath, agnhostRootFS string, add func(ref string, cfg v1.Config, layers ...v1.Layer)) error {
	agnhost, err := os.ReadFile(agnhostPath)
	if err != nil {
		return fmt.Errorf("read agnhost: %w", err)
	}
	// As agnhost's Dockerfile: /agnhost (and /agnhost-2), /uploads, a user and a group defined
	// in the image.
	// The real image has netcat-openbsd (UDP) and the porter's certificate for TLS servers; over
	// busybox, ./testbin stands in for the former.
	agnhostBase := []v1.Layer{b.base, b.ipcs}
	var extra []entry
	if agnhostRootFS != "" {
		rootfs, err := tarball.LayerFromFile(agnhostRootFS)
		if err != nil {
			return fmt.Errorf("agnhost's root file system: %w", err)
		}
		agnhostBase = []v1.Layer{rootfs}
	} else {
		extra = append(extra, file("usr/local/bin/nc", 0o755, b.testbin))
	}
	for _, name := range []string{"localhost.crt", "localhost.key"} {
		if pem, err := os.ReadFile(filepath.Join(filepath.Dir(agnhostPath), name)); err == nil {
			extra = append(extra, file(name, 0o644, pem))
		}
	}
	agnhostLayer, err := layer(append(extra, file("agnhost", 0o755, agnhost), hardlink("agnhost-2", "agnhost"), dir("uploads", 0o755),
		file("etc/passwd", 0o644, []byte(passwd+"user-defined-in-image:x:1000:1000:Linux User,,,:/home/user-defined-in-image:/bin/sh\n")),
		file("etc/group", 0o644, []byte(group+"user-defined-in-image:x:1000:\ngroup-defined-in-image:x:50000:user-defined-in-image\n")),
		dir("home/user-defined-in-image", 0o755))...)
	if err != nil {
		return err
	}
	agnhostCfg := v1.Config{Entrypoint: []string{"/agnhost"}, Cmd: []string{"pause"}, Env: []string{defaultPath},
		ExposedPorts: map[string]struct{}{"80/tcp": {}, "8080/tcp": {}, "8081/tcp": {}, "9376/tcp": {}, "5000/tcp": {}}}
	nnp, err := layer(file("usr/local/bin/nnp", 0o4755, b.testbin))
	if err != nil {
		return err
	}

	// kitten, the image volume specs' volume: an Alpine image with a picture and its data.json.
	kitten, err := layer(file("data.json", 0o644, []byte(`{"image": "kitten.jpg"}`+"\n")), file("kitten.jpg", 0o644, []byte("a kitten\n")),
		file("etc/os-release", 0o644, []byte("NAME=\"Alpine Linux\"\nID=alpine\n")),
		file("etc/passwd", 0o644, []byte(passwd)))
	if err != nil {
		return err
	}
	add(e2eImages+"kitten:1.8", v1.Config{Cmd: []string{"sh"}, Env: []string{defaultPath}}, b.base, kitten)

	// Over busybox, b.ipcs brings the curl (and pgrep, nmeter) the specs run in agnhost.
	add(e2eImages+"agnhost:2.66.1", agnhostCfg, append(agnhostBase, agnhostLayer)...)
	add(e2eImages+"agnhost:2.55", agnhostCfg, append(agnhostBase, agnhostLayer)...)
	add(e2eImages+"nginx:1.27.0-2", webConfig("nginx", 80), b.base, b.nginx)
	add(e2eImages+"nginx:1.28.0-2", webConfig("nginx", 80), b.base, b.nginx)
	add(e2eImages+"nonroot:1.5", v1.Config{Cmd: []string{"sh"}, Env: []string{defaultPath}, User: "1234"}, b.base)
	add(e2eImages+"nonewprivs:1.4", v1.Config{Cmd: []string{"nnp"}, Env: []string{defaultPath}}, b.base, nnp)
	// glibc-dns-testing is a glibc userland for `hostname -f`; Debian's busybox-static is glibc
	// linked statically, and its hostname -f resolves through /etc/hosts the same way. With
	// agnhost's Debian root file system it is that (the DNS conformance specs run dig in it, as
	// in agnhost).
	glibcBase := []v1.Layer{b.base, b.ipcs}
	if agnhostRootFS != "" {
		glibcBase = agnhostBase
	}
	add(e2eImages+"glibc-dns-testing:2.1.1", v1.Config{Cmd: []string{"sh"}, Env: []string{defaultPath}}, glibcBase...)
	return nil
}
