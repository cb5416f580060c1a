package seed

import (
	"crypto/sha1"
	"hash"
	"hash/crc32"
	"io"

	"github.com/go-git/go-git/v5/plumbing"
)

// packStream is the pack as the scan reads it while it arrives: a buffered
// reader that counts the bytes consumed and checksums them on the way, the
// SHA-1 of the whole pack and the CRC-32 of each object for the index, so
// the written pack is not read again for them. The inflater reads it byte
// by byte (it is an io.ByteReader), so it consumes exactly each object's
// bytes.
type packStream struct {
	r        io.Reader
	buf      []byte
	pos, end int   // buf[pos:end]: read, not yet consumed
	hashed   int   // buf[hashed:pos]: consumed, not yet checksummed
	n        int64 // bytes consumed: the offset in the pack
	sum      hash.Hash
	crc      uint32 // of the bytes consumed since the object began
}

func newPackStream(r io.Reader) *packStream {
	return &packStream{r: r, buf: make([]byte, 64<<10), sum: sha1.New()}
}

func (p *packStream) ReadByte() (byte, error) {
	if p.pos == p.end {
		if err := p.fill(); err != nil {
			return 0, err
		}
	}
	b := p.buf[p.pos]
	p.pos++
	p.n++
	return b, nil
}

func (p *packStream) Read(b []byte) (int, error) {
	if p.pos == p.end {
		if err := p.fill(); err != nil {
			return 0, err
		}
	}
	n := copy(b, p.buf[p.pos:p.end])
	p.pos += n
	p.n += int64(n)
	return n, nil
}

// fill checksums what was consumed and reads more.
func (p *packStream) fill() error {
	p.checksum()
	p.pos, p.end, p.hashed = 0, 0, 0
	for {
		n, err := p.r.Read(p.buf)
		if n > 0 {
			p.end = n
			return nil
		}
		if err != nil {
			return err
		}
	}
}

func (p *packStream) checksum() {
	b := p.buf[p.hashed:p.pos]
	p.sum.Write(b)
	p.crc = crc32.Update(p.crc, crc32.IEEETable, b)
	p.hashed = p.pos
}

// beginObject starts the CRC-32 of an object at the current offset.
func (p *packStream) beginObject() {
	p.checksum()
	p.crc = 0
}

// objectCRC is the CRC-32 of the bytes since beginObject.
func (p *packStream) objectCRC() uint32 {
	p.checksum()
	return p.crc
}

// packSum is the SHA-1 of everything consumed: before the trailer, what
// the trailer must hold.
func (p *packStream) packSum() plumbing.Hash {
	p.checksum()
	var h plumbing.Hash
	p.sum.Sum(h[:0])
	return h
}
