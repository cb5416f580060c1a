package injection

import (
	"bytes"
	"fmt"
	"strconv"

	"gomodules.xyz/jsonpatch/v2"
	corev1 "k8s.io/api/core/v1"
)

// EncodePatch is the JSON of a patch, written once into one buffer: the
// response's bytes as the API server reads them. Marshaling the operations
// themselves (as admission.Response.Complete does) encodes each value twice
// (Operation.MarshalJSON, then the list) through reflection.
func EncodePatch(ops []jsonpatch.Operation) ([]byte, error) {
	buf := getJSONBuffer()
	defer buf.release()
	buf.WriteByte('[')
	for i, op := range ops {
		if i > 0 {
			buf.WriteByte(',')
		}
		buf.WriteString(`{"op":`)
		if err := writeString(buf, op.Operation); err != nil {
			return nil, fmt.Errorf("encode the patch's operation %d: %w", i, err)
		}
		buf.WriteString(`,"path":`)
		if err := writeString(buf, op.Path); err != nil {
			return nil, fmt.Errorf("encode the patch's path %s: %w", op.Path, err)
		}
		if op.Operation != "remove" {
			buf.WriteString(`,"value":`)
			if err := writeValue(buf, op.Value); err != nil {
				return nil, fmt.Errorf("encode the patch's value at %s: %w", op.Path, err)
			}
		}
		buf.WriteByte('}')
	}
	buf.WriteByte(']')
	return bytes.Clone(buf.Bytes()), nil
}

// writeString writes s as a JSON string, exactly as encoding/json does:
// as it is when it is printable ASCII that needs no escape (the
// operations, the paths of the fields we patch, most values), else through
// enc, which escapes (HTML characters included) and replaces invalid
// UTF-8; without the newline enc ends its value with.
func writeString(buf *jsonBuffer, s string) error {
	for i := range len(s) {
		if c := s[i]; c < 0x20 || c > 0x7e || c == '"' || c == '\\' || c == '<' || c == '>' || c == '&' {
			return buf.encode(s)
		}
	}
	buf.WriteByte('"')
	buf.WriteString(s)
	buf.WriteByte('"')
	return nil
}

// writeValue writes v as encoding/json does. The values a patch holds
// most (strings, the env entries the injection adds: a value or a Secret
// key, resource lists) are written directly, without reflection; anything
// else goes through enc.
func writeValue(buf *jsonBuffer, v any) error {
	switch v := v.(type) {
	case string:
		return writeString(buf, v)
	case *corev1.EnvVar:
		if f := v.ValueFrom; f == nil || f.SecretKeyRef != nil && *f == (corev1.EnvVarSource{SecretKeyRef: f.SecretKeyRef}) {
			return writeEnvVar(buf, v)
		}
	case corev1.ResourceList:
		return writeResourceList(buf, v)
	}
	return buf.encode(v)
}

// writeEnvVar writes an env entry of a value or of a Secret key (nothing
// else in its valueFrom).
func writeEnvVar(buf *jsonBuffer, e *corev1.EnvVar) error {
	buf.WriteString(`{"name":`)
	if err := writeString(buf, e.Name); err != nil {
		return err
	}
	if e.Value != "" {
		buf.WriteString(`,"value":`)
		if err := writeString(buf, e.Value); err != nil {
			return err
		}
	}
	if e.ValueFrom != nil {
		ref := e.ValueFrom.SecretKeyRef
		buf.WriteString(`,"valueFrom":{"secretKeyRef":{`)
		if ref.Name != "" {
			buf.WriteString(`"name":`)
			if err := writeString(buf, ref.Name); err != nil {
				return err
			}
			buf.WriteByte(',')
		}
		buf.WriteString(`"key":`)
		if err := writeString(buf, ref.Key); err != nil {
			return err
		}
		if ref.Optional != nil {
			buf.WriteString(`,"optional":` + strconv.FormatBool(*ref.Optional))
		}
		buf.WriteString(`}}`)
	}
	buf.WriteByte('}')
	return nil
}

// writeResourceList writes a resource list in key order, each quantity in
// its canonical form (Quantity.MarshalJSON's).
func writeResourceList(buf *jsonBuffer, rl corev1.ResourceList) error {
	if rl == nil {
		buf.WriteString("null")
		return nil
	}
	buf.WriteByte('{')
	for i, name := range sortedKeys(rl) {
		if i > 0 {
			buf.WriteByte(',')
		}
		if err := writeString(buf, name); err != nil {
			return err
		}
		q := rl[corev1.ResourceName(name)]
		buf.WriteString(`:"` + q.String() + `"`)
	}
	buf.WriteByte('}')
	return nil
}
