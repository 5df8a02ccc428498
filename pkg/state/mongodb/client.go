package mongodb

import (
	"context"
	"errors"
	"fmt"
	"time"

	"go.mongodb.org/mongo-driver/v2/bson"
	"go.mongodb.org/mongo-driver/v2/mongo"
	"go.mongodb.org/mongo-driver/v2/mongo/options"
)

// DefaultHost is where mongodb.replset connects unless told otherwise.
const DefaultHost = "localhost:27017"

// ErrNotInitialized is Client.Config's answer for a mongod started with
// --replSet that was never initiated.
var ErrNotInitialized = errors.New("replica set not yet initialized")

// Client is the little of a server the state needs.
type Client interface {
	Config(ctx context.Context) (Config, error)
	Initiate(ctx context.Context, c Config) error
	Reconfig(ctx context.Context, c Config) error
	Close(ctx context.Context) error
}

// DialOptions says where and as whom to connect.
type DialOptions struct {
	Host       string // host:port; default localhost:27017
	User       string
	Password   string
	AuthSource string // default admin
	Timeout    time.Duration
}

// Server error codes the state tells apart.
const (
	codeNotYetInitialized   = 94
	codeNoReplicationEnable = 76
)

type driverClient struct {
	c    *mongo.Client
	host string
}

// Dial connects directly to one mongod with the official driver. The
// password goes through the driver's credential, never into a URI.
func Dial(ctx context.Context, o DialOptions) (Client, error) {
	if o.Host == "" {
		o.Host = DefaultHost
	}
	if o.Timeout == 0 {
		o.Timeout = 5 * time.Second
	}
	opts := options.Client().
		SetHosts([]string{o.Host}).
		SetDirect(true).
		SetServerSelectionTimeout(o.Timeout).
		SetConnectTimeout(o.Timeout)
	if o.User != "" {
		src := o.AuthSource
		if src == "" {
			src = "admin"
		}
		opts.SetAuth(options.Credential{Username: o.User, Password: o.Password, AuthSource: src})
	}
	c, err := mongo.Connect(opts)
	if err != nil {
		return nil, fmt.Errorf("mongodb %s: %w", o.Host, err)
	}
	return &driverClient{c: c, host: o.Host}, nil
}

func (d *driverClient) Close(ctx context.Context) error { return d.c.Disconnect(ctx) }

func (d *driverClient) Config(ctx context.Context) (Config, error) {
	var out bson.M
	err := d.c.Database("admin").RunCommand(ctx, bson.D{{Key: "replSetGetConfig", Value: 1}}).Decode(&out)
	var ce mongo.CommandError
	switch {
	case errors.As(err, &ce) && ce.HasErrorCode(codeNotYetInitialized):
		return nil, ErrNotInitialized
	case errors.As(err, &ce) && ce.HasErrorCode(codeNoReplicationEnable):
		return nil, fmt.Errorf("mongod at %s is not running with --replSet: %w", d.host, err)
	case err != nil:
		return nil, fmt.Errorf("cannot read the replica set config from mongod at %s: %w", d.host, err)
	}
	cfg, ok := plain(out["config"]).(map[string]any)
	if !ok {
		return nil, fmt.Errorf("mongod at %s: replSetGetConfig returned no config document", d.host)
	}
	return cfg, nil
}

func (d *driverClient) Initiate(ctx context.Context, c Config) error {
	err := d.c.Database("admin").RunCommand(ctx, bson.D{{Key: "replSetInitiate", Value: c}}).Err()
	if err != nil {
		return fmt.Errorf("replSetInitiate on %s: %w", d.host, err)
	}
	return nil
}

func (d *driverClient) Reconfig(ctx context.Context, c Config) error {
	err := d.c.Database("admin").RunCommand(ctx, bson.D{{Key: "replSetReconfig", Value: c}}).Err()
	if err != nil {
		return fmt.Errorf("replSetReconfig on %s: %w", d.host, err)
	}
	return nil
}

// plain turns decoded BSON into the plain values Desired works on;
// other driver types (ObjectID, timestamps) pass through so they go back
// to the server unchanged.
func plain(v any) any {
	switch x := v.(type) {
	case bson.M:
		m := make(map[string]any, len(x))
		for k, e := range x {
			m[k] = plain(e)
		}
		return m
	case map[string]any:
		m := make(map[string]any, len(x))
		for k, e := range x {
			m[k] = plain(e)
		}
		return m
	case bson.D:
		m := make(map[string]any, len(x))
		for _, e := range x {
			m[e.Key] = plain(e.Value)
		}
		return m
	case bson.A:
		l := make([]any, len(x))
		for i, e := range x {
			l[i] = plain(e)
		}
		return l
	case []any:
		l := make([]any, len(x))
		for i, e := range x {
			l[i] = plain(e)
		}
		return l
	case int32:
		return int64(x)
	}
	return v
}

// Check reads the current config and reports what would be sent:
// {"initiated": config} or {"members": {old,new}, "version": {old,new},
// "config": config}.
func (s Spec) Check(ctx context.Context, c Client) (map[string]any, string, Config, Action, error) {
	cur, err := c.Config(ctx)
	if errors.Is(err, ErrNotInitialized) {
		cur, err = nil, nil
	}
	if err != nil {
		return nil, "", nil, NoChange, err
	}
	next, act, err := Desired(cur, s)
	if err != nil {
		return nil, "", nil, NoChange, err
	}
	switch act {
	case Initiate:
		return map[string]any{"initiated": next}, fmt.Sprintf("Replica set %s would be initiated with %d members", s.Name, len(s.Members)), next, act, nil
	case Reconfig:
		ch := map[string]any{
			"members": map[string]any{"old": Summary(cur), "new": Summary(next)},
			"version": map[string]any{"old": cur["version"], "new": next["version"]},
			"config":  next,
		}
		return ch, fmt.Sprintf("Replica set %s would be reconfigured", s.Name), next, act, nil
	}
	return nil, fmt.Sprintf("Replica set %s is already configured", s.Name), nil, NoChange, nil
}

// Apply sends what Check computed, re-reading the config first so the
// version bump is against what the server has now.
func (s Spec) Apply(ctx context.Context, c Client) (map[string]any, string, error) {
	ch, comment, next, act, err := s.Check(ctx, c)
	if err != nil || act == NoChange {
		return ch, comment, err
	}
	switch act {
	case Initiate:
		if err := c.Initiate(ctx, next); err != nil {
			return nil, "", err
		}
		return ch, fmt.Sprintf("Replica set %s initiated", s.Name), nil
	default:
		if err := c.Reconfig(ctx, next); err != nil {
			return nil, "", err
		}
		return ch, fmt.Sprintf("Replica set %s reconfigured to version %v", s.Name, next["version"]), nil
	}
}
