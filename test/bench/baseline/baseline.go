// Package baseline is the baselines of the server benchmarks: a webhook
// server set up as opencode-injector serve is (controller-runtime's webhook
// server, TLS from a cert dir with HTTP/1.1 only in ALPN, serve's zap
// logger, the webhook's log constructor) whose handler decodes the
// Deployment and then either allows it (-mode allow) or answers the exact
// patch our handler returns for the review in -review (-mode patch-echo):
// that patch is computed once at start, so each review costs what sending
// this patch costs at all, without the injection's work.
//
// It runs as `opencode-injector bench-baseline`, a command only a build
// with the benchbaseline tag has (test/bench builds one): a mode of the
// very binary it is compared with, so the same libraries' pages are
// resident in both and the memory figures compare the work, not the
// binaries' sizes.
package baseline

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"net/http"
	"os"

	admissionv1 "k8s.io/api/admission/v1"
	appsv1 "k8s.io/api/apps/v1"
	"k8s.io/apimachinery/pkg/runtime"
	clientgoscheme "k8s.io/client-go/kubernetes/scheme"
	"k8s.io/utils/ptr"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/log/zap"
	ctrlwebhook "sigs.k8s.io/controller-runtime/pkg/webhook"
	"sigs.k8s.io/controller-runtime/pkg/webhook/admission"

	"github.com/angryninja/opencode-injector/cmd/opencode-injector/app"
	"github.com/angryninja/opencode-injector/injection"
	"github.com/angryninja/opencode-injector/webhook"
)

// Command is the command's name.
const Command = "bench-baseline"

// Main runs the baseline server with args until it is interrupted.
func Main(args []string, stderr io.Writer) int {
	if err := run(args); err != nil {
		fmt.Fprintln(stderr, Command+":", err)
		return 1
	}
	return 0
}

func run(args []string) error {
	fs := flag.NewFlagSet(Command, flag.ExitOnError)
	port := fs.Int("port", 9443, "port")
	certDir := fs.String("cert-dir", "", "directory with tls.crt and tls.key")
	mode := fs.String("mode", "allow", "allow, or patch-echo (answers our patch for -review)")
	review := fs.String("review", "", "an AdmissionReview file: patch-echo answers the patch our handler returns for it")
	s := injection.DefaultSettings("")
	s.AddFlags(fs) // the same settings as serve, so the same patch
	zapOpts := zap.Options{}
	zapOpts.BindFlags(fs)
	_ = fs.Parse(args)
	ctrl.SetLogger(zap.New(zap.UseFlagOptions(&zapOpts)))

	scheme := runtime.NewScheme()
	if err := clientgoscheme.AddToScheme(scheme); err != nil {
		return err
	}
	base := decodeThen{decoder: admission.NewDecoder(scheme)}
	switch *mode {
	case "allow":
	case "patch-echo":
		patch, err := ourPatch(*review, s)
		if err != nil {
			return fmt.Errorf("-mode patch-echo: %w", err)
		}
		base.patch = patch
	default:
		return fmt.Errorf("-mode %q: want allow or patch-echo", *mode)
	}
	srv := ctrlwebhook.NewServer(ctrlwebhook.Options{Host: "127.0.0.1", Port: *port, CertDir: *certDir, TLSOpts: app.TLSOptions(false)})
	srv.Register(webhook.Path, &admission.Webhook{Handler: base, LogConstructor: webhook.LogConstructor})
	return srv.Start(ctrl.SetupSignalHandler())
}

// ourPatch is the JSON patch our handler answers for the review in file.
func ourPatch(file string, s injection.Settings) ([]byte, error) {
	raw, err := os.ReadFile(file)
	if err != nil {
		return nil, fmt.Errorf("read -review: %w", err)
	}
	var review admissionv1.AdmissionReview
	if err := json.Unmarshal(raw, &review); err != nil || review.Request == nil {
		return nil, fmt.Errorf("-review %s is not an AdmissionReview with a request: %v", file, err)
	}
	resp := (&webhook.Handler{Settings: s}).Handle(context.Background(), admission.Request{AdmissionRequest: *review.Request})
	if !resp.Allowed || len(resp.Patch) == 0 {
		return nil, errors.New("our handler answers no patch for -review: nothing to echo")
	}
	return resp.Patch, nil
}

// decodeThen decodes the Deployment as any webhook must, then allows it,
// with patch when set.
type decodeThen struct {
	decoder admission.Decoder
	patch   []byte
}

func (h decodeThen) Handle(_ context.Context, req admission.Request) admission.Response {
	var d appsv1.Deployment
	if err := h.decoder.DecodeRaw(req.Object, &d); err != nil {
		return admission.Errored(http.StatusBadRequest, err)
	}
	resp := admission.Allowed("")
	if h.patch != nil {
		resp.Patch = h.patch
		resp.PatchType = ptr.To(admissionv1.PatchTypeJSONPatch)
	}
	return resp
}
