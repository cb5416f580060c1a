package webhook

import (
	"encoding/json"
	"fmt"

	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
)

// record is the status annotation: what the injection overwrote, so that
// removing the label restores the Deployment exactly. Its JSON is
// deterministic (struct fields, slices in a fixed order).
type record struct {
	Version      string                     `json:"version"`
	Container    string                     `json:"container"`
	Strategy     *appsv1.DeploymentStrategy `json:"strategy,omitempty"`
	WorkingDir   string                     `json:"workingDir,omitempty"`
	Env          []replacedEnv              `json:"env,omitempty"`
	Filled       []string                   `json:"filled,omitempty"`
	FSGroupAdded bool                       `json:"fsGroupAdded,omitempty"`
}

// replacedEnv is a user env entry the injection replaced, with its index in
// the user's list.
type replacedEnv struct {
	Index int `json:"index"`
	corev1.EnvVar
}

func (r record) encode() string {
	b, err := json.Marshal(r)
	if err != nil {
		panic(fmt.Sprintf("encode injection record: %v", err)) // only plain data: cannot fail
	}
	return string(b)
}

// readRecord returns the status annotation, and whether it can be trusted.
// A malformed or foreign one is reported and then ignored.
func readRecord(d *appsv1.Deployment) (rec record, ok bool, warning string) {
	raw, present := d.Annotations[AnnotationInjected]
	if !present {
		return record{}, false, ""
	}
	if err := json.Unmarshal([]byte(raw), &rec); err != nil || rec.Version != ContractVersion || rec.Container == "" {
		return record{}, false, "annotation " + AnnotationInjected + " is malformed or was edited by hand and is ignored: " +
			"injected items were removed by name, but values they replaced cannot be restored"
	}
	return rec, true, ""
}
