package runtime

import (
	"sync"
	"time"

	runtimeapi "k8s.io/cri-api/pkg/apis/runtime/v1"
)

// eventQueue is how many events a subscriber may be behind before it is cut off. A cut-off
// subscriber sees its channel closed: the kubelet then relists, which is better than a stream
// that silently misses events, and no subscriber ever holds the runtime back.
const eventQueue = 1024

// Event is a change in the life of a container or a pod (whose events carry the pod's id as
// the container id, as the kubelet's evented PLEG expects), with the pod and its containers as
// they were right after it.
type Event struct {
	Type        runtimeapi.ContainerEventType
	ContainerID string
	At          time.Time
	Sandbox     SandboxView
	Containers  []ContainerView
}

// eventBus hands events to every subscriber.
type eventBus struct {
	mu   sync.Mutex
	subs map[chan Event]struct{}
}

// Subscribe returns a channel of the events from now on, closed when cancel is called or when
// the subscriber falls too far behind.
func (r *Runtime) Subscribe() (events <-chan Event, cancel func()) {
	ch := make(chan Event, eventQueue)
	b := &r.events
	b.mu.Lock()
	if b.subs == nil {
		b.subs = map[chan Event]struct{}{}
	}
	b.subs[ch] = struct{}{}
	b.mu.Unlock()
	return ch, func() {
		b.mu.Lock()
		defer b.mu.Unlock()
		if _, ok := b.subs[ch]; ok {
			delete(b.subs, ch)
			close(ch)
		}
	}
}

// emit publishes an event about id (a container of sb, or sb itself).
func (r *Runtime) emit(typ runtimeapi.ContainerEventType, id string, sb *Sandbox) {
	b := &r.events
	b.mu.Lock()
	defer b.mu.Unlock()
	if len(b.subs) == 0 {
		return
	}
	ev := Event{Type: typ, ContainerID: id, At: time.Now(), Sandbox: sb.view()}
	for _, c := range r.containers.list(sb.ID) {
		ev.Containers = append(ev.Containers, c.view())
	}
	for ch := range b.subs {
		select {
		case ch <- ev:
		default:
			r.log.Warn("an event subscriber fell behind; closing its stream", "queued", len(ch))
			delete(b.subs, ch)
			close(ch)
		}
	}
}

// emitFor publishes an event about container c, if its pod is still known.
func (r *Runtime) emitFor(typ runtimeapi.ContainerEventType, c *Container) {
	if sb, err := r.sandboxes.get(c.SandboxID); err == nil {
		r.emit(typ, c.ID, sb)
	}
}
