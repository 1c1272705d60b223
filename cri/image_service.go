package cri

import (
	"context"
	"encoding/json"
	"fmt"

	"github.com/containerd/errdefs"
	runtimeapi "k8s.io/cri-api/pkg/apis/runtime/v1"

	"github.com/berth-runtime/berth/image"
)

// Images is what the ImageService needs from image/.
type Images interface {
	Pull(ctx context.Context, ref string, auth *image.Auth) (string, error)
	List(ctx context.Context, filter string) ([]*image.Image, error)
	Get(ctx context.Context, ref string) (*image.Image, error)
	Remove(ctx context.Context, ref string) error
	FsInfo(ctx context.Context) (image.FsUsage, error)
}

// ImageService implements the CRI ImageService.
type ImageService struct {
	runtimeapi.UnimplementedImageServiceServer
	images Images
}

// NewImageService returns the ImageService over images.
func NewImageService(images Images) *ImageService { return &ImageService{images: images} }

// PullImage pulls an image and returns its id.
func (s *ImageService) PullImage(ctx context.Context, req *runtimeapi.PullImageRequest) (*runtimeapi.PullImageResponse, error) {
	ref := req.GetImage().GetImage()
	if ref == "" {
		return nil, invalid("image.image: the image to pull is empty")
	}
	var auth *image.Auth
	if a := req.GetAuth(); a != nil {
		auth = &image.Auth{Username: a.Username, Password: a.Password, Auth: a.Auth,
			IdentityToken: a.IdentityToken, RegistryToken: a.RegistryToken, ServerAddress: a.ServerAddress}
	}
	id, err := s.images.Pull(ctx, ref, auth)
	if err != nil {
		return nil, toStatus(err)
	}
	return &runtimeapi.PullImageResponse{ImageRef: id}, nil
}

// ListImages lists images, all or the one the filter names.
func (s *ImageService) ListImages(ctx context.Context, req *runtimeapi.ListImagesRequest) (*runtimeapi.ListImagesResponse, error) {
	imgs, err := s.images.List(ctx, req.GetFilter().GetImage().GetImage())
	if err != nil {
		return nil, toStatus(err)
	}
	resp := &runtimeapi.ListImagesResponse{Images: make([]*runtimeapi.Image, 0, len(imgs))}
	for _, img := range imgs {
		resp.Images = append(resp.Images, toCRIImage(img))
	}
	return resp, nil
}

// ImageStatus describes one image. Per the CRI (api.proto), an image that is not there is an
// empty answer, not an error.
func (s *ImageService) ImageStatus(ctx context.Context, req *runtimeapi.ImageStatusRequest) (*runtimeapi.ImageStatusResponse, error) {
	ref := req.GetImage().GetImage()
	if ref == "" {
		return nil, invalid("image.image: the image to describe is empty")
	}
	img, err := s.images.Get(ctx, ref)
	if errdefs.IsNotFound(err) {
		return &runtimeapi.ImageStatusResponse{}, nil
	}
	if err != nil {
		return nil, toStatus(err)
	}
	resp := &runtimeapi.ImageStatusResponse{Image: toCRIImage(img)}
	if req.GetVerbose() {
		info, err := json.Marshal(map[string]any{"imageSpec": img.Config, "id": img.ID})
		if err != nil {
			return nil, toStatus(err)
		}
		resp.Info = map[string]string{"info": string(info)}
	}
	return resp, nil
}

// RemoveImage removes an image or one of its tags. Per the CRI (api.proto) it is idempotent: an
// image that is not there is not an error.
func (s *ImageService) RemoveImage(ctx context.Context, req *runtimeapi.RemoveImageRequest) (*runtimeapi.RemoveImageResponse, error) {
	ref := req.GetImage().GetImage()
	if ref == "" {
		return nil, invalid("image.image: the image to remove is empty")
	}
	if err := s.images.Remove(ctx, ref); err != nil {
		return nil, toStatus(err)
	}
	return &runtimeapi.RemoveImageResponse{}, nil
}

// ImageFsInfo reports the space used by images, and by containers' writable layers, which live
// on the same snapshotter.
func (s *ImageService) ImageFsInfo(ctx context.Context, _ *runtimeapi.ImageFsInfoRequest) (*runtimeapi.ImageFsInfoResponse, error) {
	u, err := s.images.FsInfo(ctx)
	if err != nil {
		return nil, toStatus(err)
	}
	fs := &runtimeapi.FilesystemUsage{
		Timestamp:  u.Timestamp.UnixNano(),
		FsId:       &runtimeapi.FilesystemIdentifier{Mountpoint: u.Mountpoint},
		UsedBytes:  &runtimeapi.UInt64Value{Value: u.Bytes},
		InodesUsed: &runtimeapi.UInt64Value{Value: u.Inodes},
	}
	return &runtimeapi.ImageFsInfoResponse{
		ImageFilesystems:     []*runtimeapi.FilesystemUsage{fs},
		ContainerFilesystems: []*runtimeapi.FilesystemUsage{fs},
	}, nil
}

func toCRIImage(img *image.Image) *runtimeapi.Image {
	out := &runtimeapi.Image{
		Id:          img.ID.String(),
		RepoTags:    img.RepoTags,
		RepoDigests: img.RepoDigests,
		Size:        img.Size,
		Pinned:      img.Pinned,
		Spec:        &runtimeapi.ImageSpec{Image: img.ID.String()},
	}
	uid, username := image.UserOf(img.Config.Config.User)
	if uid != nil {
		out.Uid = &runtimeapi.Int64Value{Value: *uid}
	}
	out.Username = username
	return out
}

// invalid is an InvalidArgument error; msg names the field.
func invalid(format string, args ...any) error {
	return toStatus(fmt.Errorf(format+": %w", append(args, errdefs.ErrInvalidArgument)...))
}

// unavailable is an Unavailable error.
func unavailable(format string, args ...any) error {
	return toStatus(fmt.Errorf(format+": %w", append(args, errdefs.ErrUnavailable)...))
}

// failedPrecondition is a FailedPrecondition error; msg names the object and its state.
func failedPrecondition(format string, args ...any) error {
	return toStatus(fmt.Errorf(format+": %w", append(args, errdefs.ErrFailedPrecondition)...))
}
