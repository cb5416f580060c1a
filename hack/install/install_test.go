package main

import (
	"bytes"
	"os/exec"
	"strings"
	"testing"
)

const (
	digest = "sha256:0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef"
	chart  = "../../charts/opencode-injector"
	// Injector is the chart's image.repository, which deploy/ names.
	Injector = "ghcr.io/angryninja/opencode-injector"
)

// TestPinsOnlyTheInjectorImage: install.yaml is deploy/ as kustomize
// renders it, line for line, except the injector's image, pinned by digest.
func TestPinsOnlyTheInjectorImage(t *testing.T) {
	var out bytes.Buffer
	image := Injector + "@" + digest
	if err := Write(&out, "../../deploy", chart, image); err != nil {
		t.Fatal(err)
	}
	var plain bytes.Buffer
	if err := Write(&plain, "../../deploy", chart, Injector+"@"+strings.Repeat("0", 0)+"sha256:"+strings.Repeat("f", 64)); err != nil {
		t.Fatal(err)
	}
	got, want := strings.Split(out.String(), "\n"), strings.Split(plain.String(), "\n")
	if len(got) != len(want) {
		t.Fatalf("%d lines, want %d", len(got), len(want))
	}
	changed := 0
	for i := range got {
		if got[i] != want[i] {
			changed++
			if strings.TrimSpace(got[i]) != "image: "+image {
				t.Errorf("line %d changed: %q", i+1, got[i])
			}
		}
	}
	if changed != 1 {
		t.Errorf("%d lines differ between two digests, want the image line only", changed)
	}
	if strings.Contains(out.String(), Injector+":") {
		t.Error("a tag is left")
	}
}

func TestRendersTheMirror(t *testing.T) {
	var out bytes.Buffer
	if err := Write(&out, "../../deploy", chart, "registry.example.org/mirror/opencode-injector@"+digest); err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(out.String(), "image: registry.example.org/mirror/opencode-injector@"+digest+"\n") {
		t.Error("the mirror's image is not in the manifest")
	}
}

func TestRefusesATag(t *testing.T) {
	for _, bad := range []string{Injector + ":v0.2.0", Injector, Injector + "@sha256:abc"} {
		if err := Write(&bytes.Buffer{}, "../../deploy", chart, bad); err == nil {
			t.Errorf("%q accepted", bad)
		}
	}
}

// TestCommand runs it as the release workflow does.
func TestCommand(t *testing.T) {
	cmd := exec.Command("go", "run", ".", "-deploy", "../../deploy", "-chart", chart, "-image", Injector+"@"+digest)
	out, err := cmd.Output()
	if err != nil || !bytes.Contains(out, []byte("kind: MutatingWebhookConfiguration")) {
		t.Errorf("%v: %s", err, out)
	}
}
