package injection

import (
	"slices"
	"strconv"
	"strings"
	"sync/atomic"

	corev1 "k8s.io/api/core/v1"

	"github.com/angryninja/opencode-injector/contract"
)

// derived is what the injection computes from the settings alone, once
// per settings value instead of once per review. Concurrent reviews share
// it; nothing writes it after derive, and what it hands out holds no
// pointers (values and strings, copied into each review's own lists).
type derived struct {
	// What it was derived from: the seed image, the allowed hosts and the
	// names of the default resources.
	seedImage                string
	hosts                    []string
	requestNames, limitNames []corev1.ResourceName // sorted

	seedHosts      string // the seed's allowed hosts, comma-separated
	seedPullPolicy corev1.PullPolicy
	credentialEnv  []corev1.EnvVar // each host's credential helper pair, in order
}

// lastDerived is the one settings value reviews are made with (serve's
// flags); another value replaces it.
var lastDerived atomic.Pointer[derived]

// derive is s's derived values, computed again only when s differs from
// what the last ones were derived from.
func derive(s Settings) *derived {
	if d := lastDerived.Load(); d != nil && d.seedImage == s.SeedImage && slices.Equal(d.hosts, s.AllowedGitHosts) &&
		sameNames(d.requestNames, s.DefaultRequests) && sameNames(d.limitNames, s.DefaultLimits) {
		return d
	}
	d := &derived{
		seedImage:      s.SeedImage,
		hosts:          slices.Clone(s.AllowedGitHosts),
		requestNames:   sortedNames(s.DefaultRequests),
		limitNames:     sortedNames(s.DefaultLimits),
		seedHosts:      strings.Join(s.AllowedGitHosts, ","),
		seedPullPolicy: pullPolicy(s.SeedImage),
		credentialEnv:  newCredentialEnv(s.AllowedGitHosts),
	}
	lastDerived.Store(d)
	return d
}

// sameNames tells whether rl's resource names are names.
func sameNames(names []corev1.ResourceName, rl corev1.ResourceList) bool {
	if len(names) != len(rl) {
		return false
	}
	for _, n := range names {
		if _, ok := rl[n]; !ok {
			return false
		}
	}
	return true
}

// credentialEnv is the GIT_CONFIG_KEY_<i> and GIT_CONFIG_VALUE_<i> pairs
// that scope the credential helper to each of hosts, from the derived
// values when hosts are the settings' (a record may name others).
func credentialEnv(hosts []string) []corev1.EnvVar {
	if d := lastDerived.Load(); d != nil && slices.Equal(d.hosts, hosts) {
		return d.credentialEnv
	}
	return newCredentialEnv(hosts)
}

func newCredentialEnv(hosts []string) []corev1.EnvVar {
	env := make([]corev1.EnvVar, 0, 2*len(hosts))
	for i, h := range hosts {
		n := strconv.Itoa(i)
		env = append(env,
			corev1.EnvVar{Name: contract.EnvGitConfigKey + n, Value: "credential.https://" + h + ".helper"},
			corev1.EnvVar{Name: contract.EnvGitConfigValue + n, Value: credentialHelper})
	}
	return env
}
