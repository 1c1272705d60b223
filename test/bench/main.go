// Command bench measures berth against containerd's own CRI plugin on this machine, in one run:
// the same containerd and runc, the same images from the same loopback registry, driven through
// the same CRI client. It prints each figure for both with the ratio berth/containerd, and writes
// them as JSON (BENCH_JSON, default bin/bench.json). It asserts nothing: tests do that.
//
// Figures so far: berthd cold start to first answered Version, and the cold pull of a 3-layer image.
package main

import (
	"context"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"
	runtimeapi "k8s.io/cri-api/pkg/apis/runtime/v1"

	"github.com/berth-runtime/berth/test/daemon"
	"github.com/berth-runtime/berth/test/images"
)

const pullImage = "docker.io/berth/bench-pull:3"

// figure is one measurement for both runtimes; lower is better for every figure.
type figure struct {
	Name       string  `json:"name"`
	Unit       string  `json:"unit"`
	Berth      float64 `json:"berth"`
	Containerd float64 `json:"containerd"`
	Ratio      float64 `json:"ratio"`
}

func main() {
	if err := run(); err != nil {
		fmt.Fprintln(os.Stderr, "bench:", err)
		os.Exit(1)
	}
}

func run() error {
	tmp, err := os.MkdirTemp("", "berth-bench-")
	if err != nil {
		return err
	}
	defer os.RemoveAll(tmp)
	reg, err := serveImages(tmp)
	if err != nil {
		return err
	}
	defer reg.Close()
	hosts := filepath.Join(tmp, "certs.d")
	if err := reg.WriteHostsDir(hosts); err != nil {
		return err
	}

	var figures []figure
	add := func(name, unit string, b, c float64) {
		figures = append(figures, figure{name, unit, b, c, b / c})
	}

	// Cold start: from exec to the first answered Version.
	start := time.Now()
	d, err := daemon.Start("--registry-config-dir", hosts)
	if err != nil {
		return err
	}
	defer d.Cleanup()
	berthStart := time.Since(start)
	start = time.Now()
	c, err := daemon.StartContainerdCRI(hosts)
	if err != nil {
		return err
	}
	defer c.Cleanup()
	ctrdImages, ctrdRuntime, err := dial(c.Endpoint())
	if err != nil {
		return err
	}
	if err := waitVersion(ctrdRuntime); err != nil {
		return err
	}
	add("cold start to first Version", "ms", ms(berthStart), ms(time.Since(start)))

	const pulls = 10
	bp, err := coldPulls(d.Image, pulls)
	if err != nil {
		return fmt.Errorf("berth: %w", err)
	}
	cp, err := coldPulls(ctrdImages, pulls)
	if err != nil {
		return fmt.Errorf("containerd: %w", err)
	}
	add("cold pull of a 3-layer image, p50", "ms", ms(percentile(bp, 50)), ms(percentile(cp, 50)))
	add("cold pull of a 3-layer image, max", "ms", ms(percentile(bp, 100)), ms(percentile(cp, 100)))

	fmt.Printf("%-40s %12s %12s %8s\n", "figure", "berth", "containerd", "ratio")
	for _, f := range figures {
		fmt.Printf("%-40s %9.1f %s %9.1f %s %8.2f\n", f.Name, f.Berth, f.Unit, f.Containerd, f.Unit, f.Ratio)
	}
	out := os.Getenv("BENCH_JSON")
	if out == "" {
		out = filepath.Join("bin", "bench.json")
	}
	b, _ := json.MarshalIndent(map[string]any{"time": time.Now().UTC(), "figures": figures}, "", "  ")
	if err := os.WriteFile(out, b, 0o644); err != nil {
		return err
	}
	fmt.Println("bench: figures written to", out)
	return nil
}

// coldPulls pulls the 3-layer image n times, removing it after each pull so that every pull
// fetches and unpacks all of it.
func coldPulls(is runtimeapi.ImageServiceClient, n int) ([]time.Duration, error) {
	var out []time.Duration
	for range n {
		ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
		start := time.Now()
		resp, err := is.PullImage(ctx, &runtimeapi.PullImageRequest{Image: &runtimeapi.ImageSpec{Image: pullImage}})
		out = append(out, time.Since(start))
		if err == nil {
			_, err = is.RemoveImage(ctx, &runtimeapi.RemoveImageRequest{Image: &runtimeapi.ImageSpec{Image: resp.ImageRef}})
		}
		cancel()
		if err != nil {
			return nil, err
		}
	}
	return out, nil
}

func serveImages(tmp string) (*images.Registry, error) {
	busybox, err := images.BusyboxPath()
	if err != nil {
		return nil, err
	}
	testbin, err := images.BuildTestBin(".", tmp)
	if err != nil {
		return nil, err
	}
	cat, err := images.Catalog(images.Sources{Busybox: busybox, TestBin: testbin})
	if err != nil {
		return nil, err
	}
	reg, err := images.StartRegistry("", nil)
	if err != nil {
		return nil, err
	}
	return reg, reg.Push(context.Background(), cat)
}

func dial(endpoint string) (runtimeapi.ImageServiceClient, runtimeapi.RuntimeServiceClient, error) {
	conn, err := grpc.NewClient(endpoint, grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		return nil, nil, err
	}
	return runtimeapi.NewImageServiceClient(conn), runtimeapi.NewRuntimeServiceClient(conn), nil
}

func waitVersion(rs runtimeapi.RuntimeServiceClient) error {
	deadline := time.Now().Add(30 * time.Second)
	for {
		ctx, cancel := context.WithTimeout(context.Background(), time.Second)
		_, err := rs.Version(ctx, &runtimeapi.VersionRequest{})
		cancel()
		if err == nil || time.Now().After(deadline) {
			return err
		}
		time.Sleep(5 * time.Millisecond)
	}
}

func percentile(ds []time.Duration, p int) time.Duration {
	s := slices.Clone(ds)
	slices.Sort(s)
	i := (len(s)*p + 99) / 100
	return s[max(0, min(len(s)-1, i-1))]
}

func ms(d time.Duration) float64 { return float64(d.Microseconds()) / 1000 }
