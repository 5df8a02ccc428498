package ctl

import (
	"context"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/brine-cm/brine/proto/brinev1"
)

// PublishStream reads a job's progress one event at a time. It asks the
// master for batched returns (one gRPC message for all the returns that
// arrived together) and hands them out singly, so callers see the same
// Started, Ret..., Done sequence as from a master that does not batch.
type PublishStream struct {
	stream  brinev1.Control_PublishClient
	pending []*brinev1.Return
}

// Publish starts req's job with batched returns requested (it sets
// req.BatchReturns). An older master ignores that and sends one return a
// message; Recv reads both.
func (c *Client) Publish(ctx context.Context, req *brinev1.PublishRequest) (*PublishStream, error) {
	req.BatchReturns = true
	stream, err := c.Control.Publish(ctx, req)
	if err != nil {
		return nil, err
	}
	return &PublishStream{stream: stream}, nil
}

// Recv returns the next event; a batch of returns comes out as one
// PublishEvent_Ret per return, in arrival order.
func (s *PublishStream) Recv() (*brinev1.PublishEvent, error) {
	for {
		if len(s.pending) > 0 {
			r := s.pending[0]
			s.pending[0] = nil
			s.pending = s.pending[1:]
			return &brinev1.PublishEvent{Ev: &brinev1.PublishEvent_Ret{Ret: r}}, nil
		}
		ev, err := s.stream.Recv()
		if err != nil {
			return nil, err
		}
		b, ok := ev.Ev.(*brinev1.PublishEvent_Rets)
		if !ok {
			return ev, nil
		}
		s.pending = b.Rets.GetRets()
	}
}

// EventStream reads the master's bus one event at a time, receiving them
// in batches (EventBatches) from a master that supports it and one a
// message (Events) from one that does not.
type EventStream struct {
	ctx     context.Context
	c       *Client
	req     *brinev1.EventsRequest
	batches brinev1.Control_EventBatchesClient
	single  brinev1.Control_EventsClient
	got     bool // an event was received: no fallback after that
	pending []*brinev1.Event
}

// Events subscribes to the bus events whose tag matches glob.
func (c *Client) Events(ctx context.Context, glob string) (*EventStream, error) {
	req := &brinev1.EventsRequest{TagGlob: glob}
	b, err := c.Control.EventBatches(ctx, req)
	if err != nil {
		return nil, err
	}
	return &EventStream{ctx: ctx, c: c, req: req, batches: b}, nil
}

// Recv returns the next event.
func (s *EventStream) Recv() (*brinev1.Event, error) {
	for {
		if len(s.pending) > 0 {
			ev := s.pending[0]
			s.pending[0] = nil
			s.pending = s.pending[1:]
			return ev, nil
		}
		if s.single != nil {
			return s.single.Recv()
		}
		b, err := s.batches.Recv()
		if err != nil {
			// A server-streaming call learns that the method does not
			// exist only at the first Recv: an older master.
			if !s.got && status.Code(err) == codes.Unimplemented {
				single, serr := s.c.Control.Events(s.ctx, s.req)
				if serr != nil {
					return nil, serr
				}
				s.single = single
				continue
			}
			return nil, err
		}
		s.got = true
		s.pending = b.GetEvents()
	}
}
