package main

import (
	"bytes"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"regexp"

	jsonpatch "github.com/evanphx/json-patch/v5"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"sigs.k8s.io/yaml"

	"github.com/angryninja/opencode-injector/contract"
	"github.com/angryninja/opencode-injector/injection"
)

func injectCmd(args []string, stdin io.Reader, stdout, stderr io.Writer) int {
	fs := flag.NewFlagSet("inject", flag.ContinueOnError)
	fs.SetOutput(stderr)
	s := defaultSettings()
	s.Offline = true
	s.AddFlags(fs)
	file := fs.String("f", "", "multi-document YAML to read (- for stdin)")
	if code, ok := parseFlags(fs, args); !ok {
		return code
	}
	if *file == "" {
		fmt.Fprintln(stderr, "opencode-injector inject: -f FILE is required (- reads stdin)")
		return 2
	}
	if err := s.Validate(); err != nil {
		fmt.Fprintf(stderr, "opencode-injector inject: %v\n", err)
		return 2
	}
	in, err := readInput(*file, stdin)
	if err != nil {
		fmt.Fprintf(stderr, "opencode-injector inject: %v\n", err)
		return 2
	}
	out, err := injectDocuments(in, s, func(w string) { fmt.Fprintln(stderr, "warning: "+contract.HideTokens(w)) })
	if errors.Is(err, injection.ErrNoSeedImage) {
		fmt.Fprintf(stderr, "opencode-injector inject: %v; pass --seed-image: this build (%s) is not a release, so it has no published image of its own "+
			"(use the image your cluster's injector runs: kubectl -n opencode-system get deploy opencode-injector -o jsonpath='{..image}')\n", err, version)
		return 2
	}
	if err != nil {
		fmt.Fprintf(stderr, "opencode-injector inject: %s\n", contract.HideTokens(err.Error()))
		return 1
	}
	_, _ = stdout.Write(out)
	return 0
}

func readInput(file string, stdin io.Reader) ([]byte, error) {
	if file == "-" {
		return io.ReadAll(stdin)
	}
	return os.ReadFile(file)
}

// separator is a YAML document start line, kept verbatim in the output.
var separator = regexp.MustCompile(`(?m)^---(?:[ \t][^\n]*)?\r?(?:\n|\z)`)

// injectDocuments injects every labeled (or formerly injected) apps/v1
// Deployment in a multi-document stream. Every other document and every
// separator comes out byte for byte as read. On an invalid document it
// returns an error naming it and no output.
func injectDocuments(in []byte, s injection.Settings, warn func(string)) ([]byte, error) {
	var out bytes.Buffer
	n := 0
	start := 0
	flush := func(body []byte) error {
		if len(bytes.TrimSpace(body)) == 0 && start == 0 {
			out.Write(body) // nothing before the first separator
			return nil
		}
		n++
		injected, err := injectDocument(n, body, s, warn)
		if err != nil {
			return err
		}
		out.Write(injected)
		return nil
	}
	for _, loc := range separator.FindAllIndex(in, -1) {
		if err := flush(in[start:loc[0]]); err != nil {
			return nil, err
		}
		out.Write(in[loc[0]:loc[1]])
		start = loc[1]
	}
	if err := flush(in[start:]); err != nil {
		return nil, err
	}
	return out.Bytes(), nil
}

func injectDocument(n int, body []byte, s injection.Settings, warn func(string)) ([]byte, error) {
	var head struct {
		metav1.TypeMeta   `json:",inline"`
		metav1.ObjectMeta `json:"metadata"`
	}
	if err := yaml.Unmarshal(body, &head); err != nil {
		return nil, fmt.Errorf("document %d: invalid YAML: %w", n, err)
	}
	if head.APIVersion != "apps/v1" || head.Kind != "Deployment" {
		return body, nil
	}
	name := fmt.Sprintf("document %d (Deployment %s)", n, head.Name)
	if head.Namespace != "" {
		name = fmt.Sprintf("document %d (Deployment %s/%s)", n, head.Namespace, head.Name)
	}
	raw, err := yaml.YAMLToJSON(body)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", name, err)
	}
	m, err := injection.MutateJSON(raw, nil, s)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", name, err)
	}
	for _, w := range m.Warnings {
		warn(name + ": " + w)
	}
	if errors.Is(m.Denied, injection.ErrNoSeedImage) {
		return nil, fmt.Errorf("%s: %w", name, m.Denied)
	}
	if m.Denied != nil {
		return nil, fmt.Errorf("%s: denied: %w", name, m.Denied)
	}
	if len(m.Patch) == 0 {
		return body, nil
	}
	// The webhook's own patch, applied as the API server applies it: what
	// the injection does not change stays as written, unknown fields too.
	ops, err := injection.EncodePatch(m.Patch)
	if err != nil {
		return nil, fmt.Errorf("%s: encode the patch: %w", name, err)
	}
	patch, err := jsonpatch.DecodePatch(ops)
	if err != nil {
		return nil, fmt.Errorf("%s: decode the patch: %w", name, err)
	}
	patched, err := patch.Apply(raw)
	if err != nil {
		return nil, fmt.Errorf("%s: apply the patch: %w", name, err)
	}
	return yaml.JSONToYAML(patched)
}
