package master

import (
	"context"
	"errors"
	"fmt"
	"sort"
	"time"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/proto"

	"github.com/brine-cm/brine/pkg/event"
	"github.com/brine-cm/brine/pkg/wire"
	pb "github.com/brine-cm/brine/proto/brinev1"
)

// controlServer serves brinectl. Whoever can open the socket (mode 0600,
// the master's user) is an operator: there is no second authentication.
type controlServer struct {
	pb.UnimplementedControlServer
	m *Master
}

func (s *controlServer) Publish(req *pb.PublishRequest, stream pb.Control_PublishServer) error {
	spec := PublishSpec{
		Target: req.GetTarget(), TgtType: req.GetTgtType(), Fun: req.GetFun(),
		Args: wire.Args(req.GetArgs()), Kwargs: wire.Map(req.GetKwargs()),
		Timeout: time.Duration(req.GetTimeoutMs()) * time.Millisecond, User: req.GetUser(),
		BatchReturns: req.GetBatchReturns(),
	}
	var sendErr error
	_, err := s.m.Publish(stream.Context(), spec, func(ev *pb.PublishEvent) {
		if sendErr == nil {
			sendErr = stream.Send(ev)
		}
	})
	var it *InvalidTargetError
	if errors.As(err, &it) {
		return status.Error(codes.InvalidArgument, it.Error())
	}
	if err != nil {
		return status.Error(codes.Internal, err.Error())
	}
	return sendErr
}

func (s *controlServer) Runner(ctx context.Context, req *pb.RunnerRequest) (*pb.RunnerReply, error) {
	fn, ok := s.m.runners[req.GetFun()]
	if !ok {
		return nil, status.Errorf(codes.NotFound, "runner function %q is not available (try: %v)", req.GetFun(), s.m.runnerNames())
	}
	ret, err := fn(ctx, wire.Args(req.GetArgs()), wire.Map(req.GetKwargs()))
	if err != nil {
		var it *InvalidTargetError
		if errors.As(err, &it) {
			return nil, status.Error(codes.InvalidArgument, err.Error())
		}
		var ae *argError
		if errors.As(err, &ae) {
			return nil, status.Error(codes.InvalidArgument, err.Error())
		}
		return nil, status.Error(codes.FailedPrecondition, err.Error())
	}
	v, err := wire.Value(ret)
	if err != nil {
		return nil, status.Errorf(codes.Internal, "%s: %v", req.GetFun(), err)
	}
	return &pb.RunnerReply{Ret: v}, nil
}

func (s *controlServer) Events(req *pb.EventsRequest, stream pb.Control_EventsServer) error {
	sub := s.m.bus.Subscribe(req.GetTagGlob(), 4096)
	defer sub.Close()
	for {
		select {
		case <-stream.Context().Done():
			return nil
		case ev, ok := <-sub.C:
			if !ok {
				return nil
			}
			pe, err := wireEvent(ev)
			if err != nil {
				continue
			}
			if err := stream.Send(pe); err != nil {
				return err
			}
		}
	}
}

// Bounds of one EventBatch: within the flow-control window, as
// maxBatchBytes.
const (
	maxBatchEvents     = 1024
	maxBatchEventBytes = 32 << 10
)

// EventBatches sends, in one message, every event queued for the
// subscriber when it is ready to send: under a burst the subscriber's
// buffer is drained a batch at a time instead of an event at a time, so it
// keeps up where Events falls behind and drops.
func (s *controlServer) EventBatches(req *pb.EventsRequest, stream pb.Control_EventBatchesServer) error {
	sub := s.m.bus.Subscribe(req.GetTagGlob(), 4096)
	defer sub.Close()
	for {
		var first event.Event
		select {
		case <-stream.Context().Done():
			return nil
		case ev, ok := <-sub.C:
			if !ok {
				return nil
			}
			first = ev
		}
		batch := &pb.EventBatch{}
		size := 0
		var sendErr error
		send := func() {
			if len(batch.Events) > 0 && sendErr == nil {
				sendErr = stream.Send(batch)
			}
			batch, size = &pb.EventBatch{}, 0
		}
		// add sends the batch first when ev would take it past its
		// bounds: a large event travels alone, as it does on Events.
		add := func(ev event.Event) {
			pe, err := wireEvent(ev)
			if err != nil {
				return
			}
			n := proto.Size(pe)
			if len(batch.Events) > 0 && (len(batch.Events) >= maxBatchEvents || size+n > maxBatchEventBytes) {
				send()
			}
			batch.Events = append(batch.Events, pe)
			size += n
		}
		add(first)
		// Everything already queued goes now; nothing waits for more.
		// The loop stops at the queue's length when it started, so a
		// burst that outpaces the sends still lets each batch go out.
	drain:
		for range len(sub.C) {
			select {
			case ev, ok := <-sub.C:
				if !ok {
					break drain
				}
				add(ev)
			default:
				break drain
			}
		}
		send()
		if sendErr != nil {
			return sendErr
		}
	}
}

func wireEvent(ev event.Event) (*pb.Event, error) {
	data, err := wire.Struct(ev.Data)
	if err != nil {
		return nil, err
	}
	return &pb.Event{Tag: ev.Tag, Data: data, TimeUnixNano: ev.Time.UnixNano()}, nil
}

func (m *Master) runnerNames() []string {
	var names []string
	for n := range m.runners {
		names = append(names, n)
	}
	sort.Strings(names)
	return names
}

// argError is a bad argument to a runner function.
type argError struct{ msg string }

func (e *argError) Error() string { return e.msg }

func badArg(format string, a ...any) error { return &argError{fmt.Sprintf(format, a...)} }

// argString returns positional argument i (or kwargs[name]) as a string.
func argString(args []any, kwargs map[string]any, i int, name string, required bool) (string, error) {
	var v any
	if i < len(args) {
		v = args[i]
	} else if kv, ok := kwargs[name]; ok {
		v = kv
	}
	if v == nil {
		if required {
			return "", badArg("missing argument %q", name)
		}
		return "", nil
	}
	switch x := v.(type) {
	case string:
		return x, nil
	case float64, bool, int:
		return fmt.Sprint(x), nil
	}
	return "", badArg("argument %q must be a string", name)
}

func tgtTypeArg(kwargs map[string]any) string {
	for _, k := range []string{"tgt_type", "expr_form"} {
		if s, ok := kwargs[k].(string); ok && s != "" {
			return s
		}
	}
	return "glob"
}
