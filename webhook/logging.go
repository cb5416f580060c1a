package webhook

import (
	"github.com/go-logr/logr"
	"sigs.k8s.io/controller-runtime/pkg/webhook/admission"
)

// LogConstructor is admission.Webhook's LogConstructor for this server: the
// same values as controller-runtime's default (object, namespace, name,
// resource, user, requestID), but built only when a line is logged. zap
// encodes a logger's values when they are added, so the default paid for
// six encoded values on every review although the default level logs none.
func LogConstructor(base logr.Logger, req *admission.Request) logr.Logger {
	sink := base.GetSink()
	if req == nil || sink == nil {
		return base
	}
	return base.WithSink(&requestSink{base: sink, req: req})
}

// requestSink adds a review's values to base at the first line logged or
// the first WithValues, not before.
type requestSink struct {
	base logr.LogSink
	req  *admission.Request
}

var _ logr.CallDepthLogSink = (*requestSink)(nil)

// withRequest is base with the review's values, as controller-runtime's
// default constructor adds them.
func (s *requestSink) withRequest() logr.LogSink {
	return admission.DefaultLogConstructor(logr.Logger{}.WithSink(s.base), s.req).GetSink()
}

func (s *requestSink) Init(info logr.RuntimeInfo) { s.base.Init(info) }

func (s *requestSink) Enabled(level int) bool { return s.base.Enabled(level) }

// framed is withRequest for a line logged through this sink, which adds
// a frame between the caller and base: the line still names its caller.
func (s *requestSink) framed() logr.LogSink {
	sink := s.withRequest()
	if cd, ok := sink.(logr.CallDepthLogSink); ok {
		return cd.WithCallDepth(1)
	}
	return sink
}

func (s *requestSink) Info(level int, msg string, keysAndValues ...any) {
	s.framed().Info(level, msg, keysAndValues...)
}

func (s *requestSink) Error(err error, msg string, keysAndValues ...any) {
	s.framed().Error(err, msg, keysAndValues...)
}

func (s *requestSink) WithValues(keysAndValues ...any) logr.LogSink {
	if len(keysAndValues) == 0 { // controller-runtime's FromContext adds none on every review
		return s
	}
	return s.withRequest().WithValues(keysAndValues...)
}

func (s *requestSink) WithName(name string) logr.LogSink {
	return &requestSink{base: s.base.WithName(name), req: s.req}
}

func (s *requestSink) WithCallDepth(depth int) logr.LogSink {
	if cd, ok := s.base.(logr.CallDepthLogSink); ok {
		return &requestSink{base: cd.WithCallDepth(depth), req: s.req}
	}
	return s
}
