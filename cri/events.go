package cri

import (
	runtimeapi "k8s.io/cri-api/pkg/apis/runtime/v1"

	"github.com/berth-runtime/berth/runtime"
)

// Events is the runtime's stream of container and pod events.
type Events interface {
	Subscribe() (events <-chan runtime.Event, cancel func())
}

// GetContainerEvents streams container and pod events (created, started, stopped, deleted),
// each with the pod's status and its containers' statuses, until the client goes away. A client
// too slow to keep up has its stream ended with Unavailable (and relists).
func (s *RuntimeService) GetContainerEvents(_ *runtimeapi.GetEventsRequest, stream runtimeapi.RuntimeService_GetContainerEventsServer) error {
	events, cancel := s.events.Subscribe()
	defer cancel()
	for {
		select {
		case <-stream.Context().Done():
			return nil
		case ev, ok := <-events:
			if !ok {
				return unavailable("the event stream fell too far behind; list again and resubscribe")
			}
			resp := &runtimeapi.ContainerEventResponse{
				ContainerId:        ev.ContainerID,
				ContainerEventType: ev.Type,
				CreatedAt:          ev.At.UnixNano(),
				PodSandboxStatus:   sandboxStatus(ev.Sandbox),
			}
			for _, c := range ev.Containers {
				resp.ContainersStatuses = append(resp.ContainersStatuses, containerStatus(c))
			}
			if err := stream.Send(resp); err != nil {
				return err
			}
		}
	}
}
