package cri

import (
	runtimeapi "k8s.io/cri-api/pkg/apis/runtime/v1"
)

// ImageService implements the CRI ImageService. Until image/ lands, every RPC answers
// codes.Unimplemented naming the method (from the embedded UnimplementedImageServiceServer).
type ImageService struct {
	runtimeapi.UnimplementedImageServiceServer
}

// NewImageService returns the ImageService.
func NewImageService() *ImageService { return &ImageService{} }
