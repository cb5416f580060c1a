package injection

import (
	"bytes"
	"errors"
	"fmt"

	"gomodules.xyz/jsonpatch/v2"
	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/runtime/serializer"
	kjson "sigs.k8s.io/json"
)

// Mutation is MutateJSON's answer for one Deployment.
type Mutation struct {
	// Deployment is the request's object as decoded.
	Deployment *appsv1.Deployment
	// Stored is the stored object on an UPDATE as the injection reads it
	// (decodeStored: metadata, strategy and pod template), else nil.
	Stored *appsv1.Deployment
	// Mutated is Mutate's output; nil when Denied. It shares with
	// Deployment and Stored what the injection left as it is: read only.
	Mutated  *appsv1.Deployment
	Warnings []string
	// Denied is why the Deployment is refused (ErrNoSeedImage when no seed
	// image is known yet); there is no patch then.
	Denied error
	// Patch turns the request's bytes into Mutated, touching only what the
	// injection changed, so fields these API types do not know stay; empty
	// when nothing changes.
	Patch []jsonpatch.Operation
}

// DecodeError is a request object that is not a Deployment's JSON.
type DecodeError struct{ Err error }

func (e *DecodeError) Error() string { return e.Err.Error() }
func (e *DecodeError) Unwrap() error { return e.Err }

// deployments decodes a Deployment the way the API server's admission
// decoder does (case-sensitive JSON, or YAML).
var deployments = func() runtime.Decoder {
	scheme := runtime.NewScheme()
	if err := appsv1.AddToScheme(scheme); err != nil {
		panic(err)
	}
	return serializer.NewCodecFactory(scheme).UniversalDeserializer()
}()

// decodeDeployment decodes a Deployment's JSON directly with the
// serializer's own JSON function (case-sensitive), since an admission
// request's object is JSON and its kind already known: the deserializer
// would first decode the whole object once more to read apiVersion and
// kind. Anything else (YAML, another kind, no kind) takes the
// deserializer's path, which answers it as before.
func decodeDeployment(raw []byte) (*appsv1.Deployment, error) {
	in := &appsv1.Deployment{}
	if trimmed := bytes.TrimLeft(raw, " \t\r\n"); len(trimmed) > 0 && trimmed[0] == '{' {
		if err := kjson.UnmarshalCaseSensitivePreserveInts(raw, in); err == nil && in.APIVersion == "apps/v1" && in.Kind == "Deployment" {
			return in, nil
		}
		in = &appsv1.Deployment{}
	}
	if err := runtime.DecodeInto(deployments, raw, in); err != nil {
		return nil, &DecodeError{err}
	}
	return in, nil
}

// storedDeployment is what the injection reads of the stored object on an
// UPDATE whose request differs from it: its metadata (the record, labels
// and annotations), strategy and pod template (the pin). The rest (status,
// the rest of the spec, managedFields: often the largest part) is skipped
// instead of decoded.
type storedDeployment struct {
	metav1.TypeMeta `json:",inline"`
	Metadata        struct {
		metav1.ObjectMeta `json:",inline"`
		ManagedFields     skipped `json:"managedFields"` // hides ObjectMeta's
	} `json:"metadata"`
	Spec struct {
		Strategy appsv1.DeploymentStrategy `json:"strategy"`
		Template corev1.PodTemplateSpec    `json:"template"`
	} `json:"spec"`
}

// skipped is a JSON value read past without decoding it.
type skipped struct{}

func (*skipped) UnmarshalJSON([]byte) error { return nil }

// decodeStored decodes the parts of a stored Deployment the injection
// reads (storedDeployment); anything but a Deployment's JSON takes
// decodeDeployment's path and its errors.
func decodeStored(raw []byte) (*appsv1.Deployment, error) {
	if trimmed := bytes.TrimLeft(raw, " \t\r\n"); len(trimmed) > 0 && trimmed[0] == '{' {
		var s storedDeployment
		if err := kjson.UnmarshalCaseSensitivePreserveInts(raw, &s); err == nil && s.APIVersion == "apps/v1" && s.Kind == "Deployment" {
			return &appsv1.Deployment{TypeMeta: s.TypeMeta, ObjectMeta: s.Metadata.ObjectMeta,
				Spec: appsv1.DeploymentSpec{Strategy: s.Spec.Strategy, Template: s.Spec.Template}}, nil
		}
	}
	return decodeDeployment(raw)
}

// MutateJSON is Mutate on a Deployment's JSON, as an admission request
// carries it and as the offline inject command reads it: the webhook and
// the command answer the same bytes the same way. storedRaw is the stored
// object on an UPDATE, else empty. The error is a *DecodeError for bytes
// that are not a Deployment, or a failure to build the patch; a refusal is
// Mutation.Denied.
func MutateJSON(raw, storedRaw []byte, s Settings) (*Mutation, error) {
	if len(raw) == 0 {
		return nil, &DecodeError{errors.New("there is no content to decode")}
	}
	in, err := decodeDeployment(raw)
	if err != nil {
		return nil, err
	}
	m := &Mutation{Deployment: in}
	switch {
	case bytes.Equal(storedRaw, raw):
		// A no-op UPDATE (a reconcile that changed nothing): one decoding
		// serves both, since Mutate reads them and writes a copy.
		m.Stored = in
	case len(storedRaw) > 0:
		stored, err := decodeStored(storedRaw)
		if err != nil {
			return nil, &DecodeError{fmt.Errorf("stored object: %w", err)}
		}
		m.Stored = stored
	}
	m.Mutated, m.Warnings, m.Denied = Mutate(in, m.Stored, s)
	if m.Denied != nil {
		return m, nil
	}
	ops, err := createPatch(raw, in, m.Mutated)
	if err != nil {
		return nil, err // it names what could not be decoded
	}
	m.Patch = ops
	return m, nil
}
