package injection

import (
	"bytes"
	"encoding/json"
	"fmt"

	"gomodules.xyz/jsonpatch/v2"
)

// EncodePatch is the JSON of a patch, written once into one buffer: the
// response's bytes as the API server reads them. Marshaling the operations
// themselves (as admission.Response.Complete does) encodes each value twice
// (Operation.MarshalJSON, then the list) through reflection.
func EncodePatch(ops []jsonpatch.Operation) ([]byte, error) {
	var buf bytes.Buffer
	enc := json.NewEncoder(&buf)
	buf.WriteByte('[')
	for i, op := range ops {
		if i > 0 {
			buf.WriteByte(',')
		}
		buf.WriteString(`{"op":`)
		if err := writeString(&buf, enc, op.Operation); err != nil {
			return nil, fmt.Errorf("encode the patch's operation %d: %w", i, err)
		}
		buf.WriteString(`,"path":`)
		if err := writeString(&buf, enc, op.Path); err != nil {
			return nil, fmt.Errorf("encode the patch's path %s: %w", op.Path, err)
		}
		if op.Operation != "remove" {
			buf.WriteString(`,"value":`)
			if err := enc.Encode(op.Value); err != nil {
				return nil, fmt.Errorf("encode the patch's value at %s: %w", op.Path, err)
			}
		}
		buf.WriteByte('}')
	}
	buf.WriteByte(']')
	return buf.Bytes(), nil
}

// writeString writes s as a JSON string: as it is when it is printable
// ASCII without a quote or backslash (the operations, and the paths of the
// fields we patch), else through enc, which escapes as encoding/json does
// (and replaces invalid UTF-8).
func writeString(buf *bytes.Buffer, enc *json.Encoder, s string) error {
	for i := range len(s) {
		if c := s[i]; c < 0x20 || c > 0x7e || c == '"' || c == '\\' {
			return enc.Encode(s)
		}
	}
	buf.WriteByte('"')
	buf.WriteString(s)
	buf.WriteByte('"')
	return nil
}
