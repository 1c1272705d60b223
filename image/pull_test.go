package image

import (
	"context"
	"errors"
	"sync/atomic"
	"testing"

	"github.com/containerd/containerd/v2/core/transfer"
	"github.com/containerd/errdefs"
	ocispec "github.com/opencontainers/image-spec/specs-go/v1"
)

func TestPullProgress(t *testing.T) {
	layer := &ocispec.Descriptor{MediaType: ocispec.MediaTypeImageLayerGzip, Size: 100}
	config := &ocispec.Descriptor{MediaType: ocispec.MediaTypeImageConfig, Size: 10}
	tests := []struct {
		name               string
		events             []transfer.Progress
		received, existing int64
		layers             int
	}{
		{"nothing", nil, 0, 0, 0},
		{"a layer fetched in steps", []transfer.Progress{
			{Event: "waiting", Name: "l1", Total: 100, Desc: layer},
			{Event: "downloading", Name: "l1", Progress: 40, Total: 100, Desc: layer},
			{Event: "downloading", Name: "l1", Progress: 90, Total: 100, Desc: layer},
			{Event: "complete", Name: "l1", Progress: 100, Total: 100, Desc: layer},
		}, 100, 0, 1},
		{"extraction is not fetching", []transfer.Progress{
			{Event: "complete", Name: "l1", Progress: 100, Total: 100, Desc: layer},
			{Event: "extracting", Name: "l1", Progress: 50, Total: 100, Desc: layer},
			{Event: "extracted", Name: "l1", Progress: 100, Total: 100, Desc: layer},
		}, 100, 0, 1},
		{"a layer the node has", []transfer.Progress{
			{Event: "already exists", Name: "l1", Progress: 100, Total: 100, Desc: layer},
			{Event: "complete", Name: "c", Progress: 10, Total: 10, Desc: config},
		}, 10, 100, 1},
		{"progress never goes back", []transfer.Progress{
			{Event: "downloading", Name: "l1", Progress: 60, Total: 100, Desc: layer},
			{Event: "downloading", Name: "l1", Progress: 30, Total: 100, Desc: layer},
			{Event: "downloading", Name: "l2", Progress: 5, Total: 100, Desc: layer},
		}, 65, 0, 2},
	}
	for _, test := range tests {
		t.Run(test.name, func(t *testing.T) {
			var p pullProgress
			var received atomic.Int64
			for _, ev := range test.events {
				p.update(ev, &received)
			}
			if received.Load() != test.received || p.existingBytes() != test.existing || p.layerCount() != test.layers {
				t.Errorf("received %d, existing %d, layers %d; want %d, %d, %d",
					received.Load(), p.existingBytes(), p.layerCount(), test.received, test.existing, test.layers)
			}
		})
	}
}

// The transfer service's errors reach berth through gRPC as text: their kind is read from it.
func TestPullErrorFromTheTransferService(t *testing.T) {
	s := &Service{}
	named, err := Normalize("registry.example/app:1")
	if err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		err  error
		kind error
	}{
		{errors.New(`failed to resolve image: failed to do request: Head "https://registry.example/v2/app/manifests/1": dial tcp 127.0.0.1:1: connect: connection refused`), errdefs.ErrUnavailable},
		{errors.New(`failed to do request: Head "https://registry.example/v2/": dial tcp: lookup registry.example: no such host`), errdefs.ErrUnavailable},
		{errors.New(`failed to resolve image: pull access denied, repository does not exist or may require authorization: server message: insufficient_scope: authorization failed`), errdefs.ErrPermissionDenied},
		{errors.New(`unexpected status from GET request to https://registry.example/v2/app/manifests/1: 401 Unauthorized`), errdefs.ErrPermissionDenied},
		{errors.New(`unexpected status from GET request: 403 Forbidden`), errdefs.ErrPermissionDenied},
		{errdefs.ErrNotFound, errdefs.ErrNotFound},
	}
	for _, test := range tests {
		got := s.pullError(named.String(), named, context.Background(), test.err)
		if !errors.Is(got, test.kind) {
			t.Errorf("pullError(%q) = %v; want %v", test.err, got, test.kind)
		}
	}
}
