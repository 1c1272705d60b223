package main

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"time"

	runtimeapi "k8s.io/cri-api/pkg/apis/runtime/v1"
)

// checkpoint: CheckpointContainer of a running, kubelet-shaped busybox container, in turns on
// each runtime (same runc, same CRIU): the call's time and the archive's size.
func (b *bench) checkpoint() error {
	const rounds = 6
	sizes := map[string][]float64{}
	times, err := b.inTurns(rounds, func(t *target) ([]time.Duration, error) {
		pods, lcs, _, err := t.startPods(1, 1, kubeletShaped)
		if err != nil {
			return nil, err
		}
		defer t.removePods(pods, lcs, 1)
		path := filepath.Join(b.tmp, fmt.Sprintf("%s-%s.tar", t.name, t.nextName()))
		defer os.Remove(path)
		ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
		defer cancel()
		start := time.Now()
		if _, err := t.rs.CheckpointContainer(ctx, &runtimeapi.CheckpointContainerRequest{ContainerId: pods[0].container, Location: path}); err != nil {
			return nil, fmt.Errorf("CheckpointContainer: %w", err)
		}
		took := time.Since(start)
		fi, err := os.Stat(path)
		if err != nil {
			return nil, err
		}
		sizes[t.name] = append(sizes[t.name], float64(fi.Size())/1024)
		return []time.Duration{took}, nil
	})
	if err != nil {
		return err
	}
	b.add("CheckpointContainer p50", "ms", ms(percentile(times["berth"], 50)), ms(percentile(times["containerd"], 50)))
	b.add("checkpoint archive", "KiB", mean(sizes["berth"]), mean(sizes["containerd"]))
	return nil
}

func mean(vs []float64) float64 {
	var sum float64
	for _, v := range vs {
		sum += v
	}
	if len(vs) == 0 {
		return 0
	}
	return sum / float64(len(vs))
}
