package injection

import (
	"reflect"

	corev1 "k8s.io/api/core/v1"
)

// The seed container is the largest value a CREATE's patch adds. Its
// shape (and that of the other plain containers a patch adds whole) is
// written here without reflection, byte for byte as encoding/json writes
// it (TestWriteValueMatchesMarshal); a container with any other field set
// goes through encoding/json.

// writeContainers writes a list of containers.
func writeContainers(buf *jsonBuffer, cs []corev1.Container) error {
	if cs == nil {
		buf.WriteString("null")
		return nil
	}
	buf.WriteByte('[')
	for i := range cs {
		if i > 0 {
			buf.WriteByte(',')
		}
		if err := writeContainer(buf, &cs[i]); err != nil {
			return err
		}
	}
	buf.WriteByte(']')
	return nil
}

// writeContainer writes c: itself when plainContainer, else through
// encoding/json.
func writeContainer(buf *jsonBuffer, c *corev1.Container) error {
	if !plainContainer(c) {
		return buf.encode(c)
	}
	buf.WriteString(`{"name":`)
	writeString(buf, c.Name)
	writeStringField(buf, "image", c.Image)
	writeStringsField(buf, "command", c.Command)
	writeStringsField(buf, "args", c.Args)
	writeStringField(buf, "workingDir", c.WorkingDir)
	if len(c.Env) > 0 {
		buf.WriteString(`,"env":[`)
		for i := range c.Env {
			if i > 0 {
				buf.WriteByte(',')
			}
			writeEnvVar(buf, &c.Env[i])
		}
		buf.WriteByte(']')
	}
	buf.WriteString(`,"resources":{`)
	if len(c.Resources.Limits) > 0 {
		buf.WriteString(`"limits":`)
		writeResourceList(buf, c.Resources.Limits)
	}
	if len(c.Resources.Requests) > 0 {
		if len(c.Resources.Limits) > 0 {
			buf.WriteByte(',')
		}
		buf.WriteString(`"requests":`)
		writeResourceList(buf, c.Resources.Requests)
	}
	buf.WriteByte('}')
	if len(c.VolumeMounts) > 0 {
		buf.WriteString(`,"volumeMounts":`)
		writeVolumeMounts(buf, c.VolumeMounts)
	}
	writeStringField(buf, "terminationMessagePath", c.TerminationMessagePath)
	writeStringField(buf, "terminationMessagePolicy", string(c.TerminationMessagePolicy))
	writeStringField(buf, "imagePullPolicy", string(c.ImagePullPolicy))
	if c.SecurityContext != nil {
		buf.WriteString(`,"securityContext":`)
		if err := buf.encode(c.SecurityContext); err != nil {
			return err
		}
	}
	buf.WriteByte('}')
	return nil
}

// plainContainer tells whether writeContainer writes every field c sets:
// those above, env entries writeEnvVar writes, resource limits and
// requests, and mounts of only a name, read-only, path and sub-path.
func plainContainer(c *corev1.Container) bool {
	rest := *c
	rest.Name, rest.Image, rest.Command, rest.Args, rest.WorkingDir, rest.Env = "", "", nil, nil, "", nil
	rest.Resources.Limits, rest.Resources.Requests, rest.VolumeMounts = nil, nil, nil
	rest.TerminationMessagePath, rest.TerminationMessagePolicy, rest.ImagePullPolicy, rest.SecurityContext = "", "", "", nil
	if !reflect.DeepEqual(rest, corev1.Container{}) {
		return false
	}
	for i := range c.Env {
		if !plainEnvVar(&c.Env[i]) {
			return false
		}
	}
	return plainVolumeMounts(c.VolumeMounts)
}

// plainVolumeMounts tells whether writeVolumeMount writes every field of
// each mount: a name, read-only, a path and a sub-path. As plainEnvVar:
// what the writer does not write must be unset.
func plainVolumeMounts(ms []corev1.VolumeMount) bool {
	for _, m := range ms {
		m.Name, m.ReadOnly, m.MountPath, m.SubPath, m.SubPathExpr = "", false, "", "", ""
		if !reflect.DeepEqual(m, corev1.VolumeMount{}) {
			return false
		}
	}
	return true
}

// writeVolumeMounts writes a list of plain mounts (plainVolumeMounts).
func writeVolumeMounts(buf *jsonBuffer, ms []corev1.VolumeMount) {
	if ms == nil {
		buf.WriteString("null")
		return
	}
	buf.WriteByte('[')
	for i := range ms {
		if i > 0 {
			buf.WriteByte(',')
		}
		writeVolumeMount(buf, &ms[i])
	}
	buf.WriteByte(']')
}

// writeVolumeMount writes a plain mount.
func writeVolumeMount(buf *jsonBuffer, m *corev1.VolumeMount) {
	buf.WriteString(`{"name":`)
	writeString(buf, m.Name)
	if m.ReadOnly {
		buf.WriteString(`,"readOnly":true`)
	}
	buf.WriteString(`,"mountPath":`)
	writeString(buf, m.MountPath)
	writeStringField(buf, "subPath", m.SubPath)
	writeStringField(buf, "subPathExpr", m.SubPathExpr)
	buf.WriteByte('}')
}

// writeStringField writes `,"name":value` unless value is empty
// (omitempty).
func writeStringField(buf *jsonBuffer, name, value string) {
	if value == "" {
		return
	}
	buf.WriteString(`,"` + name + `":`)
	writeString(buf, value)
}

// writeStringsField writes `,"name":[values]` unless values is empty
// (omitempty).
func writeStringsField(buf *jsonBuffer, name string, values []string) {
	if len(values) == 0 {
		return
	}
	buf.WriteString(`,"` + name + `":[`)
	for i, v := range values {
		if i > 0 {
			buf.WriteByte(',')
		}
		writeString(buf, v)
	}
	buf.WriteByte(']')
}

// writeResourceFieldRef writes a downward API reference to a resource.
func writeResourceFieldRef(buf *jsonBuffer, ref *corev1.ResourceFieldSelector) {
	buf.WriteString(`{`)
	if ref.ContainerName != "" {
		buf.WriteString(`"containerName":`)
		writeString(buf, ref.ContainerName)
		buf.WriteByte(',')
	}
	buf.WriteString(`"resource":`)
	writeString(buf, ref.Resource)
	buf.WriteString(`,"divisor":`)
	writeString(buf, ref.Divisor.String())
	buf.WriteByte('}')
}
