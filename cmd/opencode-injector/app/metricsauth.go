package app

import (
	"net/http"
	"strings"

	"github.com/go-logr/logr"
	authenticationv1 "k8s.io/api/authentication/v1"
	authorizationv1 "k8s.io/api/authorization/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/rest"
	metricsserver "sigs.k8s.io/controller-runtime/pkg/metrics/server"
)

// metricsAuth is the metrics server's filter: a request passes when the API
// server authenticates its bearer token (a TokenReview) and authorizes that
// user to GET the path (a SubjectAccessReview), which is what
// controller-runtime's metrics filters do. Those filters import
// k8s.io/apiserver, which nearly doubles this binary's start-up memory; the
// seed is the same binary and counts every MiB against its limit, so the two
// reviews are asked here with client-go. A scrape every 30 s costs two small
// API requests; nothing is cached.
func metricsAuth(cfg *rest.Config, httpClient *http.Client) (metricsserver.Filter, error) {
	cs, err := kubernetes.NewForConfigAndClient(cfg, httpClient)
	if err != nil {
		return nil, err
	}
	return func(log logr.Logger, next http.Handler) (http.Handler, error) {
		return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			token, ok := strings.CutPrefix(r.Header.Get("Authorization"), "Bearer ")
			if !ok || token == "" {
				http.Error(w, "Unauthorized: send a bearer token allowed to GET "+r.URL.Path, http.StatusUnauthorized)
				return
			}
			review, err := cs.AuthenticationV1().TokenReviews().Create(r.Context(), &authenticationv1.TokenReview{Spec: authenticationv1.TokenReviewSpec{Token: token}}, metav1.CreateOptions{})
			if err != nil {
				log.Error(err, "token review for /metrics")
				http.Error(w, "the token could not be reviewed", http.StatusInternalServerError)
				return
			}
			if !review.Status.Authenticated {
				http.Error(w, "Unauthorized", http.StatusUnauthorized)
				return
			}
			user := review.Status.User
			extra := map[string]authorizationv1.ExtraValue{}
			for k, v := range user.Extra {
				extra[k] = authorizationv1.ExtraValue(v)
			}
			access, err := cs.AuthorizationV1().SubjectAccessReviews().Create(r.Context(), &authorizationv1.SubjectAccessReview{Spec: authorizationv1.SubjectAccessReviewSpec{
				User: user.Username, Groups: user.Groups, UID: user.UID, Extra: extra,
				NonResourceAttributes: &authorizationv1.NonResourceAttributes{Path: r.URL.Path, Verb: strings.ToLower(r.Method)},
			}}, metav1.CreateOptions{})
			if err != nil {
				log.Error(err, "access review for /metrics", "user", user.Username)
				http.Error(w, "the access could not be reviewed", http.StatusInternalServerError)
				return
			}
			if !access.Status.Allowed {
				http.Error(w, "Forbidden: "+user.Username+" may not GET "+r.URL.Path, http.StatusForbidden)
				return
			}
			next.ServeHTTP(w, r)
		}), nil
	}, nil
}
