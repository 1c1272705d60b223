package cri

import (
	"context"
	"os"
	"strconv"

	"google.golang.org/protobuf/proto"
	runtimeapi "k8s.io/cri-api/pkg/apis/runtime/v1"
)

// The list-streaming RPCs of KEP-5825 (the kubelet's CRIListStreaming gate) send what their List
// twins answer, with the same filters, in several messages instead of one: a node with many pods,
// containers or images no longer meets the kubelet's 16 MiB message limit. Each item is sent
// exactly once; the stream ends when all are sent.

// chunkBytes is the most item bytes one message carries: well under the kubelet's 16 MiB limit,
// and small enough that a reader starts on the first items early. The integration tests lower it
// with BERTH_TEST_LIST_CHUNK_BYTES, to see several messages without thousands of pods.
var chunkBytes = 2 << 20

func init() {
	if n, err := strconv.Atoi(os.Getenv("BERTH_TEST_LIST_CHUNK_BYTES")); err == nil && n > 0 {
		chunkBytes = n
	}
}

// sendChunks sends items in order, in messages of at most chunkBytes of encoded items (one item
// larger than that goes alone), stopping at the first send error or when ctx ends. Every message
// has at least one item, as api.proto asks: no items, no message, and the stream just ends.
func sendChunks[T proto.Message](ctx context.Context, items []T, send func([]T) error) error {
	if len(items) == 0 {
		return nil
	}
	start, size := 0, 0
	for i, item := range items {
		n := proto.Size(item)
		if i > start && size+n > chunkBytes {
			if err := sendChunk(ctx, items[start:i], send); err != nil {
				return err
			}
			start, size = i, 0
		}
		size += n
	}
	return sendChunk(ctx, items[start:], send)
}

func sendChunk[T any](ctx context.Context, chunk []T, send func([]T) error) error {
	if err := ctx.Err(); err != nil {
		return toStatus(err)
	}
	return send(chunk)
}

// StreamPodSandboxes streams ListPodSandbox's answer.
func (s *RuntimeService) StreamPodSandboxes(req *runtimeapi.StreamPodSandboxesRequest, stream runtimeapi.RuntimeService_StreamPodSandboxesServer) error {
	ctx := stream.Context()
	resp, err := s.ListPodSandbox(ctx, &runtimeapi.ListPodSandboxRequest{Filter: req.GetFilter()})
	if err != nil {
		return err
	}
	return sendChunks(ctx, resp.Items, func(c []*runtimeapi.PodSandbox) error {
		return stream.Send(&runtimeapi.StreamPodSandboxesResponse{PodSandboxes: c})
	})
}

// StreamContainers streams ListContainers' answer.
func (s *RuntimeService) StreamContainers(req *runtimeapi.StreamContainersRequest, stream runtimeapi.RuntimeService_StreamContainersServer) error {
	ctx := stream.Context()
	resp, err := s.ListContainers(ctx, &runtimeapi.ListContainersRequest{Filter: req.GetFilter()})
	if err != nil {
		return err
	}
	return sendChunks(ctx, resp.Containers, func(c []*runtimeapi.Container) error {
		return stream.Send(&runtimeapi.StreamContainersResponse{Containers: c})
	})
}

// StreamContainerStats streams ListContainerStats' answer.
func (s *RuntimeService) StreamContainerStats(req *runtimeapi.StreamContainerStatsRequest, stream runtimeapi.RuntimeService_StreamContainerStatsServer) error {
	ctx := stream.Context()
	resp, err := s.ListContainerStats(ctx, &runtimeapi.ListContainerStatsRequest{Filter: req.GetFilter()})
	if err != nil {
		return err
	}
	return sendChunks(ctx, resp.Stats, func(c []*runtimeapi.ContainerStats) error {
		return stream.Send(&runtimeapi.StreamContainerStatsResponse{ContainerStats: c})
	})
}

// StreamPodSandboxStats streams ListPodSandboxStats' answer.
func (s *RuntimeService) StreamPodSandboxStats(req *runtimeapi.StreamPodSandboxStatsRequest, stream runtimeapi.RuntimeService_StreamPodSandboxStatsServer) error {
	ctx := stream.Context()
	resp, err := s.ListPodSandboxStats(ctx, &runtimeapi.ListPodSandboxStatsRequest{Filter: req.GetFilter()})
	if err != nil {
		return err
	}
	return sendChunks(ctx, resp.Stats, func(c []*runtimeapi.PodSandboxStats) error {
		return stream.Send(&runtimeapi.StreamPodSandboxStatsResponse{PodSandboxStats: c})
	})
}

// StreamPodSandboxMetrics streams ListPodSandboxMetrics' answer.
func (s *RuntimeService) StreamPodSandboxMetrics(_ *runtimeapi.StreamPodSandboxMetricsRequest, stream runtimeapi.RuntimeService_StreamPodSandboxMetricsServer) error {
	ctx := stream.Context()
	resp, err := s.ListPodSandboxMetrics(ctx, &runtimeapi.ListPodSandboxMetricsRequest{})
	if err != nil {
		return err
	}
	return sendChunks(ctx, resp.PodMetrics, func(c []*runtimeapi.PodSandboxMetrics) error {
		return stream.Send(&runtimeapi.StreamPodSandboxMetricsResponse{PodSandboxMetrics: c})
	})
}

// StreamImages streams ListImages' answer.
func (s *ImageService) StreamImages(req *runtimeapi.StreamImagesRequest, stream runtimeapi.ImageService_StreamImagesServer) error {
	ctx := stream.Context()
	resp, err := s.ListImages(ctx, &runtimeapi.ListImagesRequest{Filter: req.GetFilter()})
	if err != nil {
		return err
	}
	return sendChunks(ctx, resp.Images, func(c []*runtimeapi.Image) error {
		return stream.Send(&runtimeapi.StreamImagesResponse{Images: c})
	})
}
