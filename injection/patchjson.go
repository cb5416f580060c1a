package injection

import (
	"bytes"
	"fmt"
	"strconv"

	"gomodules.xyz/jsonpatch/v2"
	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/resource"
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
		writeString(buf, op.Operation)
		buf.WriteString(`,"path":`)
		writeString(buf, op.Path)
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
// the buffer's encoder, which escapes (HTML characters included) and
// replaces invalid UTF-8.
func writeString(buf *jsonBuffer, s string) {
	for i := range len(s) {
		if c := s[i]; c < 0x20 || c > 0x7e || c == '"' || c == '\\' || c == '<' || c == '>' || c == '&' {
			_ = buf.encode(s) // a string always encodes
			return
		}
	}
	buf.WriteByte('"')
	buf.WriteString(s)
	buf.WriteByte('"')
}

// writeValue writes v as encoding/json does. The values a patch holds
// most (strings, the env entries and plain containers the injection adds,
// resource lists) are written directly, without reflection; anything else
// goes through the buffer's encoder.
func writeValue(buf *jsonBuffer, v any) error {
	switch v := v.(type) {
	case string:
		writeString(buf, v)
		return nil
	case *corev1.EnvVar:
		if v != nil && plainEnvVar(v) {
			writeEnvVar(buf, v)
			return nil
		}
	case corev1.ResourceList:
		writeResourceList(buf, v)
		return nil
	case resource.Quantity:
		writeString(buf, v.String()) // as its MarshalJSON writes it
		return nil
	case *corev1.VolumeMount:
		if v != nil && plainVolumeMounts([]corev1.VolumeMount{*v}) {
			writeVolumeMount(buf, v)
			return nil
		}
	case []corev1.VolumeMount:
		if plainVolumeMounts(v) {
			writeVolumeMounts(buf, v)
			return nil
		}
	case []corev1.Container:
		return writeContainers(buf, v)
	case *corev1.Container:
		if v != nil {
			return writeContainer(buf, v)
		}
	}
	return buf.encode(v)
}

// plainEnvVar tells whether writeEnvVar writes every field e sets: a value,
// or a valueFrom of only a Secret key or only a resource field. Each check
// clears what the writer writes and compares the rest with the zero value,
// so a field a newer API adds sends e through encoding/json instead of
// being dropped.
func plainEnvVar(e *corev1.EnvVar) bool {
	rest := *e
	rest.Name, rest.Value, rest.ValueFrom = "", "", nil
	if rest != (corev1.EnvVar{}) {
		return false
	}
	switch f := e.ValueFrom; {
	case f == nil:
		return true
	case f.SecretKeyRef != nil && *f == (corev1.EnvVarSource{SecretKeyRef: f.SecretKeyRef}):
		ref := *f.SecretKeyRef
		ref.Name, ref.Key, ref.Optional = "", "", nil
		return ref == corev1.SecretKeySelector{}
	case f.ResourceFieldRef != nil && *f == (corev1.EnvVarSource{ResourceFieldRef: f.ResourceFieldRef}):
		ref := *f.ResourceFieldRef
		ref.ContainerName, ref.Resource, ref.Divisor = "", "", resource.Quantity{}
		return ref == corev1.ResourceFieldSelector{}
	}
	return false
}

// writeEnvVar writes an env entry plainEnvVar accepts.
func writeEnvVar(buf *jsonBuffer, e *corev1.EnvVar) {
	buf.WriteString(`{"name":`)
	writeString(buf, e.Name)
	writeStringField(buf, "value", e.Value)
	if f := e.ValueFrom; f != nil {
		buf.WriteString(`,"valueFrom":{`)
		if ref := f.SecretKeyRef; ref != nil {
			buf.WriteString(`"secretKeyRef":{`)
			if ref.Name != "" {
				buf.WriteString(`"name":`)
				writeString(buf, ref.Name)
				buf.WriteByte(',')
			}
			buf.WriteString(`"key":`)
			writeString(buf, ref.Key)
			if ref.Optional != nil {
				buf.WriteString(`,"optional":` + strconv.FormatBool(*ref.Optional))
			}
			buf.WriteByte('}')
		} else {
			buf.WriteString(`"resourceFieldRef":`)
			writeResourceFieldRef(buf, f.ResourceFieldRef)
		}
		buf.WriteByte('}')
	}
	buf.WriteByte('}')
}

// writeResourceList writes a resource list in key order, each quantity in
// its canonical form (Quantity.MarshalJSON's).
func writeResourceList(buf *jsonBuffer, rl corev1.ResourceList) {
	if rl == nil {
		buf.WriteString("null")
		return
	}
	buf.WriteByte('{')
	for i, name := range sortedKeys(rl) {
		if i > 0 {
			buf.WriteByte(',')
		}
		writeString(buf, name)
		buf.WriteByte(':')
		q := rl[corev1.ResourceName(name)]
		writeString(buf, q.String())
	}
	buf.WriteByte('}')
}
