package ctl

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"time"

	"github.com/spf13/cobra"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/brine-cm/brine/pkg/output"
	"github.com/brine-cm/brine/proto/brinev1"
)

// eventLine is the JSON shape of one event on stdout.
type eventLine struct {
	Tag  string         `json:"tag"`
	Data map[string]any `json:"data"`
	Time string         `json:"time"`
}

func (a *app) eventsCmd() *cobra.Command {
	var tag string
	cmd := &cobra.Command{
		Use:   "events",
		Short: "Stream the master's event bus, one JSON object per line",
		Long: `Print every event on the master's bus as it happens, one JSON object per
line: {"tag": ..., "data": {...}, "time": "RFC 3339"}. --tag filters with a
glob in which * also matches slashes, like Salt's event matching
(salt/job/*/ret/* for all job returns). Runs until interrupted; Ctrl-C
exits with status 0. With --out yaml each event is a YAML document.`,
		Example: `  brinectl events
  brinectl events --tag 'salt/job/*/ret/*' | jq .data.return`,
		Args: args(cobra.NoArgs),
		RunE: func(cmd *cobra.Command, _ []string) error {
			ctx := cmd.Context()
			c, err := a.dial(ctx)
			if err != nil {
				return err
			}
			defer c.Close()
			stream, err := c.Events(ctx, tag)
			if err != nil {
				return a.eventsErr(c, ctx.Err(), err)
			}
			format := a.format("json")
			for {
				ev, err := stream.Recv()
				if err != nil {
					return a.eventsErr(c, ctx.Err(), err)
				}
				if err := a.writeEvent(format, ev); err != nil {
					return err
				}
			}
		},
	}
	cmd.Flags().StringVar(&tag, "tag", "", "only events whose tag matches this glob")
	return cmd
}

// eventsErr decides how an event stream ended: an interrupt is the normal
// way to stop watching (status 0); the master going away is not.
func (a *app) eventsErr(c *Client, ctxErr, err error) error {
	if ctxErr != nil || status.Code(err) == codes.Canceled {
		return nil
	}
	if errors.Is(err, io.EOF) {
		return failErr(fmt.Errorf("the master at %s closed the event stream", c.Socket))
	}
	return rpcError(c.Socket, "events", err)
}

func (a *app) writeEvent(format string, ev *brinev1.Event) error {
	data := map[string]any{}
	if ev.GetData() != nil {
		data = ev.GetData().AsMap()
	}
	line := eventLine{
		Tag:  ev.GetTag(),
		Data: data,
		Time: time.Unix(0, ev.GetTimeUnixNano()).UTC().Format(time.RFC3339Nano),
	}
	var err error
	switch format {
	case "yaml":
		var buf bytes.Buffer
		buf.WriteString("---\n")
		if err = output.YAML(&buf, map[string]any{"tag": line.Tag, "data": line.Data, "time": line.Time}); err == nil {
			_, err = a.env.Stdout.Write(buf.Bytes())
		}
	default:
		var buf bytes.Buffer
		enc := json.NewEncoder(&buf)
		enc.SetEscapeHTML(false)
		if err = enc.Encode(line); err == nil {
			_, err = a.env.Stdout.Write(buf.Bytes())
		}
	}
	if err != nil {
		return failErr(fmt.Errorf("write event %s: %w", ev.GetTag(), err))
	}
	return nil
}

func (a *app) eventCmd() *cobra.Command {
	cmd := &cobra.Command{Use: "event", Short: "Put events on the master's bus"}
	cmd.AddCommand(&cobra.Command{
		Use:     "fire TAG [JSON]",
		Short:   "Fire an event with a JSON object as data (salt-run event.send)",
		Example: `  brinectl event fire myco/deploy/done '{"app": "shop", "version": "1.4.2"}'`,
		Args:    args(cobra.RangeArgs(1, 2)),
		RunE: func(cmd *cobra.Command, in []string) error {
			data := map[string]any{}
			if len(in) == 2 {
				var err error
				if data, err = ParseEventData(in[1]); err != nil {
					return usageErr("%w", err)
				}
			}
			return a.runner(cmd.Context(), "event.fire", []any{in[0], data}, map[string]any{}, a.printNested)
		},
	})
	return cmd
}

// ParseEventData parses the data of an event to fire: a JSON object.
func ParseEventData(s string) (map[string]any, error) {
	dec := json.NewDecoder(bytes.NewReader([]byte(s)))
	var data map[string]any
	if err := dec.Decode(&data); err != nil {
		return nil, fmt.Errorf("event data must be a JSON object: %w", err)
	}
	if data == nil {
		return nil, fmt.Errorf("event data must be a JSON object, not null")
	}
	if _, err := dec.Token(); !errors.Is(err, io.EOF) {
		return nil, fmt.Errorf("event data must be a single JSON object: trailing text after it")
	}
	return data, nil
}
