package injection

import (
	"bytes"
	"encoding/json"
	"reflect"
	"testing"

	"gomodules.xyz/jsonpatch/v2"
	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/resource"
	"k8s.io/utils/ptr"

	"github.com/angryninja/opencode-injector/injection/injectiontest"
)

// EncodePatch writes the same patch as the operations' own marshaling, for
// every golden case, and for paths that need escaping (an annotation key
// may hold anything).
func TestEncodePatchMatchesMarshal(t *testing.T) {
	patches := map[string][]jsonpatch.Operation{
		"escapes": {},
	}
	for _, key := range []string{`a"b`, `a\b`, "a<b", "a>b", "a&b", "a\u00e9b", "a\nb", "a\u2028b", "a~1b"} {
		patches["escapes"] = append(patches["escapes"], jsonpatch.NewOperation("add", "/metadata/annotations/"+key, "x"))
	}
	for name, in := range injectiontest.GoldenCases(t) {
		m, err := MutateJSON(injectiontest.MustJSON(t, in), nil, testSettings())
		if err != nil {
			t.Fatal(err)
		}
		patches[name] = m.Patch
	}
	for name, patch := range patches {
		if len(patch) == 0 {
			continue
		}
		got, err := EncodePatch(patch)
		if err != nil {
			t.Fatal(err)
		}
		want := injectiontest.MustJSON(t, patch)
		var g, w any
		if err := json.Unmarshal(got, &g); err != nil {
			t.Fatalf("%s: EncodePatch wrote %s: %v", name, got, err)
		}
		if err := json.Unmarshal(want, &w); err != nil {
			t.Fatal(err)
		}
		if !reflect.DeepEqual(w, g) || !json.Valid(got) {
			t.Errorf("%s: EncodePatch wrote\n%s\nthe operations marshal to\n%s", name, got, want)
		}
	}
}

// writeValue writes exactly encoding/json's bytes for the values it
// writes itself (strings, env entries of a value, a Secret key or a
// resource field, resource lists, plain containers), escapes included,
// and hands every other shape to encoding/json: every container of every
// golden case, injected or not, and containers with one more field set.
func TestWriteValueMatchesMarshal(t *testing.T) {
	odd := []string{"", "plain", `a"b`, `a\b`, "a<b>&c", "a\u00e9b", "a\nb", "a\u2028b", "\xff", "!f() { test \"$1\" = get && echo; }; f"}
	var values []any
	for _, s := range odd {
		values = append(values, s,
			&corev1.EnvVar{Name: s, Value: s},
			&corev1.EnvVar{Name: "N", ValueFrom: &corev1.EnvVarSource{SecretKeyRef: &corev1.SecretKeySelector{LocalObjectReference: corev1.LocalObjectReference{Name: s}, Key: s}}},
		)
	}
	for _, optional := range []*bool{nil, ptr.To(true), ptr.To(false)} {
		values = append(values, &corev1.EnvVar{Name: "N", Value: "v", ValueFrom: &corev1.EnvVarSource{SecretKeyRef: &corev1.SecretKeySelector{Key: "k", Optional: optional}}})
	}
	values = append(values,
		&corev1.EnvVar{Name: "N", ValueFrom: &corev1.EnvVarSource{ConfigMapKeyRef: &corev1.ConfigMapKeySelector{Key: "k"}}},
		&corev1.EnvVar{Name: "N", ValueFrom: &corev1.EnvVarSource{SecretKeyRef: &corev1.SecretKeySelector{Key: "k"}, FieldRef: &corev1.ObjectFieldSelector{FieldPath: "metadata.name"}}},
		&corev1.EnvVar{Name: "N", ValueFrom: &corev1.EnvVarSource{}},
		&corev1.EnvVar{Name: "N", ValueFrom: &corev1.EnvVarSource{ResourceFieldRef: &corev1.ResourceFieldSelector{Resource: "limits.cpu"}, FieldRef: &corev1.ObjectFieldSelector{FieldPath: "metadata.name"}}},
		&corev1.EnvVar{Name: "N", ValueFrom: &corev1.EnvVarSource{ResourceFieldRef: &corev1.ResourceFieldSelector{Resource: "limits.cpu"}}},
		&corev1.EnvVar{Name: "N", ValueFrom: &corev1.EnvVarSource{ResourceFieldRef: &corev1.ResourceFieldSelector{ContainerName: "c<", Resource: "limits.memory", Divisor: resource.MustParse("1Mi")}}},
		corev1.ResourceList(nil), corev1.ResourceList{},
		corev1.ResourceList{"memory": resource.MustParse("1Gi"), "cpu": resource.MustParse("100m"), "b<&>": resource.MustParse("1.5"), "a": resource.MustParse("1e3"), "z": resource.MustParse("0.1Gi")},
	)
	values = append(values, []corev1.Container(nil), []corev1.Container{}, &corev1.Container{}, &corev1.Container{Name: "x", Resources: corev1.ResourceRequirements{Limits: corev1.ResourceList{}}})
	values = append(values, []corev1.VolumeMount(nil), []corev1.VolumeMount{}, &corev1.VolumeMount{}, &corev1.VolumeMount{Name: "a<b", MountPath: "/\u00e9", ReadOnly: true})
	for _, q := range []string{"0", "1Gi", "100m", "1.5", "1e3", "0.1Gi", "-2", "1024Mi", "9223372036854775807"} {
		parsed := resource.MustParse(q)
		values = append(values, parsed, *resource.NewQuantity(parsed.Value(), resource.BinarySI))
	}
	values = append(values, resource.Quantity{}, (*corev1.EnvVar)(nil), (*corev1.Container)(nil), (*corev1.VolumeMount)(nil)) // encoding/json: null
	for _, in := range injectiontest.GoldenCases(t) {
		out, _, err := Mutate(in, nil, testSettings())
		if err != nil {
			continue
		}
		for _, d := range []*appsv1.Deployment{in, out} {
			for _, cs := range [][]corev1.Container{d.Spec.Template.Spec.InitContainers, d.Spec.Template.Spec.Containers} {
				values = append(values, cs)
				for i := range cs {
					values = append(values, &cs[i])
					for _, edit := range []func(c *corev1.Container){
						func(c *corev1.Container) { c.Ports = []corev1.ContainerPort{{ContainerPort: 80}} },
						func(c *corev1.Container) { c.Stdin = true },
						func(c *corev1.Container) { c.Resources.Claims = []corev1.ResourceClaim{{Name: "gpu"}} },
						func(c *corev1.Container) {
							c.VolumeMounts = append(c.VolumeMounts, corev1.VolumeMount{Name: "v", MountPath: "/v", SubPath: "s", SubPathExpr: "$(X)", ReadOnly: true})
						},
						func(c *corev1.Container) {
							c.VolumeMounts = append(c.VolumeMounts, corev1.VolumeMount{Name: "v", MountPath: "/v", MountPropagation: ptr.To(corev1.MountPropagationHostToContainer)})
						},
						func(c *corev1.Container) {
							c.VolumeMounts = append(c.VolumeMounts, corev1.VolumeMount{Name: "v", MountPath: "/v", ReadOnly: true, RecursiveReadOnly: ptr.To(corev1.RecursiveReadOnlyEnabled)})
						},
						func(c *corev1.Container) {
							c.VolumeMounts = append(c.VolumeMounts, corev1.VolumeMount{Name: "v", MountPath: "/v", BindMountOptions: []string{"ro"}})
						},
						func(c *corev1.Container) {
							c.Env = append(c.Env, corev1.EnvVar{Name: "P", ValueFrom: &corev1.EnvVarSource{FieldRef: &corev1.ObjectFieldSelector{FieldPath: "metadata.name"}}})
						},
						func(c *corev1.Container) {
							c.Command, c.Args, c.Image, c.WorkingDir = []string{"a&b"}, []string{}, "i>", "/w\u00e9"
						},
					} {
						edited := cs[i].DeepCopy()
						edit(edited)
						values = append(values, edited, edited.VolumeMounts)
						for m := range edited.VolumeMounts {
							values = append(values, &edited.VolumeMounts[m])
						}
					}
				}
			}
		}
	}
	for _, v := range values {
		buf := getJSONBuffer()
		if err := writeValue(buf, v); err != nil {
			t.Fatal(err)
		}
		want, err := json.Marshal(v)
		if err != nil {
			t.Fatal(err)
		}
		if got := buf.Bytes(); !bytes.Equal(got, want) {
			t.Errorf("%#v: writeValue wrote %s, encoding/json %s", v, got, want)
		}
		buf.release()
	}
}
