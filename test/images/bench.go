package images

import (
	"fmt"
	"math/rand/v2"
	"strings"

	v1 "github.com/google/go-containerregistry/pkg/v1"
)

// BenchPullLayers are the pull benchmark's images by their number of layers: the 3-layer image of
// the catalog and one of 10 layers (the same three and seven of data).
var BenchPullLayers = map[int]string{3: "docker.io/berth/bench-pull:3", 10: "docker.io/berth/bench-pull:10"}

// BenchConcurrentPulls are four 3-layer images with no layer in common, pulled at once by the
// pull benchmark.
var BenchConcurrentPulls = []string{
	"docker.io/berth/bench-pull-a:3", "docker.io/berth/bench-pull-b:3",
	"docker.io/berth/bench-pull-c:3", "docker.io/berth/bench-pull-d:3",
}

// BenchCatalog returns the pull benchmark's images that the catalog does not have. Their data
// layers hold 16 files of 64 KiB of seeded pseudo-random bytes each (1 MiB, which gzip cannot
// shrink), the same on every build.
func BenchCatalog(src Sources) (map[string]v1.Image, error) {
	b, err := newBuilder(src)
	if err != nil {
		return nil, err
	}
	out := map[string]v1.Image{}
	layers := []v1.Layer{b.base, b.ipcs, b.nginx}
	for i := range 7 {
		l, err := dataLayer(fmt.Sprintf("bench-pull-10-%d", i))
		if err != nil {
			return nil, err
		}
		layers = append(layers, l)
	}
	if out[BenchPullLayers[10]], err = b.image(webConfig("nginx", 80), layers...); err != nil {
		return nil, err
	}
	for _, ref := range BenchConcurrentPulls {
		var layers []v1.Layer
		for i := range 3 {
			l, err := dataLayer(fmt.Sprintf("%s-%d", ref, i))
			if err != nil {
				return nil, err
			}
			layers = append(layers, l)
		}
		if out[ref], err = b.image(v1.Config{Cmd: []string{"sh"}, Env: []string{defaultPath}}, layers...); err != nil {
			return nil, err
		}
	}
	return out, nil
}

// dataLayer is a layer of 16 files of 64 KiB of pseudo-random bytes seeded by name.
func dataLayer(name string) (v1.Layer, error) {
	var seed [32]byte
	copy(seed[:], name)
	rng := rand.NewChaCha8(seed)
	var entries []entry
	for i := range 16 {
		b := make([]byte, 64<<10)
		rng.Read(b)
		entries = append(entries, file(fmt.Sprintf("data/%s/%02d", strings.NewReplacer("/", "-", ":", "-").Replace(name), i), 0o644, b))
	}
	return layer(entries...)
}
