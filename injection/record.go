package injection

import (
	"encoding/json"
	"fmt"
	"regexp"
	"slices"
	"strings"

	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/resource"
	"k8s.io/utils/ptr"

	"github.com/angryninja/opencode-injector/contract"
)

// record is the status annotation. It holds what the injection was made
// from (container, Secret, clone path, hosts), so that what it wrote can be
// recomputed exactly, and the user's values it replaced or left unset, so
// that removing the label restores the Deployment. Its JSON is
// deterministic: struct fields, a map (encoded in key order), slices in a
// fixed order.
type record struct {
	Version   string   `json:"version"`
	Container string   `json:"container"`
	Secret    string   `json:"secret,omitempty"`
	Clone     string   `json:"clone,omitempty"`
	Hosts     []string `json:"hosts,omitempty"`
	// The user's strategy, replaced by Recreate.
	Strategy *appsv1.DeploymentStrategy `json:"strategy,omitempty"`
	// The user's workingDir ("" for none), replaced by the clone; nil when
	// the user's workingDir was inside the clone and kept.
	WorkingDir *string `json:"workingDir,omitempty"`
	// The user's env entries with names the contract owns, at their index.
	Env []replacedEnv `json:"env,omitempty"`
	// Resource fields ("limits.memory") the injection filled, with the value.
	Filled map[string]resource.Quantity `json:"filled,omitempty"`
	// The pod fsGroup the injection added, and whether it had to create the
	// pod securityContext for it.
	FSGroup                 *int64 `json:"fsGroup,omitempty"`
	PodSecurityContextAdded bool   `json:"podSecurityContextAdded,omitempty"`
	// The seed runs as the image's user: the pod requires non-root users but
	// names no uid.
	SeedRunsAsImageUser bool `json:"seedRunsAsImageUser,omitempty"`
	// The ConfigMap of the CA added for a self-hosted git host.
	CABundle string `json:"caBundle,omitempty"`
	// The sha256 of the user's part the injection was made from (see
	// userDigest): while the user's part keeps it, the injection is kept
	// as it is. Records written before it adopt what they sit beside.
	UserDigest string `json:"userDigest,omitempty"`

	// legacy marks a v1 record, which did not record what it wrote: its env
	// is stripped by name.
	legacy bool
}

var userDigestRE = regexp.MustCompile(`^sha256:[0-9a-f]{64}$`)

// replacedEnv is a user env entry the injection replaced, with its index in
// the user's list.
type replacedEnv struct {
	Index int `json:"index"`
	corev1.EnvVar
}

// recordV1 is the status annotation of contract v1, read for un-injection.
type recordV1 struct {
	Version      string                     `json:"version"`
	Container    string                     `json:"container"`
	Strategy     *appsv1.DeploymentStrategy `json:"strategy,omitempty"`
	WorkingDir   string                     `json:"workingDir,omitempty"`
	Env          []replacedEnv              `json:"env,omitempty"`
	Filled       []string                   `json:"filled,omitempty"`
	FSGroupAdded bool                       `json:"fsGroupAdded,omitempty"`
}

func (r record) encode() string {
	buf := getJSONBuffer()
	defer buf.release()
	if err := buf.encode(r); err != nil {
		panic(fmt.Sprintf("encode injection record: %v", err)) // only plain data: cannot fail
	}
	return buf.String()
}

// parseRecord decodes a status annotation of either contract version. A v1
// record is completed from the container it names in ps, where v1 left what
// it wrote unrecorded.
func parseRecord(raw string, ps *corev1.PodSpec) (record, error) {
	var head struct {
		Version string `json:"version"`
	}
	if err := json.Unmarshal([]byte(raw), &head); err != nil {
		return record{}, fmt.Errorf("not JSON")
	}
	switch head.Version {
	case contract.Version:
		// Fields this release does not know are ignored: a later release's
		// record, read after an injector rollback, is still checked against
		// the object by its known fields (agreesWith).
		var rec record
		if err := json.Unmarshal([]byte(raw), &rec); err != nil {
			return record{}, fmt.Errorf("not a %s record: %v", contract.Version, err)
		}
		return rec, nil
	case contract.VersionV1:
		var v1 recordV1
		dec := json.NewDecoder(strings.NewReader(raw))
		dec.DisallowUnknownFields()
		if err := dec.Decode(&v1); err != nil {
			return record{}, fmt.Errorf("not a v1 record: %v", err)
		}
		return fromV1(v1, ps), nil
	}
	return record{}, fmt.Errorf("unknown version %q", head.Version)
}

// fromV1 reads a v1 record: v1 always wrote the clone path as workingDir and
// did not record the values it filled, so what the container holds now is
// taken as what it wrote.
func fromV1(v1 recordV1, ps *corev1.PodSpec) record {
	rec := record{Version: contract.VersionV1, Container: v1.Container, Strategy: v1.Strategy, Env: v1.Env, WorkingDir: ptr.To(v1.WorkingDir), legacy: true}
	i := slices.IndexFunc(ps.Containers, func(c corev1.Container) bool { return c.Name == v1.Container })
	if i < 0 {
		return rec
	}
	c := ps.Containers[i]
	if strings.HasPrefix(c.WorkingDir, contract.WorkspaceRoot+"/") {
		rec.Clone = c.WorkingDir
	}
	for _, f := range v1.Filled {
		if q, ok := resourceField(&c.Resources, f); ok {
			if rec.Filled == nil {
				rec.Filled = map[string]resource.Quantity{}
			}
			rec.Filled[f] = q
		}
	}
	if v1.FSGroupAdded && ps.SecurityContext != nil && ps.SecurityContext.FSGroup != nil {
		rec.FSGroup = ptr.To(*ps.SecurityContext.FSGroup)
		rec.PodSecurityContextAdded = true // v1 removed an emptied one
	}
	return rec
}

// readRecord returns the status annotation of d when it is there and agrees
// with the object; otherwise a warning says why it is not used.
func readRecord(d *appsv1.Deployment) (rec record, trusted bool, warning string) {
	raw, present := d.Annotations[contract.AnnotationInjected]
	if !present {
		if IsInjected(d) {
			return record{}, false, "annotation " + contract.AnnotationInjected + " was deleted from an injected Deployment: " +
				"injected items were removed by name, but values they replaced cannot be restored, and filled resources stay"
		}
		return record{}, false, ""
	}
	ps := &d.Spec.Template.Spec
	rec, err := parseRecord(raw, ps)
	if err == nil {
		err = rec.agreesWith(ps)
	}
	if err != nil {
		return record{}, false, "annotation " + contract.AnnotationInjected + " is malformed or was edited by hand (" + err.Error() + ") and is ignored: " +
			"injected items were removed by name, but values they replaced cannot be restored, and filled resources stay"
	}
	return rec, true, ""
}

// RecordProblem says why the status annotation of an injected Deployment
// is not trusted (deleted, malformed or edited by hand), or "" when it is,
// by the very reading the injection does (`opencode-injector check`).
func RecordProblem(d *appsv1.Deployment) string {
	_, _, warning := readRecord(d)
	return warning
}

// agreesWith checks the record against the object it sits on: a record
// that names a container that does not exist, one the injection did not
// mount the claim into, or a Secret, clone or hosts other than those of the
// seed container and the auth volume it sits beside, cannot say what to
// restore.
func (r record) agreesWith(ps *corev1.PodSpec) error {
	i := slices.IndexFunc(ps.Containers, func(c corev1.Container) bool { return c.Name == r.Container })
	if r.Container == "" || i < 0 {
		return fmt.Errorf("container %q is not in the pod template", r.Container)
	}
	c := ps.Containers[i]
	if !slices.ContainsFunc(c.VolumeMounts, isDataMount) {
		return fmt.Errorf("container %q does not mount %s at %s", r.Container, contract.DataVolumeName, contract.DataMountPath)
	}
	if !r.legacy {
		si := slices.IndexFunc(ps.InitContainers, isOurSeed)
		if si < 0 {
			return fmt.Errorf("the pod template has no %s init container", contract.SeedContainerName)
		}
		seedEnv := ps.InitContainers[si].Env
		if !strings.HasPrefix(r.Clone, contract.WorkspaceRoot+"/") || !slices.Contains(seedEnv, corev1.EnvVar{Name: contract.EnvSeedWorkspace, Value: r.Clone}) {
			return fmt.Errorf("clone %q is not the seed's workspace", r.Clone)
		}
		if !slices.Contains(seedEnv, corev1.EnvVar{Name: contract.EnvSeedAllowedHosts, Value: strings.Join(r.Hosts, ",")}) {
			return fmt.Errorf("hosts %q are not the seed's", r.Hosts)
		}
		if !slices.ContainsFunc(ps.Volumes, func(v corev1.Volume) bool {
			return v.Name == contract.AuthVolumeName && v.Secret != nil && v.Secret.SecretName == r.Secret
		}) {
			return fmt.Errorf("secret %q is not the one volume %s reads", r.Secret, contract.AuthVolumeName)
		}
		if err := r.caAgrees(ps); err != nil {
			return err
		}
	}
	for i, e := range r.Env {
		if e.Index < 0 || e.Index > len(c.Env)+len(r.Env) || !r.ownsEnv(e.Name) {
			return fmt.Errorf("env entry %q does not fit container %q", e.Name, r.Container)
		}
		if i > 0 && e.Index <= r.Env[i-1].Index { // as the injection records them (putBack relies on it)
			return fmt.Errorf("env entry %q is not after the one before it", e.Name)
		}
	}
	if r.UserDigest != "" && !userDigestRE.MatchString(r.UserDigest) {
		return fmt.Errorf("userDigest %q is not sha256:<64 hex digits>", r.UserDigest)
	}
	for _, f := range sortedKeys(r.Filled) { // the same field named on every review
		if _, _, ok := resourceList(&corev1.ResourceRequirements{}, f); !ok {
			return fmt.Errorf("filled field %q is not requests.<name> or limits.<name>", f)
		}
	}
	return nil
}
