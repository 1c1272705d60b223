package cri

import (
	"context"
	"fmt"
	"strings"
	"testing"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/proto"
	runtimeapi "k8s.io/cri-api/pkg/apis/runtime/v1"
)

func containersOfSize(sizes ...int) []*runtimeapi.Container {
	var out []*runtimeapi.Container
	for i, n := range sizes {
		out = append(out, &runtimeapi.Container{Id: fmt.Sprintf("c%d", i), Image: &runtimeapi.ImageSpec{Image: strings.Repeat("x", n)}})
	}
	return out
}

func TestSendChunks(t *testing.T) {
	defer func(old int) { chunkBytes = old }(chunkBytes)
	chunkBytes = 1000
	tests := []struct {
		desc       string
		items      []*runtimeapi.Container
		wantChunks int
	}{
		{desc: "nothing: no message", wantChunks: 0},
		{desc: "one small item", items: containersOfSize(10), wantChunks: 1},
		{desc: "many small items fit one message", items: containersOfSize(100, 100, 100, 100), wantChunks: 1},
		{desc: "items split across messages", items: containersOfSize(400, 400, 400, 400, 400), wantChunks: 3},
		{desc: "an item larger than a message goes alone", items: containersOfSize(10, 5000, 10), wantChunks: 3},
	}
	for _, test := range tests {
		t.Run(test.desc, func(t *testing.T) {
			var chunks [][]*runtimeapi.Container
			err := sendChunks(context.Background(), test.items, func(c []*runtimeapi.Container) error {
				chunks = append(chunks, c)
				return nil
			})
			if err != nil {
				t.Fatal(err)
			}
			if len(chunks) != test.wantChunks {
				t.Errorf("%d messages, want %d", len(chunks), test.wantChunks)
			}
			var got []string
			for _, c := range chunks {
				size := 0
				for _, item := range c {
					size += proto.Size(item)
					got = append(got, item.Id)
				}
				if len(c) == 0 {
					t.Error("an empty message was sent")
				}
				if len(c) > 1 && size > chunkBytes {
					t.Errorf("a message of %d items holds %d bytes, over %d", len(c), size, chunkBytes)
				}
			}
			var want []string
			for _, item := range test.items {
				want = append(want, item.Id)
			}
			if strings.Join(got, ",") != strings.Join(want, ",") {
				t.Errorf("items sent %v, want each once in order %v", got, want)
			}
		})
	}
}

func TestSendChunksStopsWhenTheContextEnds(t *testing.T) {
	defer func(old int) { chunkBytes = old }(chunkBytes)
	chunkBytes = 100
	ctx, cancel := context.WithCancel(context.Background())
	sent := 0
	err := sendChunks(ctx, containersOfSize(90, 90, 90, 90), func([]*runtimeapi.Container) error {
		sent++
		cancel()
		return nil
	})
	if sent != 1 || status.Code(err) != codes.Canceled {
		t.Errorf("after the context ended: %d messages sent, error %v; want 1 and Canceled", sent, err)
	}
}
