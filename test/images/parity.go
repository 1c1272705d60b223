package images

import (
	v1 "github.com/google/go-containerregistry/pkg/v1"
)

// Parity images: what an image's config can say about its containers (USER in every form,
// entrypoint, cmd, working directory, environment, volumes, stop signal), for the differential
// test against containerd's CRI (test/parity). Each is busybox with one property.
const (
	ParityUserName     = "docker.io/berth/parity-user:name"
	ParityUserUID      = "docker.io/berth/parity-user:uid"
	ParityUserUIDGroup = "docker.io/berth/parity-user:uid-group"
	ParityUserUIDGID   = "docker.io/berth/parity-user:uid-gid"
	// ParityUserOverflow says USER 4294967296, which does not fit a uid, and its /etc/passwd has
	// a user of that name with uid 0: the image that ran as root where ImageStatus said
	// otherwise (containerd's GHSA-fqw6-gf59-qr4w).
	ParityUserOverflow = "docker.io/berth/parity-user:overflow"
	ParityUserNegative = "docker.io/berth/parity-user:negative"
	// ParityProcess has an entrypoint, a cmd, a working directory that the image lacks and an
	// environment.
	ParityProcess = "docker.io/berth/parity-process:1"
	// ParityVolumes declares volumes, one over a directory with content.
	ParityVolumes = "docker.io/berth/parity-volumes:1"
	// ParityStopSignal stops with SIGUSR1.
	ParityStopSignal = "docker.io/berth/parity-stopsignal:1"
)

// addParityImages adds the parity images to the catalog through add.
func addParityImages(b *builder, add func(ref string, cfg v1.Config, layers ...v1.Layer)) error {
	sleep := []string{"sleep", "3600"}
	user := func(u string) v1.Config { return v1.Config{Cmd: sleep, Env: []string{defaultPath}, User: u} }
	add(ParityUserName, user("www-data"), b.base)
	add(ParityUserUID, user("1002"), b.base)
	add(ParityUserUIDGroup, user("1003:users"), b.base)
	add(ParityUserUIDGID, user("33:100"), b.base)
	overflow, err := layer(file("etc/passwd", 0o644, []byte(passwd+"4294967296:x:0:0:not root:/root:/bin/sh\n")))
	if err != nil {
		return err
	}
	add(ParityUserOverflow, user("4294967296"), b.base, overflow)
	add(ParityUserNegative, user("-1"), b.base)
	add(ParityProcess, v1.Config{
		Entrypoint: []string{"/bin/sh", "-c"},
		Cmd:        []string{"exec sleep 3600"},
		WorkingDir: "/srv/app",
		Env:        []string{defaultPath, "FROM_IMAGE=image", "OVERRIDDEN=image"},
	}, b.base)
	content, err := layer(file("var/lib/data/seed", 0o644, []byte("seed\n")))
	if err != nil {
		return err
	}
	add(ParityVolumes, v1.Config{
		Cmd: sleep, Env: []string{defaultPath},
		Volumes: map[string]struct{}{"/var/lib/data": {}, "/scratch": {}},
	}, b.base, content)
	add(ParityStopSignal, v1.Config{Cmd: sleep, Env: []string{defaultPath}, StopSignal: "SIGUSR1"}, b.base)
	return nil
}
