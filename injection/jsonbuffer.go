package injection

import (
	"bytes"
	"encoding/json"
	"sync"
)

// jsonBuffer is a reusable buffer with an encoder writing into it. The
// patch, the user part's digest and the record are encoded into one from
// a pool and copied out once at their exact size (or hashed where they
// lie), instead of growing a fresh buffer step by step on every review.
type jsonBuffer struct {
	bytes.Buffer
	enc *json.Encoder
}

var jsonBuffers = sync.Pool{New: func() any {
	b := &jsonBuffer{}
	b.enc = json.NewEncoder(&b.Buffer)
	return b
}}

// largestPooled keeps a buffer that once held an outsized value out of the
// pool, so that one huge request does not pin its memory.
const largestPooled = 64 << 10

func getJSONBuffer() *jsonBuffer {
	b := jsonBuffers.Get().(*jsonBuffer)
	b.Reset()
	return b
}

func (b *jsonBuffer) release() {
	if b.Cap() <= largestPooled {
		jsonBuffers.Put(b)
	}
}

// encode writes v as json.Marshal does (HTML characters escaped), without
// the newline the encoder ends a value with.
func (b *jsonBuffer) encode(v any) error {
	if err := b.enc.Encode(v); err != nil {
		return err
	}
	b.Truncate(b.Len() - 1)
	return nil
}
