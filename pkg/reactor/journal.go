package reactor

import (
	"encoding/binary"
	"errors"
	"fmt"
	"hash/crc32"
	"io"
	"os"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"golang.org/x/sys/unix"
)

// The journal is the spool's write-ahead log: accepted events and the
// marks that they were reacted to are appended to segment files
// (journal/<seq>.log), and delivery ids reacted to to one file per UTC day
// (delivered/<YYYY-MM-DD>.log). Appends made while an fsync runs share the
// next one (group commit), so a burst of concurrent hooks costs one write
// and one fdatasync per batch instead of a file create, an fsync and a
// directory fsync per hook.
//
// A segment is deleted once every event accepted in it, and in every
// older segment, has been reacted to and that is durable: a done mark
// then never refers to an event in a segment that still exists.

const (
	segmentLimit = 16 << 20
	frameHeader  = 8 // payload length, CRC-32C of the payload
	// maxFrame is what a frame's length field holds. A hook's record is
	// bounded by the webhook's max_body_bytes (its body is in it twice,
	// JSON-escaped), far below.
	maxFrame  = 1<<32 - 1
	dayLayout = "2006-01-02"
)

var castagnoli = crc32.MakeTable(crc32.Castagnoli)

// frame appends one length- and checksum-framed record to dst.
func frame(dst, payload []byte) []byte {
	var h [frameHeader]byte
	binary.LittleEndian.PutUint32(h[0:4], uint32(len(payload)))
	binary.LittleEndian.PutUint32(h[4:8], crc32.Checksum(payload, castagnoli))
	return append(append(dst, h[:]...), payload...)
}

// errTorn is a last frame cut short or failing its checksum: the end of
// a write a crash interrupted. errDamaged is a bad frame with more data
// after it: a failed write or a disk that lost data.
var (
	errTorn    = errors.New("torn record at the end")
	errDamaged = errors.New("damaged record")
)

// readFrames returns the payloads of b's frames up to the first bad one.
func readFrames(b []byte) (payloads [][]byte, err error) {
	for len(b) > 0 {
		if len(b) < frameHeader {
			return payloads, errTorn
		}
		n := binary.LittleEndian.Uint32(b[0:4])
		sum := binary.LittleEndian.Uint32(b[4:8])
		if uint64(n) > uint64(len(b)-frameHeader) {
			return payloads, errTorn
		}
		p := b[frameHeader : frameHeader+int(n)]
		if crc32.Checksum(p, castagnoli) != sum {
			if len(b) > frameHeader+int(n) {
				return payloads, errDamaged
			}
			return payloads, errTorn
		}
		payloads = append(payloads, p)
		b = b[frameHeader+int(n):]
	}
	return payloads, nil
}

// commit is one group commit: what was appended while the previous one
// ran. done is closed once it is durable (or failed, err).
type commit struct {
	seq   uint64 // the segment its journal records go to
	recs  []byte
	keys  []byte
	day   string
	dones []uint64 // segments of events this commit marks reacted to
	done  chan struct{}
	err   error
}

type journal struct {
	dir, deliveredDir string
	limit             int64 // segment size that starts a new one

	commits atomic.Uint64 // group commits written, for tests and stats

	mu       sync.Mutex
	next     *commit
	running  bool
	seq      uint64 // segment the next commit writes to
	queued   int64  // bytes written or queued for segment seq
	open     map[uint64]int
	segments []uint64 // existing segment files, ascending
	broken   bool     // the last write failed: start a new segment

	// Only the committer goroutine touches these.
	active    *os.File
	activeSeq uint64
	dayFile   *os.File
	dayName   string
}

func segmentName(seq uint64) string { return fmt.Sprintf("%020d.log", seq) }

// listSegments returns the segment numbers in dir, ascending.
func listSegments(dir string) ([]uint64, error) {
	ents, err := os.ReadDir(dir)
	if err != nil {
		return nil, fmt.Errorf("reactor spool: %w", err)
	}
	var out []uint64
	for _, e := range ents {
		num, ok := strings.CutSuffix(e.Name(), ".log")
		if !ok {
			continue
		}
		seq, err := strconv.ParseUint(num, 10, 64)
		if err != nil {
			continue
		}
		out = append(out, seq)
	}
	sort.Slice(out, func(i, j int) bool { return out[i] < out[j] })
	return out, nil
}

// append queues a journal record (already framed, may be nil) and a
// delivered key (may be ""), marking an event accepted in segment done
// (0: none) reacted to. It returns the commit they belong to; wait on it
// only when the caller needs them durable. accept reports the segment the
// record goes to, counted as holding one more unreacted event.
func (j *journal) append(rec []byte, key string, done uint64, accept bool) (*commit, uint64) {
	j.mu.Lock()
	defer j.mu.Unlock()
	c := j.next
	if c == nil {
		if j.queued >= j.limit || j.broken {
			j.seq++
			j.queued = 0
			j.broken = false
			j.segments = append(j.segments, j.seq)
		}
		c = &commit{seq: j.seq, done: make(chan struct{})}
		j.next = c
	}
	c.recs = append(c.recs, rec...)
	j.queued += int64(len(rec))
	if key != "" {
		c.keys = append(append(c.keys, key...), '\n')
	}
	if done != 0 {
		c.dones = append(c.dones, done)
	}
	if accept {
		j.open[c.seq]++
	}
	if !j.running {
		j.running = true
		go j.run()
	}
	return c, c.seq
}

// forget undoes the count of an accepted record whose commit failed.
func (j *journal) forget(seq uint64) {
	j.mu.Lock()
	j.open[seq]--
	j.mu.Unlock()
}

func (j *journal) run() {
	for {
		j.mu.Lock()
		c := j.next
		j.next = nil
		if c == nil {
			j.running = false
			j.mu.Unlock()
			return
		}
		j.mu.Unlock()
		j.commits.Add(1)
		c.err = j.write(c)
		if c.err != nil {
			j.mu.Lock()
			j.broken = true
			j.mu.Unlock()
		}
		close(c.done)
		if c.err == nil {
			j.release(c)
		}
	}
}

// write makes one commit durable.
func (j *journal) write(c *commit) error {
	var seg, day *os.File
	if len(c.recs) > 0 {
		if j.active == nil || j.activeSeq != c.seq {
			f, err := os.OpenFile(filepath.Join(j.dir, segmentName(c.seq)), os.O_WRONLY|os.O_CREATE|os.O_APPEND, 0o600)
			if err != nil {
				return fmt.Errorf("reactor spool: %w", err)
			}
			// The new file's name must be durable before any record in it
			// is acknowledged.
			if err := syncDir(j.dir); err != nil {
				f.Close()
				return err
			}
			if j.active != nil {
				j.active.Close()
			}
			j.active, j.activeSeq = f, c.seq
		}
		if _, err := j.active.Write(c.recs); err != nil {
			return fmt.Errorf("reactor spool: write %s: %w", j.active.Name(), err)
		}
		seg = j.active
	}
	if len(c.keys) > 0 {
		name := time.Now().UTC().Format(dayLayout) + ".log"
		if j.dayFile == nil || j.dayName != name {
			f, err := os.OpenFile(filepath.Join(j.deliveredDir, name), os.O_WRONLY|os.O_CREATE|os.O_APPEND, 0o600)
			if err != nil {
				return fmt.Errorf("reactor spool: %w", err)
			}
			if err := syncDir(j.deliveredDir); err != nil {
				f.Close()
				return err
			}
			if j.dayFile != nil {
				j.dayFile.Close()
			}
			j.dayFile, j.dayName = f, name
		}
		if _, err := j.dayFile.Write(c.keys); err != nil {
			return fmt.Errorf("reactor spool: write %s: %w", j.dayFile.Name(), err)
		}
		day = j.dayFile
	}
	// Both files' fsyncs at once: the filesystem commits them together.
	var dayErr error
	var wg sync.WaitGroup
	if seg != nil && day != nil {
		wg.Add(1)
		go func() {
			defer wg.Done()
			dayErr = fdatasync(day)
		}()
	} else if day != nil {
		return fdatasync(day)
	}
	var err error
	if seg != nil {
		err = fdatasync(seg)
	}
	wg.Wait()
	return errors.Join(err, dayErr)
}

// release counts the events c marked reacted to and deletes the segments
// left with nothing to react to, oldest first, never the one written to.
func (j *journal) release(c *commit) {
	j.mu.Lock()
	for _, seq := range c.dones {
		j.open[seq]--
	}
	var drop []uint64
	for len(j.segments) > 0 {
		s := j.segments[0]
		if s >= j.seq || j.open[s] > 0 {
			break
		}
		drop = append(drop, s)
		delete(j.open, s)
		j.segments = j.segments[1:]
	}
	j.mu.Unlock()
	if len(drop) == 0 {
		return
	}
	for _, s := range drop {
		os.Remove(filepath.Join(j.dir, segmentName(s)))
	}
	// Not on anyone's path: a removal lost to a crash only means the
	// segment is read again, its events all marked reacted to.
	_ = syncDir(j.dir)
}

// fdatasync skips the inode times fsync would also write: appended
// records (and the file size) are what must survive.
func fdatasync(f *os.File) error {
	if err := unix.Fdatasync(int(f.Fd())); err != nil {
		return fmt.Errorf("reactor spool: fsync %s: %w", f.Name(), err)
	}
	return nil
}

// readAll reads a whole file.
func readAll(p string) ([]byte, error) {
	f, err := os.Open(p)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	return io.ReadAll(f)
}
