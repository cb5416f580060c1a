package seed

import (
	"bufio"
	"compress/zlib"
	"fmt"
	"io"
	"os"
)

// packReader inflates objects from the pack on disk for resolve, reusing
// one zlib reader and one buffer for every object: a new zlib reader per
// delta was half of the walk's time.
type packReader struct {
	scan *packScan
	f    *os.File
	size int64
	br   *bufio.Reader
	zr   io.ReadCloser
}

// dropReadAbove: the cached pages of an object this large are dropped once
// it is read; the walk holds its content, and would otherwise hold it twice
// (a 30 MiB base rebuilt from the pack stayed in the cache beside the heap).
const dropReadAbove = 1 << 20

func newPackReader(s *packScan, f *os.File, size int64) *packReader {
	return &packReader{scan: s, f: f, size: size, br: bufio.NewReaderSize(nil, 64<<10)}
}

// inflate reads object i's data (a delta's instructions, else its content).
func (r *packReader) inflate(i int) ([]byte, error) {
	o := &r.scan.objs[i]
	end := r.size - 20
	if i+1 < len(r.scan.objs) {
		end = r.scan.objs[i+1].offset
	}
	r.br.Reset(io.NewSectionReader(r.f, o.data, end-o.data))
	var err error
	if r.zr == nil {
		r.zr, err = zlib.NewReader(r.br)
	} else {
		err = r.zr.(zlib.Resetter).Reset(r.br, nil)
	}
	if err != nil {
		return nil, fmt.Errorf("pack: object at %d: %w", o.offset, err)
	}
	buf := make([]byte, o.size)
	if _, err := io.ReadFull(r.zr, buf); err != nil {
		return nil, fmt.Errorf("pack: object at %d: %w", o.offset, err)
	}
	if end-o.data >= dropReadAbove {
		dropCache(int(r.f.Fd()), o.data, end-o.data)
	}
	return buf, nil
}
