package e2e

import (
	"context"
	"fmt"
	"io"
	"testing"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/types/dynamicpb"
	runtimeapi "k8s.io/cri-api/pkg/apis/runtime/v1"

	"github.com/berth-runtime/berth/test/daemon"
)

// criRPCs is how many RPCs cri-api v0.37.2 has: RuntimeService and ImageService together.
const criRPCs = 43

// Every RPC of the CRI berth builds against answers: an empty request to each, read from the
// API's own descriptor, gets an answer or a reasoned error, never Unimplemented.
func TestEveryRPCAnswers(t *testing.T) {
	d := startDaemon(t)
	conn, err := daemon.Dial(d.Endpoint())
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	services := runtimeapi.File_staging_src_k8s_io_cri_api_pkg_apis_runtime_v1_api_proto.Services()
	n := 0
	for i := 0; i < services.Len(); i++ {
		svc := services.Get(i)
		for j := 0; j < svc.Methods().Len(); j++ {
			m := svc.Methods().Get(j)
			n++
			method := fmt.Sprintf("/%s/%s", svc.FullName(), m.Name())
			c, cancel := context.WithTimeout(context.Background(), 2*time.Second)
			req, resp := dynamicpb.NewMessage(m.Input()), dynamicpb.NewMessage(m.Output())
			if m.IsStreamingServer() || m.IsStreamingClient() {
				var s grpc.ClientStream
				if s, err = conn.NewStream(c, &grpc.StreamDesc{ServerStreams: m.IsStreamingServer(), ClientStreams: m.IsStreamingClient()}, method); err == nil {
					if err = s.SendMsg(req); err == nil {
						s.CloseSend()
						if err = s.RecvMsg(resp); err == io.EOF {
							err = nil
						}
					}
				}
			} else {
				err = conn.Invoke(c, method, req, resp)
			}
			cancel()
			if status.Code(err) == codes.Unimplemented {
				t.Errorf("%s: %v", method, err)
			} else {
				t.Logf("%s: %v", m.Name(), status.Code(err))
			}
		}
	}
	if n != criRPCs {
		t.Errorf("the CRI has %d RPCs, want %d: check what is new", n, criRPCs)
	}
}
