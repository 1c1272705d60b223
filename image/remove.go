package image

import (
	"context"
	"fmt"
	"slices"
	"strconv"

	"github.com/containerd/containerd/v2/core/images"
	"github.com/containerd/errdefs"
)

// Remove removes the image ref names. Removing one tag of an image that has others only untags
// it; removing its last tag, a digest reference or its id removes the image with all its names.
// An image a container still uses is refused with errdefs.ErrFailedPrecondition naming the
// container. An image that is not there is not an error.
func (s *Service) Remove(ctx context.Context, ref string) error {
	img, err := s.Get(ctx, ref)
	if errdefs.IsNotFound(err) {
		return nil
	}
	if err != nil {
		return err
	}
	remove := img.records
	if _, isID := asID(ref); !isID && len(img.RepoTags) > 1 {
		if named, err := Normalize(ref); err == nil && slices.Contains(img.RepoTags, named.String()) {
			remove = []string{named.String()}
		}
	}
	if len(remove) == len(img.records) {
		if user, err := s.usedBy(ctx, img); err != nil {
			return err
		} else if user != "" {
			return fmt.Errorf("image %q (%s) is used by container %s: %w", ref, img.ID, user, errdefs.ErrFailedPrecondition)
		}
	}
	for i, name := range remove {
		var opts []images.DeleteOpt
		if i == len(remove)-1 && len(remove) == len(img.records) {
			// The last name goes: collect its content and snapshots now, so that the space is
			// free (and ImageFsInfo says so) when Remove returns.
			opts = append(opts, images.SynchronousDelete())
		}
		if err := s.client.ImageService().Delete(ctx, name, opts...); err != nil && !errdefs.IsNotFound(err) {
			return fmt.Errorf("remove image %q: %w", name, err)
		}
	}
	return nil
}

// usedBy returns a container that was created from img, or "". containerd filters the records
// (one filter per name, any may match): on a full node the kubelet's image garbage collection
// does not fetch every container's record and spec for each image it removes.
func (s *Service) usedBy(ctx context.Context, img *Image) (string, error) {
	filters := make([]string, len(img.records))
	for i, name := range img.records {
		filters[i] = "image==" + strconv.Quote(name)
	}
	containers, err := s.client.ContainerService().List(ctx, filters...)
	if err != nil {
		return "", fmt.Errorf("list containers: %w", err)
	}
	for _, c := range containers {
		if slices.Contains(img.records, c.Image) {
			if name := c.Labels[ContainerNameLabel]; name != "" {
				return fmt.Sprintf("%q (%s)", name, c.ID), nil
			}
			return c.ID, nil
		}
	}
	return "", nil
}

// ContainerNameLabel is the containerd container label that holds a container's CRI name; the
// runtime sets it, and image removal names the container that holds an image with it.
const ContainerNameLabel = "io.berth.container.name"
