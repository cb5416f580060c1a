package seed

import (
	"bufio"
	"compress/zlib"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"runtime/debug"
	"time"

	"github.com/go-git/go-git/v5/plumbing"
	"github.com/go-git/go-git/v5/plumbing/format/idxfile"
	"github.com/go-git/go-git/v5/plumbing/format/packfile"
	"github.com/go-git/go-git/v5/storage/filesystem"
)

// The clone's pack is indexed here rather than by go-git's packfile.Parser,
// which holds every object it resolves in a buffer of its full size, and
// up to 96 MiB of delta bases in a cache it gives no option to shrink (see
// BENCHMARKS.md). This indexer hashes non-delta objects as they stream in,
// holding none, and resolves each delta tree from its base within the
// budget (see resolve). It writes the same
// pack-<sha>.pack and .idx go-git writes, with go-git's idxfile encoder.

// Object types in a pack's object headers.
const (
	packOFSDelta = 6
	packREFDelta = 7
)

// maxDeltaDepth is git's own ceiling on delta chains.
const maxDeltaDepth = 4095

// packEntry is what the indexer keeps of one object: about 70 bytes, so
// 200,000 objects take 14 MiB.
type packEntry struct {
	offset int64
	size   int64 // the size of its data in the pack (for a delta, of the delta)
	result int64 // the object's size (for a delta, what its header says it builds)
	data   int64 // where its zlib stream starts
	base   int64 // an OFS delta's base offset
	hash   plumbing.Hash
	crc    uint32
	typ    plumbing.ObjectType // the object's type once resolved
	disk   uint8               // its type in the pack (6, 7: deltas)
}

// budgetStorage is go-git's filesystem storage with its packs written and
// indexed by packWriter.
type budgetStorage struct {
	*filesystem.Storage
	budget  budget
	found   func(*tooLarge)
	indexed time.Time // when the last pack was indexed
}

// PackfileWriter replaces go-git's pack writer (and its parser) for the
// clone's pack.
func (s *budgetStorage) PackfileWriter() (io.WriteCloser, error) {
	w, err := newPackWriter(s.Storage, s.budget, s.found)
	if err == nil {
		w.indexed = &s.indexed
	}
	return w, err
}

// packWriter writes the pack as it arrives to a temporary file beside the
// packs, scans its object headers on the way (the budget is checked there,
// before anything is resolved, and the first object over it ends the
// transfer at once) and checksums it, and on Close resolves deltas and
// writes the index.
type packWriter struct {
	st      *filesystem.Storage
	dir     string // objects/pack
	f       *os.File
	behind  writeBehind
	pw      *io.PipeWriter
	done    chan struct{}
	scan    *packScan
	found   func(*tooLarge)
	n       int64
	indexed *time.Time // set when the pack is in place
}

func newPackWriter(st *filesystem.Storage, b budget, found func(*tooLarge)) (*packWriter, error) {
	dir := filepath.Join(st.Filesystem().Root(), "objects", "pack")
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return nil, err
	}
	f, err := os.CreateTemp(dir, "tmp_pack_")
	if err != nil {
		return nil, err
	}
	pr, pw := io.Pipe()
	w := &packWriter{st: st, dir: dir, f: f, behind: writeBehind{fd: int(f.Fd())}, pw: pw, done: make(chan struct{}), scan: &packScan{budget: b}, found: found}
	go func() {
		defer close(w.done)
		w.scan.err = w.scan.run(pr)
		var tl *tooLarge
		if errors.As(w.scan.err, &tl) && found != nil {
			found(tl)
		}
		pr.CloseWithError(w.scan.err)
	}()
	return w, nil
}

func (w *packWriter) Write(p []byte) (int, error) {
	if _, err := w.pw.Write(p); err != nil {
		if errors.Is(err, io.ErrClosedPipe) {
			err = errors.New("pack: data after the checksum")
		}
		return 0, err
	}
	n, err := w.f.Write(p)
	w.n += int64(n)
	if err == nil {
		err = w.behind.wrote(n)
	}
	return n, err
}

// Close finishes the pack: the index is written and the pack moved into
// place only when every object resolved and the checksum matched.
func (w *packWriter) Close() error {
	_ = w.pw.Close()
	<-w.done
	err := w.scan.err
	if err == nil && w.n == 0 {
		err = packfile.ErrEmptyPackfile
	}
	if err == nil {
		err = w.finish()
	}
	if closeErr := w.f.Close(); err == nil {
		err = closeErr
	}
	if err != nil {
		_ = os.Remove(w.f.Name())
		if errors.Is(err, packfile.ErrEmptyPackfile) {
			return nil // as go-git: nothing was sent, nothing to store
		}
		return err
	}
	return nil
}

func (w *packWriter) finish() error {
	s := w.scan
	if err := w.behind.finish(); err != nil {
		return err
	}
	if err := s.resolve(w.f, w.n); err != nil {
		return err
	}
	dropCache(int(w.f.Fd()), 0, w.n) // what resolve read back
	idx := new(idxfile.Writer)
	_ = idx.OnHeader(uint32(len(s.objs)))
	for i := range s.objs {
		o := &s.objs[i]
		_ = idx.OnInflatedObjectContent(o.hash, o.offset, o.crc, nil)
	}
	if err := idx.OnFooter(s.trailer); err != nil {
		return err
	}
	mi, err := idx.Index()
	if err != nil {
		return err
	}
	s.objs = nil
	base := filepath.Join(w.dir, "pack-"+s.trailer.String())
	idxFile, err := os.Create(base + ".idx.tmp")
	if err != nil {
		return err
	}
	_, err = idxfile.NewEncoder(idxFile).Encode(mi) // flushed with the whole clone, before its rename
	if closeErr := idxFile.Close(); err == nil {
		err = closeErr
	}
	if err == nil {
		err = os.Rename(w.f.Name(), base+".pack")
	}
	if err == nil {
		err = os.Rename(base+".idx.tmp", base+".idx")
	}
	if err != nil {
		_ = os.Remove(base + ".idx.tmp")
		return err
	}
	// The walk's buffers go back to the kernel before the checkout fills
	// the page cache: a memory cgroup would count both.
	debug.FreeOSMemory()
	w.st.Reindex() // go-git finds the new pack on its next lookup
	if w.indexed != nil {
		*w.indexed = time.Now()
	}
	return nil
}

// packScan reads a pack as it streams by: its objects' headers, the hash
// of every non-delta object (inflated into the hasher, never held), each
// delta's base and result sizes, each object's CRC-32 and the pack's
// checksum.
type packScan struct {
	budget  budget
	objs    []packEntry
	refs    map[int]plumbing.Hash // REF deltas: their base's hash
	trailer plumbing.Hash
	err     error
	// peakHeld is the most content resolve's walk held at once (its
	// tests check it against the budget).
	peakHeld int64
}

func (s *packScan) run(r io.Reader) error {
	cr := newPackStream(r)
	var hdr [12]byte
	if _, err := io.ReadFull(cr, hdr[:]); err != nil {
		return fmt.Errorf("pack header: %w", err)
	}
	if string(hdr[:4]) != "PACK" {
		return errors.New("pack: bad signature")
	}
	if v := binary.BigEndian.Uint32(hdr[4:8]); v != 2 && v != 3 {
		return fmt.Errorf("pack: unsupported version %d", v)
	}
	count := binary.BigEndian.Uint32(hdr[8:])
	s.objs = make([]packEntry, 0, min(count, 1<<20))
	s.refs = map[int]plumbing.Hash{}
	var zr io.ReadCloser
	// Reused for every object: a new 32 KiB copy buffer per object was
	// most of the scan's allocation.
	copyBuf := make([]byte, 32<<10)
	deltaHeader := bufio.NewReaderSize(nil, 16)
	for i := uint32(0); i < count; i++ {
		e := packEntry{offset: cr.n}
		cr.beginObject()
		c, err := cr.ReadByte()
		if err != nil {
			return err
		}
		e.disk = (c >> 4) & 7
		e.size = int64(c & 15)
		for shift := 4; c&0x80 != 0; shift += 7 {
			if c, err = cr.ReadByte(); err != nil {
				return err
			}
			if shift > 56 {
				return errors.New("pack: object size overflows")
			}
			e.size |= int64(c&0x7f) << shift
		}
		switch e.disk {
		case packOFSDelta:
			c, err = cr.ReadByte()
			if err != nil {
				return err
			}
			rel := int64(c & 0x7f)
			for c&0x80 != 0 {
				if c, err = cr.ReadByte(); err != nil {
					return err
				}
				rel = ((rel + 1) << 7) | int64(c&0x7f)
			}
			e.base = e.offset - rel
			if rel <= 0 || e.base < 12 {
				return fmt.Errorf("pack: object at %d: bad delta base offset", e.offset)
			}
		case packREFDelta:
			var h plumbing.Hash
			if _, err := io.ReadFull(cr, h[:]); err != nil {
				return err
			}
			s.refs[len(s.objs)] = h
		case 1, 2, 3, 4:
			e.typ = plumbing.ObjectType(e.disk)
		default:
			return fmt.Errorf("pack: object at %d: bad type %d", e.offset, e.disk)
		}
		e.data = cr.n
		if zr == nil {
			zr, err = zlib.NewReader(cr)
		} else {
			err = zr.(zlib.Resetter).Reset(cr, nil)
		}
		if err != nil {
			return fmt.Errorf("pack: object at %d: %w", e.offset, err)
		}
		if e.disk == packOFSDelta || e.disk == packREFDelta {
			// The delta's first bytes give its base's size and its own.
			br := deltaHeader
			br.Reset(zr)
			src, err := binary.ReadUvarint(br)
			if err != nil {
				return fmt.Errorf("pack: object at %d: %w", e.offset, err)
			}
			dst, err := binary.ReadUvarint(br)
			if err != nil {
				return fmt.Errorf("pack: object at %d: %w", e.offset, err)
			}
			e.result = int64(dst)
			if !s.budget.fits(int64(src) + int64(dst) + e.size) {
				return &tooLarge{index: i, count: count, size: int64(dst), base: int64(src), budget: s.budget}
			}
			if _, err := io.Copy(io.Discard, br); err != nil {
				return fmt.Errorf("pack: object at %d: %w", e.offset, err)
			}
		} else {
			h := plumbing.NewHasher(e.typ, e.size)
			n, err := io.CopyBuffer(h, zr, copyBuf)
			if err != nil {
				return fmt.Errorf("pack: object at %d: %w", e.offset, err)
			}
			if n != e.size {
				return fmt.Errorf("pack: object at %d: %d bytes, its header says %d", e.offset, n, e.size)
			}
			e.hash = h.Sum()
			e.result = e.size
		}
		e.crc = cr.objectCRC()
		s.objs = append(s.objs, e)
	}
	sum := cr.packSum()
	if _, err := io.ReadFull(cr, s.trailer[:]); err != nil {
		return fmt.Errorf("pack checksum: %w", err)
	}
	if sum != s.trailer {
		return fmt.Errorf("pack: checksum %s, its trailer says %s", sum, s.trailer)
	}
	if _, err := cr.ReadByte(); err != io.EOF {
		return errors.New("pack: data after the checksum")
	}
	return nil
}
