// Package testhook lets integration tests hold berthd at a named point of an operation, so that
// they can kill it exactly there. It is off unless the environment variable BERTH_TEST_HOLD is
// set (as "point:dir"); then, on reaching that point, berthd creates the file dir/point and
// waits a minute. Otherwise Hold costs a comparison of an empty string.
package testhook

import (
	"os"
	"path/filepath"
	"strings"
	"time"
)

// The points berthd can be held at.
const (
	// CreateAfterSnapshot: CreateContainer has prepared the writable snapshot, not yet
	// recorded the container.
	CreateAfterSnapshot = "create-after-snapshot"
	// CreateImageMounted: CreateContainer has the image's root file system mounted (a
	// temporary mount) to read its users and volumes.
	CreateImageMounted = "create-image-mounted"
	// StartAfterTaskCreate: StartContainer has created the task (runc create), not started it.
	StartAfterTaskCreate = "start-after-task-create"
	// StartAfterTaskStart: the task runs, the start is not recorded yet.
	StartAfterTaskStart = "start-after-task-start"
)

var point, dir, _ = strings.Cut(os.Getenv("BERTH_TEST_HOLD"), ":")

// Hold waits a minute when the environment names p, after saying so with a file.
func Hold(p string) {
	if point == "" || p != point {
		return
	}
	os.WriteFile(filepath.Join(dir, p), nil, 0o644)
	time.Sleep(time.Minute)
}
