// Package images builds the container images that berth's tests and critest use, from Debian's
// busybox-static and a small Go test binary, and serves them from a registry on loopback. No
// public registry is needed: the images carry the properties critest's specs check (commands,
// users, groups, web servers on the expected ports), and the same build gives the same digests.
package images

import (
	"fmt"
	"maps"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"

	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/empty"
	"github.com/google/go-containerregistry/pkg/v1/mutate"
	"github.com/google/go-containerregistry/pkg/v1/types"
)

// Repository prefixes of the public images critest v1.34 pulls.
const (
	e2eImages = "registry.k8s.io/e2e-test-images/"
	criTools  = "gcr.io/k8s-staging-cri-tools/"
)

// Sources are the host files the images are built from.
type Sources struct {
	// Busybox is a static busybox binary (Debian's busybox-static: /bin/busybox).
	Busybox string
	// TestBin is the static test binary of ./testbin, built by BuildTestBin.
	TestBin string
	// Agnhost, when set, is a static agnhost binary (k8s.io/kubernetes/test/images/agnhost, built
	// by hack/install-node-e2e.sh): the catalog then has the images of Kubernetes' node e2e suite.
	Agnhost string
	// AgnhostRootFS, when set, is an uncompressed tar of a Debian root file system with the
	// network tools the real agnhost image has (bash, dig, netcat-openbsd, curl, socat, iperf):
	// agnhost's images (and glibc-dns-testing) are built over it instead of busybox. Kubernetes'
	// conformance specs run those tools (`nc -v -t`, `dig +search`), which busybox's applets do
	// not take.
	AgnhostRootFS string
	// SampleAPIServer, when set, is k8s.io/sample-apiserver's binary (hack/install-kind.sh
	// --conformance): the catalog then has the image of the conformance suite's Aggregator spec.
	SampleAPIServer string
}

// Catalog returns every image by its full reference (registry/repository:tag).
func Catalog(src Sources) (map[string]v1.Image, error) {
	b, err := newBuilder(src)
	if err != nil {
		return nil, err
	}
	shell := v1.Config{Cmd: []string{"sh"}, Env: []string{defaultPath}}
	user := func(u string) v1.Config { return v1.Config{Cmd: []string{"sh"}, Env: []string{defaultPath}, User: u} }
	type spec struct {
		cfg    v1.Config
		layers []v1.Layer
	}
	specs := map[string]spec{
		e2eImages + "busybox:1.29-2": {shell, []v1.Layer{b.base, b.ipcs}},
		// The busybox of Kubernetes v1.37's e2e suites (test/utils/image/manifest.go).
		e2eImages + "busybox:1.37.0-2":          {shell, []v1.Layer{b.base, b.ipcs}},
		"docker.io/library/busybox:latest":      {shell, []v1.Layer{b.base, b.ipcs}},
		"docker.io/library/busybox:1.37.0":      {shell, []v1.Layer{b.base, b.ipcs}},
		e2eImages + "nginx:1.14-2":              {webConfig("nginx", 80), []v1.Layer{b.base, b.nginx}},
		criTools + "hostnet-nginx-amd64:latest": {webConfig("nginx", 12003), []v1.Layer{b.base, b.nginx}},
		e2eImages + "httpd:2.4.39-4":            {webConfig("httpd-foreground", 80), []v1.Layer{b.base, b.httpd}},
		e2eImages + "nonewprivs:1.3":            {v1.Config{Entrypoint: []string{"/usr/local/bin/nonewprivs"}, Env: []string{defaultPath}}, []v1.Layer{b.base, b.nonewprivs}},
		// Three layers, for pull benchmarks.
		"docker.io/berth/bench-pull:3": {webConfig("nginx", 80), []v1.Layer{b.base, b.ipcs, b.nginx}},
		// containerd's own CRI needs a sandbox image (for the comparison runs); berth does not.
		"registry.k8s.io/pause:3.10.1": {v1.Config{Entrypoint: []string{"/pause"}}, []v1.Layer{b.pause}},
		"registry.k8s.io/pause:3.10.2": {v1.Config{Entrypoint: []string{"/pause"}}, []v1.Layer{b.pause}},
		// One image under two registries' names, for critest's image identity specs.
		"registry.k8s.io/pause:3.9":                        {v1.Config{Entrypoint: []string{"/pause"}}, []v1.Layer{b.pause}},
		"k8s.gcr.io/pause:3.9":                             {v1.Config{Entrypoint: []string{"/pause"}}, []v1.Layer{b.pause}},
		criTools + "test-image-user-uid:latest":            {user("1002"), []v1.Layer{b.base}},
		criTools + "test-image-user-username:latest":       {user("www-data"), []v1.Layer{b.base}},
		criTools + "test-image-user-uid-group:latest":      {user("1003:users"), []v1.Layer{b.base}},
		criTools + "test-image-user-username-group:latest": {user("www-data:users"), []v1.Layer{b.base}},
		criTools + "test-image-predefined-group:latest":    {user("1000"), []v1.Layer{b.base, b.predefinedGroup}},
	}
	// Files a later layer deletes (a whiteout) or hides (an opaque directory): with layers
	// unpacked side by side (the managed containerd's max_concurrent_unpacks), each layer's
	// deletions must still apply to the layers below it.
	added, err := layer(file("data/gone", 0o644, []byte("gone\n")), file("data/kept", 0o644, []byte("kept\n")),
		file("opaque/old", 0o644, []byte("old\n")), file("opaque/sub/x", 0o644, []byte("x\n")))
	if err != nil {
		return nil, err
	}
	deleted, err := layer(file("data/.wh.gone", 0o644, nil), file("opaque/.wh..wh..opq", 0o644, nil),
		file("opaque/new", 0o644, []byte("new\n")))
	if err != nil {
		return nil, err
	}
	late, err := layer(file("data/late", 0o644, []byte("late\n")))
	if err != nil {
		return nil, err
	}
	specs[WhiteoutsRef] = spec{shell, []v1.Layer{b.base, added, deleted, late}}

	// Images that differ only in a file named after them, as cri-tools' image-test Dockerfile;
	// test-image-tags has three tags of one image.
	for _, name := range []string{"test-image-latest:latest", "test-image-tag:test", "test-image-tag:all",
		"test-image-1:latest", "test-image-2:latest", "test-image-3:latest", "test-image-tags"} {
		mark, err := layer(file(strings.ReplaceAll(name, ":", "-"), 0o644, []byte(name+"\n")))
		if err != nil {
			return nil, err
		}
		if name == "test-image-tags" {
			for _, t := range []string{"1", "2", "3"} {
				specs[criTools+name+":"+t] = spec{shell, []v1.Layer{b.base, mark}}
			}
			continue
		}
		specs[criTools+name] = spec{shell, []v1.Layer{b.base, mark}}
	}

	if err := addParityImages(b, func(ref string, cfg v1.Config, layers ...v1.Layer) {
		specs[ref] = spec{cfg, layers}
	}); err != nil {
		return nil, err
	}

	// The update demo's images (kubectl's Update Demo conformance specs): a web server on port 80
	// whose data.json names its picture, as the real nginx-based ones serve it.
	for _, pic := range []string{"nautilus", "kitten"} {
		site, err := layer(file("srv/update-demo/data.json", 0o644, []byte(`{"image": "`+pic+`.jpg"}`+"\n")),
			file("srv/update-demo/"+pic+".jpg", 0o644, []byte(pic+"\n")))
		if err != nil {
			return nil, err
		}
		specs[e2eImages+pic+":1.8"] = spec{v1.Config{Cmd: []string{"httpd", "-f", "-p", "80", "-h", "/srv/update-demo"}, Env: []string{defaultPath},
			ExposedPorts: map[string]struct{}{"80/tcp": {}}}, []v1.Layer{b.base, site}}
	}

	if err := addAdvisoryImages(b, func(ref string, cfg v1.Config, layers ...v1.Layer) {
		specs[ref] = spec{cfg, layers}
	}); err != nil {
		return nil, err
	}

	if src.SampleAPIServer != "" {
		bin, err := os.ReadFile(src.SampleAPIServer)
		if err != nil {
			return nil, err
		}
		l, err := layer(file("sample-apiserver", 0o755, bin))
		if err != nil {
			return nil, err
		}
		specs[e2eImages+"sample-apiserver:1.29.2"] = spec{v1.Config{Entrypoint: []string{"/sample-apiserver"}, Env: []string{defaultPath}}, []v1.Layer{b.base, l}}
	}

	if src.Agnhost != "" {
		if err := addNodeE2EImages(b, src.Agnhost, src.AgnhostRootFS, func(ref string, cfg v1.Config, layers ...v1.Layer) {
			specs[ref] = spec{cfg, layers}
		}); err != nil {
			return nil, err
		}
	}

	c := map[string]v1.Image{}
	for ref, s := range specs {
		img, err := b.image(s.cfg, s.layers...)
		if err != nil {
			return nil, fmt.Errorf("build %s: %w", ref, err)
		}
		c[ref] = img
	}
	return c, nil
}

// WhiteoutsRef is an image whose third layer deletes a file and empties a directory of its second:
// a container of it sees /data/kept, /data/late and /opaque/new, and no /data/gone, /opaque/old or
// /opaque/sub.
const WhiteoutsRef = "docker.io/berth/whiteouts:1"

// Refs returns the catalog's references, sorted.
func Refs(c map[string]v1.Image) []string { return slices.Sorted(maps.Keys(c)) }

const defaultPath = "PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"

func webConfig(cmd string, port int) v1.Config {
	return v1.Config{
		Cmd:          []string{cmd},
		Env:          []string{defaultPath, fmt.Sprintf("PORT=%d", port)},
		ExposedPorts: map[string]struct{}{fmt.Sprintf("%d/tcp", port): {}},
	}
}

// builder holds the layers images are assembled from; images that share a layer share its blob.
type builder struct {
	base, ipcs, nginx, httpd, nonewprivs, predefinedGroup, pause v1.Layer
	src                                                          Sources
	testbin                                                      []byte
}

func newBuilder(src Sources) (*builder, error) {
	busybox, err := os.ReadFile(src.Busybox)
	if err != nil {
		return nil, fmt.Errorf("read busybox: %w", err)
	}
	testbin, err := os.ReadFile(src.TestBin)
	if err != nil {
		return nil, fmt.Errorf("read test binary: %w", err)
	}
	applets, err := exec.Command(src.Busybox, "--list-full").Output()
	if err != nil {
		return nil, fmt.Errorf("list busybox applets: %w", err)
	}
	b := &builder{src: src, testbin: testbin}
	if b.base, err = baseLayer(busybox, strings.Fields(string(applets))); err != nil {
		return nil, err
	}
	if b.ipcs, err = layer(file("usr/bin/ipcs", 0o755, []byte(ipcsScript)), file("usr/bin/pgrep", 0o755, []byte(pgrepScript)),
		file("usr/bin/nmeter", 0o755, []byte(nmeterScript)), file("usr/bin/curl", 0o755, []byte(curlScript))); err != nil {
		return nil, err
	}
	page := []byte("<!DOCTYPE html>\n<html><head><title>Welcome to nginx!</title></head><body><h1>Welcome to nginx!</h1></body></html>\n")
	if b.nginx, err = layer(file("usr/sbin/nginx", 0o755, testbin), file("usr/share/nginx/html/index.html", 0o644, page), dir("var/run", 0o755)); err != nil {
		return nil, err
	}
	if b.httpd, err = layer(file("usr/local/bin/httpd-foreground", 0o755, testbin),
		file("usr/local/apache2/htdocs/index.html", 0o644, []byte("<html><body><h1>It works!</h1></body></html>\n"))); err != nil {
		return nil, err
	}
	if b.nonewprivs, err = layer(file("usr/local/bin/nonewprivs", 0o4755, testbin)); err != nil {
		return nil, err
	}
	if b.pause, err = layer(file("pause", 0o755, testbin)); err != nil {
		return nil, err
	}
	if b.predefinedGroup, err = layer(
		file("etc/passwd", 0o644, []byte(passwd+"default-user:x:1000:1000:Linux User,,,:/home/default-user:/bin/sh\n")),
		file("etc/group", 0o644, []byte(group+"default-user:x:1000:\ngroup-defined-in-image:x:50000:default-user\n")),
		dir("home/default-user", 0o755)); err != nil {
		return nil, err
	}
	return b, nil
}

// image assembles an OCI image for linux/amd64 from layers and cfg.
func (b *builder) image(cfg v1.Config, layers ...v1.Layer) (v1.Image, error) {
	img := mutate.MediaType(empty.Image, types.OCIManifestSchema1)
	img = mutate.ConfigMediaType(img, types.OCIConfigJSON)
	img, err := mutate.AppendLayers(img, layers...)
	if err != nil {
		return nil, err
	}
	cf, err := img.ConfigFile()
	if err != nil {
		return nil, err
	}
	cf = cf.DeepCopy()
	cf.OS, cf.Architecture = "linux", "amd64"
	cf.Created = v1.Time{Time: epoch}
	cf.Config = cfg
	return mutate.ConfigFile(img, cf)
}

// baseLayer is a busybox root file system: the binary, a hard link per applet, and the users and
// groups of the busybox image.
func baseLayer(busybox []byte, applets []string) (v1.Layer, error) {
	entries := []entry{
		dir("bin", 0o755), dir("dev", 0o755), dir("etc", 0o755), dir("home", 0o755), dir("proc", 0o555),
		dir("root", 0o700), dir("sys", 0o555), dir("tmp", 0o1777), dir("usr/bin", 0o755), dir("usr/sbin", 0o755),
		dir("sbin", 0o755), dir("var/run", 0o755), dir("var/log", 0o755), dir("var/www", 0o755),
		dir("var/spool/mail", 0o755), dir("usr/local/bin", 0o755),
		file("bin/busybox", 0o755, busybox),
		file("etc/passwd", 0o644, []byte(passwd)),
		file("etc/group", 0o644, []byte(group)),
	}
	seen := map[string]bool{"bin/busybox": true}
	for _, a := range applets {
		a = strings.TrimPrefix(a, "/")
		// Hard links, as in the busybox image: masking one applet's path (critest's MaskedPaths
		// masks /bin/ls) must not mask busybox itself, as a symlink would. Each applet is also
		// in /bin, where the busybox image has them all (specs run /bin/sysctl, say).
		for _, p := range []string{a, "bin/" + filepath.Base(a)} {
			if !seen[p] {
				seen[p] = true
				entries = append(entries, hardlink(p, "bin/busybox"))
			}
		}
	}
	return layer(entries...)
}

// BusyboxPath finds Debian's busybox-static binary.
func BusyboxPath() (string, error) {
	for _, p := range []string{"/bin/busybox", "/usr/bin/busybox"} {
		if _, err := os.Stat(p); err == nil {
			return p, nil
		}
	}
	return "", fmt.Errorf("busybox not found: install busybox-static (hack/install-deps.sh)")
}

// BuildTestBin compiles ./testbin statically into dir and returns its path. moduleDir is the root
// of the berth module.
func BuildTestBin(moduleDir, dir string) (string, error) {
	out := filepath.Join(dir, "testbin")
	cmd := exec.Command("go", "build", "-trimpath", "-ldflags", "-s -w -buildid=", "-o", out, "./test/images/testbin")
	cmd.Dir = moduleDir
	cmd.Env = append(os.Environ(), "CGO_ENABLED=0")
	if b, err := cmd.CombinedOutput(); err != nil {
		return "", fmt.Errorf("build test binary: %v\n%s", err, b)
	}
	return out, nil
}

const passwd = `root:x:0:0:root:/root:/bin/sh
daemon:x:1:1:daemon:/usr/sbin:/bin/false
bin:x:2:2:bin:/bin:/bin/false
sys:x:3:3:sys:/dev:/bin/false
sync:x:4:100:sync:/bin:/bin/sync
mail:x:8:8:mail:/var/spool/mail:/bin/false
www-data:x:33:33:www-data:/var/www:/bin/false
operator:x:37:37:Operator:/var:/bin/false
nobody:x:65534:65534:nobody:/home:/bin/false
`

const group = `root:x:0:
daemon:x:1:
bin:x:2:
sys:x:3:
adm:x:4:
tty:x:5:
disk:x:6:
lp:x:7:
mail:x:8:
kmem:x:9:
wheel:x:10:root
cdrom:x:11:
dialout:x:18:
floppy:x:19:
video:x:28:
audio:x:29:
tape:x:32:
www-data:x:33:
operator:x:37:
utmp:x:43:
plugdev:x:46:
staff:x:50:
lock:x:54:
netdev:x:82:
users:x:100:
nogroup:x:65534:
`

// ipcsScript stands in for util-linux's ipcs, which busybox-static lacks: `ipcs -m` lists the
// shared memory segments of the IPC namespace it runs in, which is what critest's HostIpc specs
// look for.
const ipcsScript = `#!/bin/sh
echo
echo "------ Shared Memory Segments --------"
echo "key        shmid      owner      perms      bytes      nattch     status"
if [ -r /proc/sysvipc/shm ]; then
	awk 'NR > 1 { printf "0x%08x %-10s %-10s %-10s %-10s %-10s\n", $1, $2, $8, $3, $4, $7 }' /proc/sysvipc/shm
fi
echo
`

// pgrepScript stands in for pgrep, which busybox-static lacks: it prints the pids of the
// processes whose name matches the pattern (critest's execSync timeout spec runs `pgrep sleep`).
const pgrepScript = `#!/bin/sh
if [ $# -ne 1 ]; then
	echo "usage: pgrep PATTERN" >&2
	exit 2
fi
status=1
for d in /proc/[0-9]*; do
	comm=$(cat "$d/comm" 2>/dev/null) || continue
	if echo "$comm" | grep -q -- "$1"; then
		echo "${d#/proc/}"
		status=0
	fi
done
exit $status
`

// nmeterScript stands in for busybox's nmeter, which Debian's busybox-static lacks, for the one use
// Kubernetes' node e2e suite makes of it: the time of day with milliseconds (`nmeter -d0 '%3t'`,
// read through head -n1): it prints the UTC time with the number of decimals %Nt asks for, line
// after line (-d0: no delay) until its reader goes.
const nmeterScript = `#!/bin/sh
fmt=$(printf '%s' "$*" | sed -n 's/.*%\([0-9]\)t.*/\1/p')
[ -n "$fmt" ] || fmt=0
while :; do
	t=$EPOCHREALTIME
	frac=$(printf '%s' "${t#*.}000000" | cut -c1-"$fmt")
	if [ "$fmt" -gt 0 ]; then
		echo "$(date -u -d "@${t%.*}" +%T).$frac" || exit 0
	else
		echo "$(date -u -d "@${t%.*}" +%T)" || exit 0
	fi
done
`

// curlScript stands in for curl, which Kubernetes' e2e specs run inside agnhost and busybox
// images (the real agnhost image has it) and Debian's busybox-static lacks, with busybox's wget:
// the options those specs use (-g -q -s -L -i, -o FILE, -w '%{http_code}', --connect-timeout,
// --max-time) and curl's exit codes for a connection that fails (7) or times out (28). As
// busybox's wget, it has no body to show for an HTTP error status.
const curlScript = `#!/bin/sh
out=-; fmt=; incl=; timeout=; url=
while [ $# -gt 0 ]; do
	case "$1" in
	-o | --output) out=$2; shift ;;
	-w | --write-out) fmt=$2; shift ;;
	-i | --include) incl=1 ;;
	-m | --max-time | --connect-timeout) timeout=${2%%.*}; shift ;;
	-Lo) out=$2; shift ;;
	-*) ;;
	*) url=$1 ;;
	esac
	shift
done
tmp=/tmp/.curl.$$
trap 'rm -f "$tmp.body" "$tmp.hdr"' EXIT
wget -S -q -O "$tmp.body" ${timeout:+-T "$timeout"} "$url" 2>"$tmp.hdr"
rc=$?
code=$(sed -n 's/^ *HTTP\/[0-9.]* \([0-9][0-9][0-9]\).*/\1/p' "$tmp.hdr" | tail -n1)
if [ -n "$incl" ] && [ -n "$code" ]; then
	sed -n 's/^  //p' "$tmp.hdr"
	echo
fi
if [ "$out" = - ]; then cat "$tmp.body" 2>/dev/null; else cp "$tmp.body" "$out" 2>/dev/null; fi
[ -n "$fmt" ] && printf '%s' "$fmt" | sed "s/%{http_code}/${code:-000}/g"
[ -n "$code" ] && exit 0
grep -q -i "timed out" "$tmp.hdr" && exit 28
exit 7
`
