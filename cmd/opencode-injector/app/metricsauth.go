package app

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"net/http"
	"strconv"
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
	// answer goes first. An entry is a 64-byte key and a status code,
	// whatever the request, so the cache holds at most a few hundred KiB
	// (expired entries stay until read or pushed out, within that bound).
	metricsDecisionsMax = 1024
	// metricsPathMax is the longest path reviewed; a longer one is
	// answered 414 before any review (the metrics port serves /metrics).
	metricsPathMax = 1024
)

// metricsAuthorizer admits a request to the metrics server when the API
// server authenticates its bearer token (a TokenReview) and authorizes
// that user to GET the path (a SubjectAccessReview), which is what
// controller-runtime's metrics filters do. Those filters import
// k8s.io/apiserver, which nearly doubles this binary's start-up memory; the
// seed is the same binary and counts every MiB against its limit, so the two
// reviews are asked here with client-go, and their answers cached.
type metricsAuthorizer struct {
	clients   kubernetes.Interface
	decisions *cache.LRUExpireCache // decisionKey -> int (a status code, nothing of the request)
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
			http.Error(w, "Unauthorized: send a bearer token allowed to GET /metrics", http.StatusUnauthorized)
			return
		}
		if len(r.URL.Path) > metricsPathMax {
			http.Error(w, fmt.Sprintf("URI too long: the metrics port reviews paths of up to %d bytes", metricsPathMax), http.StatusRequestURITooLong)
			return
		}
		code, retryAfter := a.decide(r.Context(), log, token, r.URL.Path, strings.ToLower(r.Method))
		switch code {
		case http.StatusOK:
			next.ServeHTTP(w, r)
		case http.StatusTooManyRequests:
			w.Header().Set("Retry-After", strconv.Itoa(int(retryAfter/time.Second)))
			http.Error(w, "Too many token reviews: retry later", code)
		case http.StatusUnauthorized:
			http.Error(w, "Unauthorized", code)
		case http.StatusForbidden:
			http.Error(w, "Forbidden: this token may not "+r.Method+" "+r.URL.Path, code)
		default:
			http.Error(w, "the token could not be reviewed", code)
		}
	}), nil
}

// decisionKey keys the cache by a hash of the token (the token itself is
// never kept) and the attributes reviewed.
func decisionKey(token, path, verb string) string {
	// One fixed-size key: a path of any length costs the cache 64 bytes.
	sum := sha256.Sum256([]byte(token + "\x00" + verb + "\x00" + path))
	return hex.EncodeToString(sum[:])
}

// decide answers a status code from the cache, or asks the API server and
// caches its answer; a review that failed is not cached. retryAfter is set
// with 429: when the allowance that refused has a review again.
func (a *metricsAuthorizer) decide(ctx context.Context, log logr.Logger, token, path, verb string) (code int, retryAfter time.Duration) {
	key := decisionKey(token, path, verb)
	if c, ok := a.decisions.Get(key); ok {
		return c.(int), 0
	}
	if ok, wait := a.reviews.allow(token); !ok {
		return http.StatusTooManyRequests, wait
	}
	code, err := a.review(ctx, token, path, verb)
	if err != nil {
		log.Error(err, "review a token for the metrics port")
		return http.StatusInternalServerError, 0
	}
	// Only a token allowed what it asked takes a place among the known:
	// any authenticated token (a minted ServiceAccount's) could otherwise
	// push the scraper out.
	if code == http.StatusOK {
		a.reviews.admitted(token)
	}
	a.decisions.Add(key, code, metricsDecisionTTL)
	return code, 0
}

// review asks the API server who the token is and whether it may verb
// path, and answers 200, 401 or 403.
func (a *metricsAuthorizer) review(ctx context.Context, token, path, verb string) (int, error) {
	tr, err := a.clients.AuthenticationV1().TokenReviews().Create(ctx, &authenticationv1.TokenReview{Spec: authenticationv1.TokenReviewSpec{Token: token}}, metav1.CreateOptions{})
	if err != nil {
		return 0, fmt.Errorf("token review: %w", err)
	}
	if !tr.Status.Authenticated {
		return http.StatusUnauthorized, nil
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
		return 0, fmt.Errorf("access review of %s: %w", user.Username, err)
	}
	if !sar.Status.Allowed {
		return http.StatusForbidden, nil
	}
	return http.StatusOK, nil
}
