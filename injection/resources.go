package injection

import (
	"sort"
	"strings"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/resource"
)

const (
	requestsField = "requests."
	limitsField   = "limits."
)

// fillResources sets the default requests and limits the user left unset,
// never into an invalid pair: a filled request is capped at the user's
// limit, a filled limit raised to the request. It returns each filled field
// ("limits.memory") with the value written, nil when none.
func fillResources(r *corev1.ResourceRequirements, s Settings) map[string]resource.Quantity {
	derived := derive(s)
	filled := make(map[string]resource.Quantity, len(derived.requestNames)+len(derived.limitNames))
	for _, name := range derived.requestNames {
		if _, set := r.Requests[name]; set {
			continue
		}
		q := s.DefaultRequests[name].DeepCopy()
		if lim, ok := r.Limits[name]; ok && q.Cmp(lim) > 0 {
			q = lim.DeepCopy()
		}
		if r.Requests == nil {
			r.Requests = corev1.ResourceList{}
		}
		r.Requests[name] = q
		filled[requestsField+string(name)] = q
	}
	for _, name := range derived.limitNames {
		if _, set := r.Limits[name]; set {
			continue
		}
		q := s.DefaultLimits[name].DeepCopy()
		if req, ok := r.Requests[name]; ok && q.Cmp(req) < 0 {
			q = req.DeepCopy()
		}
		if r.Limits == nil {
			r.Limits = corev1.ResourceList{}
		}
		r.Limits[name] = q
		filled[limitsField+string(name)] = q
	}
	if len(filled) == 0 {
		return nil
	}
	return filled
}

// unfillResources removes each filled field that still holds the value the
// injection wrote; a field the user has changed since is theirs and stays.
func unfillResources(r *corev1.ResourceRequirements, filled map[string]resource.Quantity) {
	for f, wrote := range filled {
		if rl, name, ok := resourceList(r, f); ok {
			if q, set := rl[name]; set && q.Cmp(wrote) == 0 {
				delete(rl, name)
			}
		}
	}
	if len(r.Requests) == 0 {
		r.Requests = nil
	}
	if len(r.Limits) == 0 {
		r.Limits = nil
	}
}

// resourceField reads a field named like "limits.memory".
func resourceField(r *corev1.ResourceRequirements, f string) (resource.Quantity, bool) {
	rl, name, ok := resourceList(r, f)
	if !ok {
		return resource.Quantity{}, false
	}
	q, set := rl[name]
	return q, set
}

// resourceList splits a field named like "limits.memory" into its list in r
// and the resource name.
func resourceList(r *corev1.ResourceRequirements, f string) (corev1.ResourceList, corev1.ResourceName, bool) {
	if n, ok := strings.CutPrefix(f, requestsField); ok && n != "" {
		return r.Requests, corev1.ResourceName(n), true
	}
	if n, ok := strings.CutPrefix(f, limitsField); ok && n != "" {
		return r.Limits, corev1.ResourceName(n), true
	}
	return nil, "", false
}

func sortedNames(rl corev1.ResourceList) []corev1.ResourceName {
	names := make([]corev1.ResourceName, 0, len(rl))
	for n := range rl {
		names = append(names, n)
	}
	sort.Slice(names, func(i, j int) bool { return names[i] < names[j] })
	return names
}
