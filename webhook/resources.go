package webhook

import (
	"sort"
	"strings"

	corev1 "k8s.io/api/core/v1"
)

const (
	requestsField = "requests."
	limitsField   = "limits."
)

// fillResources sets the default requests and limits the user left unset,
// never into an invalid pair: a filled request is capped at the user's
// limit, a filled limit raised to the request. It returns the filled fields
// ("requests.cpu", ...) in order.
func fillResources(r *corev1.ResourceRequirements, s Settings) []string {
	var filled []string
	for _, name := range sortedNames(s.DefaultRequests) {
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
		filled = append(filled, requestsField+string(name))
	}
	for _, name := range sortedNames(s.DefaultLimits) {
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
		filled = append(filled, limitsField+string(name))
	}
	sort.Strings(filled)
	return filled
}

// unfillResources removes the fields fillResources filled.
func unfillResources(r *corev1.ResourceRequirements, filled []string) {
	for _, f := range filled {
		if name, ok := strings.CutPrefix(f, requestsField); ok {
			delete(r.Requests, corev1.ResourceName(name))
		} else if name, ok := strings.CutPrefix(f, limitsField); ok {
			delete(r.Limits, corev1.ResourceName(name))
		}
	}
	if len(r.Requests) == 0 {
		r.Requests = nil
	}
	if len(r.Limits) == 0 {
		r.Limits = nil
	}
}

func sortedNames(rl corev1.ResourceList) []corev1.ResourceName {
	names := make([]corev1.ResourceName, 0, len(rl))
	for n := range rl {
		names = append(names, n)
	}
	sort.Slice(names, func(i, j int) bool { return names[i] < names[j] })
	return names
}
