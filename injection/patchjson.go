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
		if err := enc.Encode(op.Operation); err != nil {
			return nil, fmt.Errorf("encode the patch's operation %d: %w", i, err)
		}
		buf.WriteString(`,"path":`)
		if err := enc.Encode(op.Path); err != nil {
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
