// Command allowserver is the baseline of the server benchmark: a webhook
// server on the same library as opencode-injector serve (controller-runtime,
// TLS from a cert dir) whose handler decodes the Deployment and allows it.
package main

import (
	"context"
	"flag"
	"fmt"
	"net/http"
	"os"

	appsv1 "k8s.io/api/apps/v1"
	"k8s.io/apimachinery/pkg/runtime"
	clientgoscheme "k8s.io/client-go/kubernetes/scheme"
	ctrl "sigs.k8s.io/controller-runtime"
	ctrlwebhook "sigs.k8s.io/controller-runtime/pkg/webhook"
	"sigs.k8s.io/controller-runtime/pkg/webhook/admission"
)

func main() {
	port := flag.Int("port", 9443, "port")
	certDir := flag.String("cert-dir", "", "directory with tls.crt and tls.key")
	flag.Parse()
	scheme := runtime.NewScheme()
	if err := clientgoscheme.AddToScheme(scheme); err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	srv := ctrlwebhook.NewServer(ctrlwebhook.Options{Host: "127.0.0.1", Port: *port, CertDir: *certDir})
	srv.Register("/inject", &admission.Webhook{Handler: allow{admission.NewDecoder(scheme)}})
	if err := srv.Start(ctrl.SetupSignalHandler()); err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
}

type allow struct{ decoder admission.Decoder }

func (a allow) Handle(_ context.Context, req admission.Request) admission.Response {
	var d appsv1.Deployment
	if err := a.decoder.DecodeRaw(req.Object, &d); err != nil {
		return admission.Errored(http.StatusBadRequest, err)
	}
	return admission.Allowed("")
}
