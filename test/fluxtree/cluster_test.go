package fluxtree_test

import (
	"fmt"
	"os"
	"strings"
	"time"

	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/types"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/yaml"
)

// dropDependency removes one dependsOn entry of a child Kustomization (a
// JSON patch that first checks the entry is the one named).
func (f *fixture) dropDependency(ks example, name string) {
	f.t.Helper()
	u := f.get("kustomize.toolkit.fluxcd.io/v1", "Kustomization", ks.namespace, ks.name)
	deps, _, _ := unstructured.NestedSlice(u.Object, "spec", "dependsOn")
	for i, d := range deps {
		if d.(map[string]any)["name"] != name {
			continue
		}
		patch := fmt.Sprintf(`[{"op":"test","path":"/spec/dependsOn/%d/name","value":%q},{"op":"remove","path":"/spec/dependsOn/%d"}]`, i, name, i)
		if err := f.c.Patch(f.ctx, u, client.RawPatch(types.JSONPatchType, []byte(patch))); err != nil {
			f.t.Fatalf("%s: drop the dependency on %s: %v", ks, name, err)
		}
		return
	}
	f.t.Fatalf("%s: no dependency on %s", ks, name)
}

// waitReady waits until the Kustomization is Ready for its generation.
func (f *fixture) waitReady(namespace, name string) {
	f.t.Helper()
	f.eventually(fmt.Sprintf("Kustomization %s/%s Ready", namespace, name), func() error {
		status, reason, msg, err := f.readyCondition(namespace, name)
		if err != nil {
			return err
		}
		if status != "True" {
			return fmt.Errorf("Ready %s %s: %s", status, reason, msg)
		}
		return nil
	})
}

// waitApplied waits until the Kustomization has applied the artifact's
// revision (it may still be running health checks).
func (f *fixture) waitApplied(ks example) {
	f.t.Helper()
	f.eventually(fmt.Sprintf("%s applied", ks), func() error {
		u := f.get("kustomize.toolkit.fluxcd.io/v1", "Kustomization", ks.namespace, ks.name)
		entries, _, _ := unstructured.NestedSlice(u.Object, "status", "inventory", "entries")
		if len(entries) == 0 {
			_, reason, msg, _ := f.readyCondition(ks.namespace, ks.name)
			return fmt.Errorf("nothing applied yet (%s: %s)", reason, msg)
		}
		return nil
	})
}

// waitNotReady waits until the Kustomization reports reason, with a message
// that names what.
func (f *fixture) waitNotReady(ks example, reason, what string) {
	f.t.Helper()
	f.eventually(fmt.Sprintf("%s %s on %s", ks, reason, what), func() error {
		status, gotReason, msg, err := f.readyCondition(ks.namespace, ks.name)
		if err != nil {
			return err
		}
		if status != "False" || gotReason != reason || !strings.Contains(msg, what) {
			return fmt.Errorf("Ready %s %s: %s", status, gotReason, msg)
		}
		return nil
	})
}

func (f *fixture) readyCondition(namespace, name string) (status, reason, message string, err error) {
	u := &unstructured.Unstructured{}
	u.SetAPIVersion("kustomize.toolkit.fluxcd.io/v1")
	u.SetKind("Kustomization")
	if err := f.c.Get(f.ctx, client.ObjectKey{Namespace: namespace, Name: name}, u); err != nil {
		return "", "", "", err
	}
	conditions, _, _ := unstructured.NestedSlice(u.Object, "status", "conditions")
	for _, c := range conditions {
		m, _ := c.(map[string]any)
		if m["type"] == "Ready" {
			if og, _, _ := unstructured.NestedInt64(m, "observedGeneration"); og != u.GetGeneration() {
				return "", "", "", fmt.Errorf("Ready is for generation %d, not %d", og, u.GetGeneration())
			}
			return fmt.Sprint(m["status"]), fmt.Sprint(m["reason"]), fmt.Sprint(m["message"]), nil
		}
	}
	return "", "", "", fmt.Errorf("no Ready condition yet")
}

// eventually retries check until it passes, failing the test with the
// last error after a minute.
func (f *fixture) eventually(what string, check func() error) {
	f.t.Helper()
	deadline := time.Now().Add(time.Minute)
	for {
		err := check()
		if err == nil {
			return
		}
		if time.Now().After(deadline) {
			f.t.Fatalf("waiting for %s: %v", what, err)
		}
		time.Sleep(250 * time.Millisecond)
	}
}

func (f *fixture) get(apiVersion, kind, namespace, name string) *unstructured.Unstructured {
	f.t.Helper()
	u := &unstructured.Unstructured{}
	u.SetAPIVersion(apiVersion)
	u.SetKind(kind)
	if err := f.c.Get(f.ctx, client.ObjectKey{Namespace: namespace, Name: name}, u); err != nil {
		f.t.Fatalf("%s %s/%s is not in the cluster: %v", kind, namespace, name, err)
	}
	return u
}

func (f *fixture) object(text string) *unstructured.Unstructured {
	f.t.Helper()
	u := &unstructured.Unstructured{}
	if err := yaml.Unmarshal([]byte(text), &u.Object); err != nil {
		f.t.Fatalf("decode %s: %v", text, err)
	}
	return u
}

func (f *fixture) readYAML(path string) *unstructured.Unstructured {
	f.t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		f.t.Fatal(err)
	}
	return f.object(string(b))
}
