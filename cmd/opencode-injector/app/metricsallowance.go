package app

import (
	"crypto/sha256"
	"encoding/hex"
	"time"

	"golang.org/x/time/rate"
	"k8s.io/apimachinery/pkg/util/cache"
)

// How many TokenReviews the metrics port may ask for tokens not in its
// answer cache.
const (
	// metricsReviewsPerSecond and metricsReviewBurst bound the
	// TokenReviews of unknown tokens, all together; past them the port
	// answers 429, so a flood of distinct bogus tokens cannot turn into
	// unbounded API calls.
	metricsReviewsPerSecond = 5
	metricsReviewBurst      = 10
	// A token the API server admitted (200) stays known for metricsKnownTTL
	// after its last review (a scraper is reviewed again every
	// metricsDecisionTTL, so it stays known while it scrapes). Its reviews
	// come out of an allowance of its own, one every
	// metricsKnownReviewEvery with a burst of metricsKnownReviewBurst, so
	// neither a flood of bogus tokens nor another token's requests can
	// starve it when its answer expires.
	metricsKnownTTL         = 10 * time.Minute
	metricsKnownReviewEvery = 10 * time.Second
	metricsKnownReviewBurst = 3
	// metricsKnownMax bounds the known tokens, and with them the reviews
	// of known tokens: at most metricsKnownMax every
	// metricsKnownReviewEvery, beside the unknown tokens' rate. Only a
	// token the API server authenticated and authorized can take a place.
	metricsKnownMax = 64
)

// reviewAllowances decides which allowance a TokenReview comes out of: the
// token's own if the API server admitted it recently, else the one
// shared by all unknown tokens.
type reviewAllowances struct {
	clock   cache.Clock
	unknown *rate.Limiter
	known   *cache.LRUExpireCache // tokenKey -> *rate.Limiter
}

func newReviewAllowances(clock cache.Clock) *reviewAllowances {
	return &reviewAllowances{
		clock:   clock,
		unknown: rate.NewLimiter(metricsReviewsPerSecond, metricsReviewBurst),
		known:   cache.NewLRUExpireCacheWithClock(metricsKnownMax, clock),
	}
}

// allow takes one review from the token's allowance, or answers false and
// how long that allowance takes to refill one review (whole seconds, for
// Retry-After).
func (r *reviewAllowances) allow(token string) (bool, time.Duration) {
	l := r.unknown
	if known, ok := r.known.Get(tokenKey(token)); ok {
		l = known.(*rate.Limiter)
	}
	if l.AllowN(r.clock.Now(), 1) {
		return true, 0
	}
	refill := time.Duration(float64(time.Second) / float64(l.Limit()))
	return false, (refill + time.Second - 1).Truncate(time.Second)
}

// admitted records that the API server authenticated the token and
// authorized what it asked: it is known for metricsKnownTTL more, keeping
// what is left of its allowance.
func (r *reviewAllowances) admitted(token string) {
	key := tokenKey(token)
	l, ok := r.known.Get(key)
	if !ok {
		l = rate.NewLimiter(rate.Every(metricsKnownReviewEvery), metricsKnownReviewBurst)
	}
	r.known.Add(key, l, metricsKnownTTL)
}

// tokenKey is the token's hash: the token itself is never kept.
func tokenKey(token string) string {
	sum := sha256.Sum256([]byte(token))
	return hex.EncodeToString(sum[:])
}
