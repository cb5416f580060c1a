package injection

import (
	"fmt"
	"slices"
	"sort"
	"strings"

	appsv1 "k8s.io/api/apps/v1"
	"k8s.io/apimachinery/pkg/api/resource"
	"k8s.io/apimachinery/pkg/util/validation"

	"github.com/angryninja/opencode-injector/contract"
)

// Workspace is what the annotations of one Deployment ask for, validated.
type Workspace struct {
	Repo      contract.Repo
	Branch    string // empty: the remote's default
	Secret    string
	Claim     string
	Container string // empty until the container is chosen
	// SeedMemory is the seed init container's memory limit, unclamped.
	SeedMemory resource.Quantity
	// Storage is the claim the injector's controller creates when it does
	// not exist; nil when the claim is declared elsewhere.
	Storage *contract.Storage
	// CABundle is the ConfigMap holding a self-hosted git host's CA; empty
	// when the system roots suffice.
	CABundle string
}

// ClonePath is where the repository lives on the claim.
func (w Workspace) ClonePath() string { return w.Repo.ClonePath() }

// ParseWorkspace validates the annotations of d against s. Every error is a
// *contract.AnnotationError.
func ParseWorkspace(d *appsv1.Deployment, s Settings) (Workspace, error) {
	a := d.Annotations
	w := Workspace{Secret: s.DefaultSecret, Claim: contract.ClaimName(a, d.Name), SeedMemory: DefaultSeedMemory.DeepCopy()}
	var err error
	if w.Repo, err = contract.ParseRepo(a[contract.AnnotationRepo], s.AllowedGitHosts); err != nil {
		return w, err
	}
	if b, ok := a[contract.AnnotationBranch]; ok {
		if err := contract.ValidateBranch(b); err != nil {
			return w, err
		}
		w.Branch = b
	}
	if v, ok := a[contract.AnnotationSeedMemory]; ok {
		q, err := resource.ParseQuantity(v)
		if err != nil || q.Sign() <= 0 {
			return w, &contract.AnnotationError{Key: contract.AnnotationSeedMemory, Value: contract.Mask(v), Problem: "is not a positive memory quantity",
				Fix: "give the seed init container's memory limit like 1Gi; it needs about the repository's largest file plus 48Mi"}
		}
		w.SeedMemory = q
	}
	if w.Storage, err = contract.ParseStorage(a); err != nil {
		return w, err
	}
	for _, n := range []struct {
		key       string
		target    *string
		subdomain bool
		fix       string
	}{
		{contract.AnnotationSecret, &w.Secret, true, "name a Secret in this namespace (DNS-1123 subdomain: lowercase letters, digits, '-' and '.')"},
		{contract.AnnotationClaim, &w.Claim, true, "name a PersistentVolumeClaim in this namespace (DNS-1123 subdomain: lowercase letters, digits, '-' and '.')"},
		{contract.AnnotationContainer, &w.Container, false, "name a container of the pod template (DNS-1123 label: lowercase letters, digits and '-')"},
		{contract.AnnotationCABundle, &w.CABundle, true, "name a ConfigMap in this namespace whose key " + contract.CABundleKey + " holds the git host's CA certificates in PEM (DNS-1123 subdomain: lowercase letters, digits, '-' and '.')"},
	} {
		v, ok := a[n.key]
		if !ok {
			continue
		}
		if msgs := validateName(v, n.subdomain); len(msgs) > 0 {
			return w, &contract.AnnotationError{Key: n.key, Value: contract.Mask(v), Problem: "is not a valid name (" + strings.Join(msgs, "; ") + ")", Fix: n.fix}
		}
		*n.target = v
	}
	if w.Claim == "" {
		return w, &contract.AnnotationError{Key: contract.AnnotationClaim, Problem: "is missing, and the Deployment has no name yet to name the claim after (it is created with metadata.generateName)",
			Fix: "set this annotation to the claim's name, or give the Deployment a metadata.name"}
	}
	return w, nil
}

func validateName(v string, subdomain bool) []string {
	if subdomain {
		return validation.IsDNS1123Subdomain(v)
	}
	return validation.IsDNS1123Label(v)
}

// unknownKeys are the annotations under the prefix that are not part of the
// contract, in order.
func unknownKeys(annotations map[string]string) []string {
	var keys []string
	for k := range annotations {
		if strings.HasPrefix(k, contract.Prefix) && k != contract.AnnotationInjected && !slices.Contains(contract.UserAnnotations, k) {
			keys = append(keys, k)
		}
	}
	sort.Strings(keys)
	return keys
}

// maxUnknownKeyWarnings is how many unknown keys are named one by one,
// each with its nearest contract key; the rest are counted in one warning.
const maxUnknownKeyWarnings = 16

// unknownKeyWarning names an unknown key with the nearest valid one.
func unknownKeyWarning(k string) string {
	return fmt.Sprintf("unknown annotation %s is ignored; did you mean %s?", contract.Mask(k), nearest(k, contract.UserAnnotations))
}

func nearest(k string, candidates []string) string {
	// A key the API server accepts is at most 317 characters (a 253-byte
	// prefix, '/', a 63-byte name): longer is not worth comparing whole.
	k = k[:min(len(k), 317)]
	best, bestDist := "", -1
	for _, c := range candidates {
		if d := levenshtein(k, c); bestDist < 0 || d < bestDist {
			best, bestDist = c, d
		}
	}
	return best
}

func levenshtein(a, b string) int {
	prev, cur := make([]int, len(b)+1), make([]int, len(b)+1)
	for j := range prev {
		prev[j] = j
	}
	for i := 1; i <= len(a); i++ {
		cur[0] = i
		for j := 1; j <= len(b); j++ {
			cost := 1
			if a[i-1] == b[j-1] {
				cost = 0
			}
			cur[j] = min(prev[j]+1, cur[j-1]+1, prev[j-1]+cost)
		}
		prev, cur = cur, prev
	}
	return prev[len(b)]
}
