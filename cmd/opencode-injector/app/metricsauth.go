package app

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"net/http"
	"strings"
	"time"

	"github.com/go-logr/logr"
	authenticationv1 "k8s.io/api/authentication/v1"
	authorizationv1 "k8s.io/api/authorization/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/cache"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/rest"
	"k8s.io/utils/clock"
	metricsserver "sigs.k8s.io/controller-runtime/pkg/metrics/server"
)

// How the metrics port's answers are cached (metricsallowance.go bounds
// the reviews of tokens not in the cache).
const (
	// metricsDecisionTTL is how long an answer for a token stays valid: a
	// scrape every 30 s costs the API server two reviews a minute, and a
	// revoked token or binding takes effect within it.
	metricsDecisionTTL = time.Minute
	// metricsDecisionsMax bounds the cache; the least recently used
	// answer goes first.
	metricsDecisionsMax = 1024
)

// decision is the answer for one token, path and verb.
type decision struct {
	code    int
	message string
}

// metricsAuthorizer admits a request to the metrics server when the API
// server authenticates its bearer token (a TokenReview) and authorizes
// that user to GET the path (a SubjectAccessReview), which is what
// controller-runtime's metrics filters do. Those filters import
// k8s.io/apiserver, which nearly doubles this binary's start-up memory; the
// seed is the same binary and counts every MiB against its limit, so the two
// reviews are asked here with client-go, and their answers cached.
type metricsAuthorizer struct {
	clients   kubernetes.Interface
	decisions *cache.LRUExpireCache // decisionKey -> decision
	reviews   *reviewAllowances     // TokenReviews of tokens not in the cache
}

// metricsAuth is the metrics server's filter provider.
func metricsAuth(cfg *rest.Config, httpClient *http.Client) (metricsserver.Filter, error) {
	cs, err := kubernetes.NewForConfigAndClient(cfg, httpClient)
	if err != nil {
		return nil, err
	}
	return newMetricsAuthorizer(cs, clock.RealClock{}).filter, nil
}

// newMetricsAuthorizer reads the time for its cache and allowances from
// clock (a test's fake clock steps past an answer's expiry).
func newMetricsAuthorizer(clients kubernetes.Interface, clock cache.Clock) *metricsAuthorizer {
	return &metricsAuthorizer{
		clients:   clients,
		decisions: cache.NewLRUExpireCacheWithClock(metricsDecisionsMax, clock),
		reviews:   newReviewAllowances(clock),
	}
}

// filter is the metrics server's filter.
func (a *metricsAuthorizer) filter(log logr.Logger, next http.Handler) (http.Handler, error) {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		token, ok := strings.CutPrefix(r.Header.Get("Authorization"), "Bearer ")
		if !ok || token == "" {
			http.Error(w, "Unauthorized: send a bearer token allowed to GET "+r.URL.Path, http.StatusUnauthorized)
			return
		}
		d := a.decide(r.Context(), log, token, r.URL.Path, strings.ToLower(r.Method))
		if d.code == http.StatusTooManyRequests {
			w.Header().Set("Retry-After", "1")
		}
		if d.code != http.StatusOK {
			http.Error(w, d.message, d.code)
			return
		}
		next.ServeHTTP(w, r)
	}), nil
}

// decisionKey keys the cache by a hash of the token (the token itself is
// never kept) and the attributes reviewed.
func decisionKey(token, path, verb string) string {
	// One fixed-size key: a path of any length costs the cache 64 bytes.
	sum := sha256.Sum256([]byte(token + "\x00" + verb + "\x00" + path))
	return hex.EncodeToString(sum[:])
}

// decide answers from the cache, or asks the API server and caches its
// answer; a review that failed is not cached.
func (a *metricsAuthorizer) decide(ctx context.Context, log logr.Logger, token, path, verb string) decision {
	key := decisionKey(token, path, verb)
	if d, ok := a.decisions.Get(key); ok {
		return d.(decision)
	}
	if !a.reviews.allow(token) {
		return decision{http.StatusTooManyRequests, "Too many token reviews: retry later"}
	}
	d, err := a.review(ctx, token, path, verb)
	if err != nil {
		log.Error(err, "review a token for the metrics port", "path", path)
		return decision{http.StatusInternalServerError, "the token could not be reviewed"}
	}
	// review answers 401 only for a token the API server did not
	// authenticate; any other answer makes the token known.
	if d.code != http.StatusUnauthorized {
		a.reviews.authenticated(token)
	}
	a.decisions.Add(key, d, metricsDecisionTTL)
	return d
}

// review asks the API server who the token is and whether it may verb path.
func (a *metricsAuthorizer) review(ctx context.Context, token, path, verb string) (decision, error) {
	tr, err := a.clients.AuthenticationV1().TokenReviews().Create(ctx, &authenticationv1.TokenReview{Spec: authenticationv1.TokenReviewSpec{Token: token}}, metav1.CreateOptions{})
	if err != nil {
		return decision{}, fmt.Errorf("token review: %w", err)
	}
	if !tr.Status.Authenticated {
		return decision{http.StatusUnauthorized, "Unauthorized"}, nil
	}
	user := tr.Status.User
	extra := make(map[string]authorizationv1.ExtraValue, len(user.Extra))
	for k, v := range user.Extra {
		extra[k] = authorizationv1.ExtraValue(v)
	}
	sar, err := a.clients.AuthorizationV1().SubjectAccessReviews().Create(ctx, &authorizationv1.SubjectAccessReview{Spec: authorizationv1.SubjectAccessReviewSpec{
		User: user.Username, Groups: user.Groups, UID: user.UID, Extra: extra,
		NonResourceAttributes: &authorizationv1.NonResourceAttributes{Path: path, Verb: verb},
	}}, metav1.CreateOptions{})
	if err != nil {
		return decision{}, fmt.Errorf("access review of %s: %w", user.Username, err)
	}
	if !sar.Status.Allowed {
		return decision{http.StatusForbidden, "Forbidden: " + user.Username + " may not " + strings.ToUpper(verb) + " " + path}, nil
	}
	return decision{http.StatusOK, ""}, nil
}
