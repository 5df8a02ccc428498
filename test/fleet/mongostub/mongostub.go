// Package mongostub is the smallest mongod the fleet story needs: a
// replica-set member started with --replSet that was never initiated.
// It speaks MongoDB's wire protocol (OP_QUERY for the driver's legacy
// first handshake, OP_MSG for everything else) and knows a few commands:
// hello/isMaster, ping, replSetGetConfig (NotYetInitialized, code 94,
// until initiated), replSetInitiate and replSetReconfig (remember the
// config) and endSessions. Anything else gets CommandNotFound.
//
// MongoDB is not packaged for Debian, so the story's db hosts run this
// instead; the mongodb.replset state still goes through the official
// driver over a real TCP socket, and the stub records what it was sent.
package mongostub

import (
	"bufio"
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"net"
	"sync"
	"time"

	"go.mongodb.org/mongo-driver/v2/bson"
)

const (
	opReply = 1
	opQuery = 2004
	opMsg   = 2013

	codeNotYetInitialized = 94
	codeCommandNotFound   = 59
	maxMessage            = 48_000_000
)

// Server is one stub mongod.
type Server struct {
	// OnConfig, when set, is called with each config a replSetInitiate or
	// replSetReconfig installs.
	OnConfig func(bson.Raw)

	mu       sync.Mutex
	config   bson.Raw // nil until replSetInitiate
	commands []string
	reqID    int32
	connID   int32
}

// Commands lists the command names received, in order.
func (s *Server) Commands() []string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return append([]string(nil), s.commands...)
}

// Config is the document replSetInitiate sent, nil before.
func (s *Server) Config() bson.Raw {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.config
}

// Serve answers connections from l until ctx ends.
func (s *Server) Serve(ctx context.Context, l net.Listener) error {
	go func() { <-ctx.Done(); l.Close() }()
	for {
		c, err := l.Accept()
		if err != nil {
			if ctx.Err() != nil {
				return nil
			}
			return fmt.Errorf("mongostub accept: %w", err)
		}
		go s.conn(ctx, c)
	}
}

func (s *Server) conn(ctx context.Context, c net.Conn) {
	defer c.Close()
	s.mu.Lock()
	s.connID++
	id := s.connID
	s.mu.Unlock()
	r := bufio.NewReader(c)
	for ctx.Err() == nil {
		c.SetReadDeadline(time.Now().Add(2 * time.Minute))
		var hdr [16]byte
		if _, err := io.ReadFull(r, hdr[:]); err != nil {
			return
		}
		n := int32(binary.LittleEndian.Uint32(hdr[0:]))
		reqID := int32(binary.LittleEndian.Uint32(hdr[4:]))
		op := int32(binary.LittleEndian.Uint32(hdr[12:]))
		if n < 16 || n > maxMessage {
			return
		}
		body := make([]byte, n-16)
		if _, err := io.ReadFull(r, body); err != nil {
			return
		}
		var reply []byte
		var err error
		switch op {
		case opQuery:
			reply, err = s.query(body, reqID, id)
		case opMsg:
			reply, err = s.msg(body, reqID, id)
		default:
			err = fmt.Errorf("opcode %d", op)
		}
		if err != nil {
			return
		}
		if _, err := c.Write(reply); err != nil {
			return
		}
	}
}

// query handles OP_QUERY: flags, collection cstring, skip, return, doc.
func (s *Server) query(body []byte, reqID, connID int32) ([]byte, error) {
	if len(body) < 4 {
		return nil, errors.New("short OP_QUERY")
	}
	rest := body[4:]
	i := 0
	for i < len(rest) && rest[i] != 0 {
		i++
	}
	if i+9 > len(rest) {
		return nil, errors.New("short OP_QUERY")
	}
	doc := bson.Raw(rest[i+9:])
	if err := doc.Validate(); err != nil {
		return nil, err
	}
	out := s.command(doc, connID)
	// OP_REPLY: flags, cursorID, startingFrom, numberReturned, docs.
	b := make([]byte, 20)
	binary.LittleEndian.PutUint32(b[16:], 1)
	return s.frame(opReply, reqID, append(b, out...)), nil
}

// msg handles OP_MSG: flags, then sections; kind 0 is the command body,
// kind 1 document sequences are folded into it as arrays.
func (s *Server) msg(body []byte, reqID, connID int32) ([]byte, error) {
	if len(body) < 5 {
		return nil, errors.New("short OP_MSG")
	}
	flags := binary.LittleEndian.Uint32(body)
	end := len(body)
	if flags&1 != 0 { // checksumPresent
		end -= 4
	}
	if end < 4 {
		return nil, errors.New("short OP_MSG")
	}
	var cmd bson.Raw
	for p := 4; p < end; {
		kind := body[p]
		p++
		if p+4 > end {
			return nil, errors.New("bad OP_MSG section")
		}
		size := int(binary.LittleEndian.Uint32(body[p:]))
		if size < 5 || p+size > end {
			return nil, errors.New("bad OP_MSG section")
		}
		if kind == 0 {
			cmd = bson.Raw(body[p : p+size])
		}
		p += size
	}
	if cmd == nil {
		return nil, errors.New("OP_MSG without a body section")
	}
	if err := cmd.Validate(); err != nil {
		return nil, err
	}
	out := s.command(cmd, connID)
	return s.frame(opMsg, reqID, append([]byte{0, 0, 0, 0, 0}, out...)), nil
}

func (s *Server) frame(op int32, responseTo int32, payload []byte) []byte {
	s.mu.Lock()
	s.reqID++
	id := s.reqID
	s.mu.Unlock()
	b := make([]byte, 16, 16+len(payload))
	binary.LittleEndian.PutUint32(b[0:], uint32(16+len(payload)))
	binary.LittleEndian.PutUint32(b[4:], uint32(id))
	binary.LittleEndian.PutUint32(b[8:], uint32(responseTo))
	binary.LittleEndian.PutUint32(b[12:], uint32(op))
	return append(b, payload...)
}

func (s *Server) command(doc bson.Raw, connID int32) []byte {
	els, err := doc.Elements()
	if err != nil || len(els) == 0 {
		return mustMarshal(bson.D{{Key: "ok", Value: 0.0}, {Key: "errmsg", Value: "empty command"}})
	}
	name := els[0].Key()
	s.mu.Lock()
	s.commands = append(s.commands, name)
	cfg := s.config
	s.mu.Unlock()
	ok := func(extra ...bson.E) []byte {
		return mustMarshal(append(bson.D(extra), bson.E{Key: "ok", Value: 1.0}))
	}
	fail := func(code int32, codeName, msg string) []byte {
		return mustMarshal(bson.D{{Key: "ok", Value: 0.0}, {Key: "errmsg", Value: msg},
			{Key: "code", Value: code}, {Key: "codeName", Value: codeName}})
	}
	switch name {
	case "hello", "isMaster", "ismaster":
		return ok(
			bson.E{Key: "helloOk", Value: true},
			bson.E{Key: "ismaster", Value: true},
			bson.E{Key: "isWritablePrimary", Value: true},
			bson.E{Key: "maxBsonObjectSize", Value: int32(16 * 1024 * 1024)},
			bson.E{Key: "maxMessageSizeBytes", Value: int32(maxMessage)},
			bson.E{Key: "maxWriteBatchSize", Value: int32(100000)},
			bson.E{Key: "localTime", Value: bson.NewDateTimeFromTime(time.Now())},
			bson.E{Key: "connectionId", Value: connID},
			bson.E{Key: "minWireVersion", Value: int32(0)},
			bson.E{Key: "maxWireVersion", Value: int32(17)},
		)
	case "ping", "endSessions":
		return ok()
	case "replSetGetConfig":
		if cfg == nil {
			return fail(codeNotYetInitialized, "NotYetInitialized", "no replset config has been received")
		}
		return ok(bson.E{Key: "config", Value: cfg})
	case "replSetInitiate":
		v, err := doc.LookupErr("replSetInitiate")
		d, isDoc := v.DocumentOK()
		if err != nil || !isDoc {
			return fail(14, "TypeMismatch", "replSetInitiate wants a config document")
		}
		if cfg != nil {
			return fail(23, "AlreadyInitialized", "already initialized")
		}
		s.install(d)
		return ok()
	case "replSetReconfig":
		v, err := doc.LookupErr("replSetReconfig")
		d, isDoc := v.DocumentOK()
		if err != nil || !isDoc {
			return fail(14, "TypeMismatch", "replSetReconfig wants a config document")
		}
		if cfg == nil {
			return fail(codeNotYetInitialized, "NotYetInitialized", "no replset config has been received")
		}
		s.install(d)
		return ok()
	}
	return fail(codeCommandNotFound, "CommandNotFound", fmt.Sprintf("no such command: '%s'", name))
}

func (s *Server) install(d bson.Raw) {
	s.mu.Lock()
	s.config = append(bson.Raw(nil), d...)
	f := s.OnConfig
	s.mu.Unlock()
	if f != nil {
		f(d)
	}
}

func mustMarshal(d bson.D) []byte {
	b, err := bson.Marshal(d)
	if err != nil {
		panic(err) // only fixed shapes are marshalled
	}
	return b
}
