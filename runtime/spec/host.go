package spec

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"

	"github.com/moby/sys/mountinfo"
)

// realHost looks at this node's file system.
type realHost struct{}

func (realHost) Resolve(path string) (string, error) {
	resolved, err := filepath.EvalSymlinks(path)
	if errors.Is(err, os.ErrNotExist) {
		if err := os.MkdirAll(path, 0o755); err != nil {
			return "", err
		}
		resolved, err = filepath.EvalSymlinks(path)
	}
	return resolved, err
}

func (realHost) Propagation(path string) (string, error) {
	mounts, err := mountinfo.GetMounts(nil)
	if err != nil {
		return "", err
	}
	var best *mountinfo.Info
	for _, m := range mounts {
		if (path == m.Mountpoint || strings.HasPrefix(path, strings.TrimSuffix(m.Mountpoint, "/")+"/")) &&
			(best == nil || len(m.Mountpoint) >= len(best.Mountpoint)) {
			best = m
		}
	}
	if best == nil {
		return "", fmt.Errorf("no mount holds %s", path)
	}
	switch {
	case strings.Contains(best.Optional, "shared:"):
		return "shared", nil
	case strings.Contains(best.Optional, "master:"):
		return "slave", nil
	}
	return "private", nil
}
