package app

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"net/http/httptest"
	"slices"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/go-logr/logr"
	authenticationv1 "k8s.io/api/authentication/v1"
	authorizationv1 "k8s.io/api/authorization/v1"
	"k8s.io/apimachinery/pkg/util/cache"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/rest"
	clocktesting "k8s.io/utils/clock/testing"
	metricsserver "sigs.k8s.io/controller-runtime/pkg/metrics/server"
)

// countingAPIServer answers TokenReviews and SubjectAccessReviews as a
// kube-apiserver does, over HTTP on 127.0.0.1, and counts them. Tokens:
// "scraper" and "other-scraper" are users allowed to GET /metrics;
// "group-scraper" is allowed only through its group, UID and extra (as a
// binding to a group would be, and a scoped token); "stranger" and any
// "minted-…" are users who may not; "unreviewable" fails its TokenReview
// and "unauthorizable" its SubjectAccessReview; any other token is unknown.
type countingAPIServer struct {
	tokenReviews, accessReviews atomic.Int64
}

// wantReviews fails t unless the server has answered tokenReviews
// TokenReviews and accessReviews SubjectAccessReviews so far; what names
// the requests that cost them.
func (s *countingAPIServer) wantReviews(t *testing.T, tokenReviews, accessReviews int64, what string) {
	t.Helper()
	if tr, sar := s.tokenReviews.Load(), s.accessReviews.Load(); tr != tokenReviews || sar != accessReviews {
		t.Errorf("%s cost %d TokenReviews and %d SubjectAccessReviews, want %d and %d", what, tr, sar, tokenReviews, accessReviews)
	}
}

// groupScraper is the user "group-scraper" is.
var groupScraper = authenticationv1.UserInfo{Username: "group-scraper", UID: "u-1", Groups: []string{"metrics-readers"}, Extra: map[string]authenticationv1.ExtraValue{"scope": {"metrics"}}}

func (s *countingAPIServer) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	w.Header().Set("Content-Type", "application/json")
	switch r.URL.Path {
	case "/apis/authentication.k8s.io/v1/tokenreviews":
		s.tokenReviews.Add(1)
		var tr authenticationv1.TokenReview
		_ = json.NewDecoder(r.Body).Decode(&tr)
		switch tok := tr.Spec.Token; {
		case tok == "unreviewable":
			http.Error(w, "etcd is down", http.StatusInternalServerError)
			return
		case tok == "group-scraper":
			tr.Status = authenticationv1.TokenReviewStatus{Authenticated: true, User: groupScraper}
		case tok == "scraper", tok == "other-scraper", tok == "stranger", tok == "unauthorizable", strings.HasPrefix(tok, "minted-"):
			tr.Status = authenticationv1.TokenReviewStatus{Authenticated: true, User: authenticationv1.UserInfo{Username: tok}}
		}
		_ = json.NewEncoder(w).Encode(tr)
	case "/apis/authorization.k8s.io/v1/subjectaccessreviews":
		s.accessReviews.Add(1)
		var sar authorizationv1.SubjectAccessReview
		_ = json.NewDecoder(r.Body).Decode(&sar)
		spec := sar.Spec
		if spec.User == "unauthorizable" {
			http.Error(w, "the authorizer webhook is down", http.StatusInternalServerError)
			return
		}
		byGroup := slices.Contains(spec.Groups, groupScraper.Groups[0]) && spec.UID == groupScraper.UID && slices.Equal([]string(spec.Extra["scope"]), groupScraper.Extra["scope"])
		sar.Status.Allowed = (spec.User == "scraper" || spec.User == "other-scraper" || byGroup) && spec.NonResourceAttributes != nil &&
			spec.NonResourceAttributes.Path == "/metrics" && spec.NonResourceAttributes.Verb == "get"
		_ = json.NewEncoder(w).Encode(sar)
	default:
		http.NotFound(w, r)
	}
}

// jsonConfig is a client config of the counting server, which speaks JSON;
// client-go's own rate limit is lifted, so only the authorizer's limits
// count.
func jsonConfig(host string) *rest.Config {
	return &rest.Config{Host: host, QPS: 1000, Burst: 1000, ContentConfig: rest.ContentConfig{ContentType: "application/json", AcceptContentTypes: "application/json"}}
}

func metricsFilter(t *testing.T) (http.Handler, *countingAPIServer) {
	t.Helper()
	api := &countingAPIServer{}
	srv := httptest.NewServer(api)
	t.Cleanup(srv.Close)
	filter, err := metricsAuth(jsonConfig(srv.URL), srv.Client())
	if err != nil {
		t.Fatal(err)
	}
	return metricsHandler(t, filter), api
}

// metricsHandler is the filter in front of a handler that serves metrics.
func metricsHandler(t *testing.T, filter metricsserver.Filter) http.Handler {
	t.Helper()
	h, err := filter(logr.Discard(), http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) { _, _ = w.Write([]byte("metrics")) }))
	if err != nil {
		t.Fatal(err)
	}
	return h
}

// fakeClockAuthorizer is an authorizer of a counting API server whose
// cache and allowances read the time from a fake clock.
func fakeClockAuthorizer(t *testing.T) (*metricsAuthorizer, *countingAPIServer, *clocktesting.FakeClock) {
	t.Helper()
	api := &countingAPIServer{}
	srv := httptest.NewServer(api)
	t.Cleanup(srv.Close)
	cs, err := kubernetes.NewForConfigAndClient(jsonConfig(srv.URL), srv.Client())
	if err != nil {
		t.Fatal(err)
	}
	now := clocktesting.NewFakeClock(time.Now())
	return newMetricsAuthorizer(cs, now), api, now
}

func scrape(h http.Handler, path, token string) int {
	req := httptest.NewRequest(http.MethodGet, path, nil)
	if token != "" {
		req.Header.Set("Authorization", "Bearer "+token)
	}
	rec := httptest.NewRecorder()
	h.ServeHTTP(rec, req)
	return rec.Code
}

// floodOfBogusTokens scrapes with n distinct tokens the API server does
// not know, named after prefix, and counts the answers 429; any answer but
// 401 or 429 fails the test.
func floodOfBogusTokens(t *testing.T, h http.Handler, prefix string, n int) (limited int) {
	t.Helper()
	for i := range n {
		switch code := scrape(h, "/metrics", fmt.Sprintf("%s-%d", prefix, i)); code {
		case http.StatusTooManyRequests:
			limited++
		case http.StatusUnauthorized:
		default:
			t.Fatalf("bogus token: %d", code)
		}
	}
	return limited
}

// Repeated scrapes cost the API server no more reviews than the first:
// answers (allowed, forbidden, unauthenticated) are cached by token and
// attributes, and another path or token is reviewed on its own.
func TestMetricsAnswersAreCached(t *testing.T) {
	h, api := metricsFilter(t)
	for range 20 {
		for token, want := range map[string]int{"scraper": http.StatusOK, "stranger": http.StatusForbidden, "bogus": http.StatusUnauthorized, "": http.StatusUnauthorized} {
			if got := scrape(h, "/metrics", token); got != want {
				t.Fatalf("token %q: %d, want %d", token, got, want)
			}
		}
	}
	api.wantReviews(t, 3, 2, "60 scrapes")
	if got := scrape(h, "/debug", "scraper"); got != http.StatusForbidden {
		t.Errorf("the scraper's cached answer for /metrics was reused for /debug: %d", got)
	}
	api.wantReviews(t, 4, 3, "another path, reviewed on its own,")
}

// A flood of distinct bogus tokens costs at most the burst of TokenReviews
// (the rate refills metricsReviewsPerSecond a second), then is answered
// 429 with Retry-After; a cached token still passes.
func TestUnknownTokensAreRateLimited(t *testing.T) {
	h, api := metricsFilter(t)
	if got := scrape(h, "/metrics", "scraper"); got != http.StatusOK {
		t.Fatalf("scraper: %d", got)
	}
	limited := floodOfBogusTokens(t, h, "bogus", 200)
	// The test runs well under a second: at most the burst, plus what the
	// rate refills meanwhile.
	if tr := api.tokenReviews.Load(); tr > metricsReviewBurst+metricsReviewsPerSecond {
		t.Errorf("200 bogus tokens cost %d TokenReviews, want at most %d", tr, metricsReviewBurst+metricsReviewsPerSecond)
	}
	if limited < 200-metricsReviewBurst-metricsReviewsPerSecond {
		t.Errorf("only %d of 200 bogus tokens were answered 429", limited)
	}
	req := httptest.NewRequest(http.MethodGet, "/metrics", nil)
	req.Header.Set("Authorization", "Bearer bogus-again")
	rec := httptest.NewRecorder()
	h.ServeHTTP(rec, req)
	if rec.Code != http.StatusTooManyRequests || rec.Header().Get("Retry-After") == "" {
		t.Errorf("past the limit: %d, Retry-After %q", rec.Code, rec.Header().Get("Retry-After"))
	}
	if got := scrape(h, "/metrics", "scraper"); got != http.StatusOK {
		t.Errorf("a cached token was limited too: %d", got)
	}
}

// The cache is bounded in size (the least recently used answer goes first)
// and in time (an answer is reviewed again after metricsDecisionTTL).
func TestMetricsCacheIsBoundedInSizeAndTime(t *testing.T) {
	a, api, now := fakeClockAuthorizer(t)
	a.decisions = cache.NewLRUExpireCacheWithClock(2, now)
	reviewsFor := func(tokens ...string) int64 {
		before := api.tokenReviews.Load()
		for _, tok := range tokens {
			a.decide(context.Background(), logr.Discard(), tok, "/metrics", "get")
		}
		return api.tokenReviews.Load() - before
	}
	if n := reviewsFor("scraper", "stranger", "scraper", "stranger"); n != 2 {
		t.Fatalf("two tokens cost %d reviews, want 2", n)
	}
	if n := reviewsFor("bogus", "scraper"); n != 2 {
		t.Errorf("a third token did not push the least recently used out of a cache of 2: %d reviews, want 2", n)
	}
	now.Step(metricsDecisionTTL - time.Second)
	if n := reviewsFor("scraper"); n != 0 {
		t.Errorf("an answer was forgotten before its time: %d reviews", n)
	}
	now.Step(2 * time.Second)
	if n := reviewsFor("scraper"); n != 1 {
		t.Errorf("an answer outlived metricsDecisionTTL: %d reviews, want 1", n)
	}
}

// A cached answer costs the same whatever the request's path: a bogus
// token with megabyte-long paths cannot grow the cache past its entries'
// fixed size. And no two requests share a key unless token, verb and path
// are all equal.
func TestMetricsCacheKeyIsFixedSize(t *testing.T) {
	long := "/" + string(make([]byte, 1<<20))
	if k := decisionKey("bogus", long, "get"); len(k) != 64 {
		t.Errorf("a 1 MiB path makes a key of %d bytes, want 64", len(k))
	}
	keys := map[string]bool{}
	for _, c := range [][3]string{{"a", "/metrics", "get"}, {"b", "/metrics", "get"}, {"a", "/other", "get"}, {"a", "/metrics", "post"}, {"a\x00/metrics", "", "get"}} {
		keys[decisionKey(c[0], c[1], c[2])] = true
	}
	if len(keys) != 5 {
		t.Errorf("distinct requests share a key: %d keys for 5", len(keys))
	}
}

// Issue 18, finding 7: a flood of distinct bogus tokens, far past the
// unknown tokens' limit and across every expiry of the real scraper's
// cached answer, does not starve the scraper. A token the API server
// authenticated is reviewed again out of an allowance of its own, and only
// such a token takes a place among the known (the flood reviews more bogus
// tokens a minute than there are places): the scraper, scraping every 30 s,
// keeps getting 200, the bogus tokens 429, and the TokenReviews stay within
// the rate.
func TestAFloodOfBogusTokensDoesNotStarveTheScraper(t *testing.T) {
	if metricsReviewsPerSecond*metricsDecisionTTL/time.Second <= metricsKnownMax {
		t.Fatal("a minute of the flood must review more bogus tokens than there are places for known tokens")
	}
	a, api, now := fakeClockAuthorizer(t)
	h := metricsHandler(t, a.filter)
	// The scraper scraped before the flood began.
	if got := scrape(h, "/metrics", "scraper"); got != http.StatusOK {
		t.Fatalf("scraper: %d", got)
	}
	const seconds, floodPerSecond, scrapeEvery = 3 * 60, 4 * metricsReviewsPerSecond, 30
	scrapes, bogus, limited := 1, 0, 0
	for second := range seconds {
		limited += floodOfBogusTokens(t, h, fmt.Sprintf("bogus-%d", second), floodPerSecond)
		bogus += floodPerSecond
		// The scrape comes when the flood has spent the second's allowance.
		if second%scrapeEvery == 0 {
			scrapes++
			if got := scrape(h, "/metrics", "scraper"); got != http.StatusOK {
				t.Fatalf("at %d s of a flood of bogus tokens the scraper got %d, want 200", second, got)
			}
		}
		now.Step(time.Second)
	}
	reviewed := int64(metricsReviewBurst + metricsReviewsPerSecond*seconds)
	if tr, most := api.tokenReviews.Load(), reviewed+int64(scrapes); tr > most {
		t.Errorf("%d bogus tokens in %d s cost %d TokenReviews, want at most %d", bogus, seconds, tr, most)
	}
	if int64(limited) < int64(bogus)-reviewed {
		t.Errorf("%d of %d bogus tokens answered 429, want at least %d", limited, bogus, int64(bogus)-reviewed)
	}
}

// A known token's own allowance is bounded too, and is its own: a scraper
// asking for distinct paths costs at most metricsKnownReviewBurst reviews,
// then 429 with a Retry-After of its allowance's refill (the unknown
// tokens': 1 s), and neither it nor the unknown tokens' flood takes another
// scraper's allowance.
func TestAKnownTokensAllowanceIsItsOwn(t *testing.T) {
	a, api, now := fakeClockAuthorizer(t)
	h := metricsHandler(t, a.filter)
	for _, token := range []string{"scraper", "other-scraper"} {
		if got := scrape(h, "/metrics", token); got != http.StatusOK {
			t.Fatalf("%s: %d", token, got)
		}
	}
	floodOfBogusTokens(t, h, "bogus", metricsReviewBurst)
	if got := retryAfter(h, "bogus-spent"); got != "1" {
		t.Errorf("an unknown token refused: Retry-After %q, want 1 (the unknown allowance refills %d a second)", got, metricsReviewsPerSecond)
	}
	before := api.tokenReviews.Load()
	limited := 0
	for i := range 50 {
		switch code := scrape(h, fmt.Sprintf("/metrics/%d", i), "other-scraper"); code {
		case http.StatusTooManyRequests:
			limited++
		case http.StatusForbidden:
		default:
			t.Fatalf("other-scraper: %d", code)
		}
	}
	if tr := api.tokenReviews.Load() - before; tr != metricsKnownReviewBurst {
		t.Errorf("50 paths of a known token cost %d TokenReviews, want %d", tr, metricsKnownReviewBurst)
	}
	if limited != 50-(metricsKnownReviewBurst) {
		t.Errorf("%d of 50 paths of a known token answered 429, want %d", limited, 50-(metricsKnownReviewBurst))
	}
	if got, want := retryAfter(h, "other-scraper"), fmt.Sprint(int(metricsKnownReviewEvery/time.Second)); got != want {
		t.Errorf("a known token refused: Retry-After %q, want %s (its allowance refills one every %s)", got, want, metricsKnownReviewEvery)
	}
	now.Step(metricsDecisionTTL + time.Second)
	floodOfBogusTokens(t, h, "bogus-again", 2*metricsReviewBurst)
	if got := scrape(h, "/metrics", "scraper"); got != http.StatusOK {
		t.Errorf("the scraper got %d after another token spent its allowance, want 200", got)
	}
}

// retryAfter scrapes a path never asked before with token and answers the
// Retry-After of its 429.
func retryAfter(h http.Handler, token string) string {
	req := httptest.NewRequest(http.MethodGet, "/metrics/never-asked", nil)
	req.Header.Set("Authorization", "Bearer "+token)
	rec := httptest.NewRecorder()
	h.ServeHTTP(rec, req)
	if rec.Code != http.StatusTooManyRequests {
		return fmt.Sprintf("answer %d, not 429", rec.Code)
	}
	return rec.Header().Get("Retry-After")
}

// Issue 18 review, finding 2: only a token answered 200 (authenticated and
// authorized) takes a place among the known. A user who can mint
// ServiceAccount tokens mints more than there are places, each answered
// 403; the scraper keeps its place, and a flood of bogus tokens across
// five minutes (every expiry of its answer) does not starve it.
func TestOnlyAdmittedTokensBecomeKnown(t *testing.T) {
	a, _, now := fakeClockAuthorizer(t)
	h := metricsHandler(t, a.filter)
	if got := scrape(h, "/metrics", "scraper"); got != http.StatusOK {
		t.Fatal(got)
	}
	// The minted tokens come within the unknown allowance (5 a second).
	for i := 0; i < 2*metricsKnownMax; {
		if scrape(h, "/metrics", fmt.Sprintf("minted-%d", i)) == http.StatusForbidden {
			i++
		} else {
			now.Step(200 * time.Millisecond)
		}
	}
	now.Step(metricsDecisionTTL) // the scraper's answer expires
	for s := range 300 {
		floodOfBogusTokens(t, h, fmt.Sprintf("bogus-%d", s), 20)
		if s%30 == 0 {
			if got := scrape(h, "/metrics", "scraper"); got != http.StatusOK {
				t.Fatalf("at %d s, after %d minted tokens answered 403 and a flood, the scraper got %d, want 200", s, 2*metricsKnownMax, got)
			}
		}
		now.Step(time.Second)
	}
}

// Issue 18 review, finding 1: a cached answer holds a status code and
// nothing of the request (no path, no user), so an authenticated token
// asking for many long paths cannot grow the cache past its entries' fixed
// size; a path past metricsPathMax is refused 414 before any review, and
// the 403's message echoes at most that much.
func TestMetricsCacheHoldsNoPartOfTheRequest(t *testing.T) {
	a, api, _ := fakeClockAuthorizer(t)
	h := metricsHandler(t, a.filter)
	longest := "/" + strings.Repeat("a", metricsPathMax-1)
	req := httptest.NewRequest(http.MethodGet, longest, nil)
	req.Header.Set("Authorization", "Bearer stranger")
	rec := httptest.NewRecorder()
	h.ServeHTTP(rec, req)
	if rec.Code != http.StatusForbidden || rec.Body.Len() > metricsPathMax+100 {
		t.Fatalf("a path of %d bytes: %d, %d bytes of answer", metricsPathMax, rec.Code, rec.Body.Len())
	}
	keys := a.decisions.Keys()
	if len(keys) != 1 {
		t.Fatalf("%d cached answers, want 1", len(keys))
	}
	for _, k := range keys {
		v, _ := a.decisions.Get(k)
		if _, ok := v.(int); !ok {
			t.Errorf("a cached answer is a %T, want the status code alone", v)
		}
	}
	before := api.tokenReviews.Load()
	if got := scrape(h, longest+"a", "stranger"); got != http.StatusRequestURITooLong {
		t.Errorf("a path of %d bytes: %d, want 414", metricsPathMax+1, got)
	}
	if api.tokenReviews.Load() != before || len(a.decisions.Keys()) != 1 {
		t.Error("a path past the bound was reviewed or cached")
	}
}

// A review that fails is answered 500, never 200, and is not cached: the
// next request asks again.
func TestAFailedReviewIsNotAnAnswer(t *testing.T) {
	h, api := metricsFilter(t)
	for _, token := range []string{"unreviewable", "unauthorizable"} {
		for range 2 {
			if got := scrape(h, "/metrics", token); got != http.StatusInternalServerError {
				t.Errorf("%s: %d, want 500", token, got)
			}
		}
	}
	api.wantReviews(t, 4, 2, "failed reviews, never cached,")
}

// The access review asks for the user the token is, whole: a scraper
// allowed only through its group (with its UID and extra) gets 200.
func TestTheAccessReviewCarriesTheWholeUser(t *testing.T) {
	h, _ := metricsFilter(t)
	if got := scrape(h, "/metrics", "group-scraper"); got != http.StatusOK {
		t.Errorf("a scraper allowed through its group, UID and extra: %d, want 200", got)
	}
}
