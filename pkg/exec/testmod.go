package exec

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/brine-cm/brine/pkg/grains"
)

func registerTest(r *Registry) {
	r.RegisterBound("test.ping", Doc{
		Summary: "Return True: proves the minion is connected and answering.",
		Returns: "bool",
		Example: "brinectl '*' test.ping",
	}, func(context.Context, *Env, *Args) (any, error) { return true, nil })

	r.RegisterBound("test.true", Doc{Summary: "Return True.", Returns: "bool"},
		func(context.Context, *Env, *Args) (any, error) { return true, nil })
	r.RegisterBound("test.false", Doc{Summary: "Return False.", Returns: "bool"},
		func(context.Context, *Env, *Args) (any, error) { return false, nil })

	r.RegisterBound("test.echo", Doc{
		Summary: "Return the value given, unchanged.",
		Args:    []ArgDoc{{Name: "text", Type: Any, Required: true, Doc: "value to return"}},
		Returns: "the value",
		Example: "brinectl '*' test.echo hello",
	}, func(_ context.Context, _ *Env, a *Args) (any, error) { return a.Value("text"), nil })

	r.RegisterBound("test.sleep", Doc{
		Summary: "Sleep for length seconds, then return True. Ends early with an error when the job is cancelled or times out.",
		Args:    []ArgDoc{{Name: "length", Type: Float, Required: true, Doc: "seconds; fractions allowed"}},
		Returns: "bool",
		Example: "brinectl '*' test.sleep 5",
	}, testSleep)

	r.RegisterBound("test.version", Doc{
		Summary: "Return the brine version running on the minion (Salt returns its own version here).",
		Returns: "string",
	}, func(context.Context, *Env, *Args) (any, error) { return grains.Version, nil })

	r.RegisterBound("test.arg", Doc{
		Summary: "Return the arguments received, to check how a command line is parsed. Keywords starting with __ are not shown.",
		Varargs: "args",
		Kwargs:  true,
		Returns: "{args: [...], kwargs: {...}}",
		Example: "brinectl '*' test.arg 1 two three=3",
	}, func(_ context.Context, _ *Env, a *Args) (any, error) {
		args := a.Rest
		if args == nil {
			args = []any{}
		}
		return map[string]any{"args": args, "kwargs": a.RestKw}, nil
	})

	r.RegisterBound("test.retcode", Doc{
		Summary: "Return code and set the job's retcode to it.",
		Args:    []ArgDoc{{Name: "code", Type: Int, Default: 42, Doc: "retcode to report"}},
		Returns: "int",
	}, func(ctx context.Context, _ *Env, a *Args) (any, error) {
		SetRetcode(ctx, a.Int("code"))
		return a.Int("code"), nil
	})

	r.RegisterBound("test.exception", Doc{
		Summary: "Fail with message, to exercise error handling end to end.",
		Args:    []ArgDoc{{Name: "message", Type: Str, Default: "Test Exception", Doc: "error text"}},
	}, func(_ context.Context, _ *Env, a *Args) (any, error) {
		return nil, errors.New(a.Str("message"))
	})
}

func testSleep(ctx context.Context, _ *Env, a *Args) (any, error) {
	secs, _ := a.Float("length")
	if secs < 0 {
		return nil, badArg("test.sleep", "length", "must not be negative, got %v", secs)
	}
	t := time.NewTimer(time.Duration(secs * float64(time.Second)))
	defer t.Stop()
	select {
	case <-t.C:
		return true, nil
	case <-ctx.Done():
		return nil, fmt.Errorf("test.sleep: interrupted: %w", ctx.Err())
	}
}
