package webhook

import (
	"github.com/prometheus/client_golang/prometheus"
	"sigs.k8s.io/controller-runtime/pkg/metrics"
)

var mutations = prometheus.NewCounterVec(prometheus.CounterOpts{
	Name: "opencode_injector_mutations_total",
	Help: "Admission reviews of labeled Deployments, by outcome (injected, unchanged, un-injected, denied).",
}, []string{"outcome"})

func init() {
	metrics.Registry.MustRegister(mutations)
	for _, o := range []string{OutcomeInjected, OutcomeUnchanged, OutcomeUninjected, OutcomeDenied, OutcomeError} {
		mutations.WithLabelValues(o)
	}
}
