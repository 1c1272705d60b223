package image

import (
	"context"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"sync"
	"syscall"
	"time"

	"github.com/containerd/containerd/v2/plugins"
)

// FsUsage is the space the snapshotter's file system holds for images and writable layers.
type FsUsage struct {
	Mountpoint string
	Bytes      uint64
	Inodes     uint64
	Timestamp  time.Time
}

// usageCacheFor bounds how often the snapshotter directory is walked: the kubelet asks every few
// seconds, and a walk of a large image store is not free.
const usageCacheFor = 5 * time.Second

type usageCache struct {
	mu         sync.Mutex
	mountpoint string
	last       FsUsage
}

// FsInfo returns the snapshotter's mountpoint and the bytes and inodes used below it.
func (s *Service) FsInfo(ctx context.Context) (FsUsage, error) {
	s.usage.mu.Lock()
	defer s.usage.mu.Unlock()
	if time.Since(s.usage.last.Timestamp) < usageCacheFor {
		return s.usage.last, nil
	}
	if s.usage.mountpoint == "" {
		root, err := s.snapshotterRoot(ctx)
		if err != nil {
			return FsUsage{}, err
		}
		s.usage.mountpoint = root
	}
	u, err := diskUsage(s.usage.mountpoint)
	if err != nil {
		return FsUsage{}, fmt.Errorf("disk usage of %s: %w", s.usage.mountpoint, err)
	}
	s.usage.last = u
	return u, nil
}

// snapshotterRoot asks containerd where the snapshotter keeps its data.
func (s *Service) snapshotterRoot(ctx context.Context) (string, error) {
	resp, err := s.client.IntrospectionService().Plugins(ctx,
		fmt.Sprintf("type==%s,id==%s", plugins.SnapshotPlugin, s.opts.Snapshotter))
	if err != nil {
		return "", fmt.Errorf("find snapshotter %s: %w", s.opts.Snapshotter, err)
	}
	for _, p := range resp.Plugins {
		if root := p.Exports["root"]; root != "" {
			return root, nil
		}
	}
	return "", fmt.Errorf("snapshotter %s does not export its root", s.opts.Snapshotter)
}

// diskUsage counts the bytes (allocated blocks) and inodes below root, each hard-linked inode once.
func diskUsage(root string) (FsUsage, error) {
	u := FsUsage{Mountpoint: root}
	seen := map[uint64]bool{}
	err := filepath.WalkDir(root, func(path string, d fs.DirEntry, err error) error {
		if err != nil {
			if os.IsNotExist(err) {
				return nil // removed while walking
			}
			return err
		}
		info, err := d.Info()
		if err != nil {
			return nil
		}
		st, ok := info.Sys().(*syscall.Stat_t)
		if !ok || seen[st.Ino] {
			return nil
		}
		seen[st.Ino] = true
		u.Inodes++
		u.Bytes += uint64(st.Blocks) * 512
		return nil
	})
	u.Timestamp = time.Now()
	return u, err
}
