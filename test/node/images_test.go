package node_test

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/google/go-containerregistry/pkg/v1/layout"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/utils/ptr"

	"github.com/angryninja/opencode-injector/test/node"
	"github.com/angryninja/opencode-injector/test/opencode"
)

var (
	imagesOnce     sync.Once
	injectorDigest string
	imagesErr      error
)

// importOurImages imports the images prepare built, once per run: the
// OpenCode image by its tag, and the injector's OCI layout by repository
// and digest (ctr images import --digests --base-name), as a registry pull
// leaves them, so the kubelet reports repo@sha256:… for it. It returns the
// injector image's digest.
func importOurImages(t *testing.T, c *node.Cluster) string {
	t.Helper()
	imagesOnce.Do(func() {
		ctx := context.Background()
		if imagesErr = c.ImportImage(ctx, os.Getenv(openCodeImageEnv)); imagesErr != nil {
			return
		}
		injectorDigest, imagesErr = importInjectorImage(ctx, c, injectorVersion)
	})
	if imagesErr != nil {
		t.Fatal(imagesErr)
	}
	return injectorDigest
}

// importInjectorImage builds the injector image with version compiled in
// and imports it by repository and digest, as a registry pull leaves it;
// it returns the digest.
func importInjectorImage(ctx context.Context, c *node.Cluster, version string) (string, error) {
	archive, err := node.BuildInjectorImage(filepath.Join("..", ".."), node.WorkDir(), version, os.Stderr)
	if err != nil {
		return "", err
	}
	if err := c.ImportImage(ctx, archive, "--digests", "--base-name", node.InjectorImageRepo); err != nil {
		return "", err
	}
	idx, err := layout.ImageIndexFromPath(strings.TrimSuffix(archive, ".tar"))
	if err != nil {
		return "", fmt.Errorf("read the injector image %s: %w", version, err)
	}
	m, err := idx.IndexManifest()
	if err != nil {
		return "", fmt.Errorf("read the injector image %s: %w", version, err)
	}
	if len(m.Manifests) != 1 {
		return "", fmt.Errorf("the injector image %s has %d manifests, want 1 (this platform's)", version, len(m.Manifests))
	}
	return m.Manifests[0].Digest.String(), nil
}

// TestOpenCodeImage runs the OpenCode image built here (Debian's git and
// the npm package's binary) and checks what it must share with the
// release's (the official image plus git): the entrypoint runs opencode at
// the pinned version, git and a shell are there, the user is root and HOME
// is /root.
func TestOpenCodeImage(t *testing.T) {
	c := needNode(t)
	ctx := context.Background()
	importOurImages(t, c)
	ns := "opencode-image"
	if err := c.Namespace(ctx, ns, nil); err != nil {
		t.Fatal(err)
	}
	pod := &corev1.Pod{
		ObjectMeta: metav1.ObjectMeta{Name: "opencode"},
		Spec: corev1.PodSpec{
			RestartPolicy: corev1.RestartPolicyNever,
			InitContainers: []corev1.Container{{Name: "entrypoint", Image: node.OpenCodeImage, ImagePullPolicy: corev1.PullNever,
				Args: []string{"--version"}}},
			Containers: []corev1.Container{{Name: "tools", Image: node.OpenCodeImage, ImagePullPolicy: corev1.PullNever,
				Command: []string{"/bin/sh", "-c", `while read k v _; do [ "$k" = Uid: ] && echo "uid=$v"; done </proc/self/status; echo "HOME=$HOME"; git --version; command -v opencode`}}},
		},
	}
	if _, err := c.Client.CoreV1().Pods(ns).Create(ctx, pod, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	done, err := c.WaitForPod(ctx, ns, "opencode", 3*time.Minute, node.Finished)
	if err != nil {
		t.Fatal(err)
	}
	version, err := c.Logs(ctx, ns, "opencode", "entrypoint")
	if err != nil {
		t.Fatal(err)
	}
	tools, err := c.Logs(ctx, ns, "opencode", "tools")
	if err != nil {
		t.Fatal(err)
	}
	if done.Status.Phase != corev1.PodSucceeded {
		t.Fatalf("pod %s: %+v\n%s\n%s", done.Status.Phase, done.Status, version, tools)
	}
	if strings.TrimSpace(version) != opencode.Version {
		t.Errorf("the entrypoint with --version printed %q, want %s", version, opencode.Version)
	}
	for _, want := range []string{"uid=0\n", "HOME=/root\n", "git version 2.", "/usr/local/bin/opencode"} {
		if !strings.Contains(tools, want) {
			t.Errorf("the image's tools: %q lacks %q", tools, want)
		}
	}
}

// TestInjectorImage runs the injector image from `make image` (hack/image)
// under deploy/'s securityContext and checks the digest the kubelet reports
// for it: repo@sha256:…, the form the injector pins the seed image from.
func TestInjectorImage(t *testing.T) {
	c := needNode(t)
	ctx := context.Background()
	digest := importOurImages(t, c)
	ns := "injector-image"
	if err := c.Namespace(ctx, ns, nil); err != nil {
		t.Fatal(err)
	}
	ref := node.InjectorImageRepo + ":" + injectorVersion
	pod := &corev1.Pod{
		ObjectMeta: metav1.ObjectMeta{Name: "version"},
		Spec: corev1.PodSpec{
			RestartPolicy: corev1.RestartPolicyNever,
			SecurityContext: &corev1.PodSecurityContext{RunAsNonRoot: ptr.To(true), RunAsUser: ptr.To[int64](65532), RunAsGroup: ptr.To[int64](65532),
				SeccompProfile: &corev1.SeccompProfile{Type: corev1.SeccompProfileTypeRuntimeDefault}},
			Containers: []corev1.Container{{Name: "injector", Image: ref, ImagePullPolicy: corev1.PullNever, Args: []string{"version"},
				SecurityContext: &corev1.SecurityContext{AllowPrivilegeEscalation: ptr.To(false), ReadOnlyRootFilesystem: ptr.To(true),
					Capabilities: &corev1.Capabilities{Drop: []corev1.Capability{"ALL"}}}}},
		},
	}
	if _, err := c.Client.CoreV1().Pods(ns).Create(ctx, pod, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	done, err := c.WaitForPod(ctx, ns, "version", 2*time.Minute, node.Finished)
	if err != nil {
		t.Fatal(err)
	}
	logs, err := c.Logs(ctx, ns, "version", "injector")
	if err != nil {
		t.Fatal(err)
	}
	if done.Status.Phase != corev1.PodSucceeded || !strings.Contains(logs, injectorVersion) {
		t.Fatalf("pod %s, log %q: %+v", done.Status.Phase, logs, done.Status.ContainerStatuses)
	}
	if got, want := done.Status.ContainerStatuses[0].ImageID, node.InjectorImageRepo+"@"+digest; got != want {
		t.Errorf("the kubelet reports imageID %q, want %q", got, want)
	}
}
