package injection

import (
	"flag"
	"fmt"
	"sort"
	"strings"

	"github.com/angryninja/opencode-injector/contract"
	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/resource"
)

// Settings are the cluster-wide injection defaults, set by flags of `serve`
// and `inject`.
type Settings struct {
	SeedImage       string
	DefaultSecret   string
	AllowedGitHosts []string
	DefaultRequests corev1.ResourceList
	DefaultLimits   corev1.ResourceList
	// Offline: the input is a manifest injected earlier by this command,
	// with no stored object to read an injection from, so its own trusted
	// record may be kept. The webhook never sets it: a request's own record
	// is the requester's word, not the webhook's.
	Offline bool
}

// Default values of the injection flags.
const (
	DefaultSecretName   = "opencode-secret"
	DefaultRequestsFlag = "cpu=100m,memory=512Mi"
	DefaultLimitsFlag   = "memory=1Gi"
	ImageRepository     = "ghcr.io/angryninja/opencode-injector"
)

// DefaultSettings returns the flag defaults; seedImage is the injector's own
// image at its own version.
func DefaultSettings(seedImage string) Settings {
	return Settings{
		SeedImage:       seedImage,
		DefaultSecret:   DefaultSecretName,
		AllowedGitHosts: mustHosts(contract.DefaultAllowedGitHosts),
		DefaultRequests: mustResources(DefaultRequestsFlag),
		DefaultLimits:   mustResources(DefaultLimitsFlag),
	}
}

// AddFlags registers the injection flags on fs, starting from s's values.
func (s *Settings) AddFlags(fs *flag.FlagSet) {
	fs.StringVar(&s.SeedImage, "seed-image", s.SeedImage, "image of the opencode-seed init container (it must hold "+contract.SeedBinaryPath+")")
	fs.StringVar(&s.DefaultSecret, "default-secret", s.DefaultSecret, "Secret used when a Deployment has no "+contract.AnnotationSecret+" annotation")
	fs.Func("allowed-git-hosts", "comma-separated hosts (host or host:port) that repos may come from and the token may be sent to (default "+contract.DefaultAllowedGitHosts+")", func(v string) error {
		hosts, err := contract.ParseHosts(v)
		s.AllowedGitHosts = hosts
		return err
	})
	fs.Func("default-requests", "resource requests filled in where the OpenCode container sets none (default "+DefaultRequestsFlag+")", func(v string) error {
		rl, err := ParseResources(v)
		s.DefaultRequests = rl
		return err
	})
	fs.Func("default-limits", "resource limits filled in where the OpenCode container sets none (default "+DefaultLimitsFlag+")", func(v string) error {
		rl, err := ParseResources(v)
		s.DefaultLimits = rl
		return err
	})
}

// Validate reports settings no injection could succeed with.
// An empty SeedImage is valid: serve then follows its own Pod's image, and
// Mutate refuses (ErrNoSeedImage) to inject a Deployment without one.
func (s Settings) Validate() error {
	if len(s.AllowedGitHosts) == 0 {
		return fmt.Errorf("--allowed-git-hosts must name at least one host")
	}
	if msgs := validateName(s.DefaultSecret, true); len(msgs) > 0 {
		return fmt.Errorf("--default-secret %q: %s", s.DefaultSecret, strings.Join(msgs, "; "))
	}
	return nil
}

// ParseResources parses "cpu=100m,memory=256Mi".
func ParseResources(v string) (corev1.ResourceList, error) {
	rl := corev1.ResourceList{}
	for _, kv := range strings.Split(v, ",") {
		kv = strings.TrimSpace(kv)
		if kv == "" {
			continue
		}
		name, val, ok := strings.Cut(kv, "=")
		if !ok {
			return nil, fmt.Errorf("%q: want name=quantity, like cpu=100m", kv)
		}
		q, err := resource.ParseQuantity(strings.TrimSpace(val))
		if err != nil {
			return nil, fmt.Errorf("%q: %w", kv, err)
		}
		rl[corev1.ResourceName(strings.TrimSpace(name))] = q
	}
	return rl, nil
}

// FormatResources is the inverse of ParseResources, in name order.
func FormatResources(rl corev1.ResourceList) string {
	names := make([]string, 0, len(rl))
	for n := range rl {
		names = append(names, string(n))
	}
	sort.Strings(names)
	parts := make([]string, len(names))
	for i, n := range names {
		q := rl[corev1.ResourceName(n)]
		parts[i] = n + "=" + q.String()
	}
	return strings.Join(parts, ",")
}

func mustHosts(v string) []string {
	h, err := contract.ParseHosts(v)
	if err != nil {
		panic(err)
	}
	return h
}

func mustResources(v string) corev1.ResourceList {
	rl, err := ParseResources(v)
	if err != nil {
		panic(err)
	}
	return rl
}
