package node_test

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	storagev1 "k8s.io/api/storage/v1"
	"k8s.io/apimachinery/pkg/api/equality"
	"k8s.io/apimachinery/pkg/api/resource"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/labels"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/utils/ptr"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/yaml"

	"github.com/angryninja/opencode-injector/contract"
	"github.com/angryninja/opencode-injector/test/gitserver"
	"github.com/angryninja/opencode-injector/test/node"
	"github.com/angryninja/opencode-injector/test/opencode"
)

const (
	workspaceNS = "opencode"
	password    = "node-test-password"
)

// TestWorkspace runs the flux example's workspace on the node, in a
// namespace that enforces Pod Security "restricted": the chart's
// Deployment, injected by the installed injector, its claim on a local
// PersistentVolume (empty), the seed init container from our image cloning
// over HTTPS from the suite's self-hosted git server (its own CA, given as
// the README says: the host in --allowed-git-hosts, the CA in a ConfigMap
// named by annotation ca-bundle) with the token from the Secret, and
// OpenCode from the OpenCode image answering 401 without the password and
// 200 with it, its git fetching from that server with the CA the seed
// wrote (GIT_SSL_CAINFO) and the token.
// Then a session created, found by a new Pod (delete) that makes no
// request to the git server; scale to 0 and back, again without one; day 2
// (checkDay2: the injector upgraded, stopped); and the label removed.
func TestWorkspace(t *testing.T) {
	c := needNode(t)
	ctx := context.Background()
	cl := installInjector(t, c)
	if err := c.Namespace(ctx, workspaceNS, map[string]string{
		"opencode.angryninja.cloud/workspaces": "true",
		"pod-security.kubernetes.io/enforce":   "restricted",
	}); err != nil {
		t.Fatal(err)
	}
	checkRestrictedEnforced(t, c, workspaceNS)
	srv := gitServer(t)
	if err := gitserver.MakeRepo(srv.Root, "angryninja", "k8s-cluster", 5, 2); err != nil {
		t.Fatal(err)
	}
	workspaceSecrets(t, c, workspaceNS)
	dir := workspaceClaim(t, c)

	d := fixtureDeployment(t, "flux", workspaceNS)
	addOfflineEnv(t, d)
	repoURL := srv.RepoURL("angryninja", "k8s-cluster")
	annotations := d.GetAnnotations()
	annotations[contract.AnnotationRepo] = repoURL
	annotations[contract.AnnotationCABundle] = "git-ca"
	d.SetAnnotations(annotations)
	applied := time.Now()
	applyAsHelm(t, cl, d)
	pod := waitWorkspaceReady(t, c, "")
	seedLog, err := c.Logs(ctx, workspaceNS, pod.Name, pod.Spec.InitContainers[0].Name)
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("seed: %s", seedLog)
	if !strings.Contains(seedLog, "cloned "+repoURL) {
		t.Errorf("the seed did not clone %s over TLS: %s", repoURL, seedLog)
	}
	clone := filepath.Join(dir, strings.TrimPrefix(contract.WorkspaceRoot, contract.DataMountPath+"/"), srv.Host, "angryninja", "k8s-cluster")
	checkClone(t, clone, filepath.Join(srv.Root, "angryninja", "k8s-cluster.git"))
	url := "http://" + pod.Status.PodIP + ":4096"
	if code := get(t, url+"/session", ""); code != http.StatusUnauthorized {
		t.Errorf("without the password: %d, want 401", code)
	}
	if code := get(t, url+"/session", password); code != http.StatusOK {
		t.Errorf("with the password: %d, want 200", code)
	}
	t.Logf("first start: %s from the Deployment's apply to OpenCode answering", time.Since(applied).Round(100*time.Millisecond))
	for _, p := range []string{"home/.local/share/opencode"} {
		if _, err := os.Stat(filepath.Join(dir, p)); err != nil {
			t.Errorf("OpenCode's data is not on the claim: %v", err)
		}
	}

	checkGitInWorkspace(t, c, pod, srv, contract.WorkspaceRoot+"/"+srv.Host+"/angryninja/k8s-cluster")

	sessionID := createSession(t, url)
	logMemoryPeak(t, pod)

	// A new Pod on the same claim: the clone and the session are there,
	// OpenCode serves, and the seed asked the git server nothing.
	contacted := srv.Connections()
	deleted := time.Now()
	if err := c.Client.CoreV1().Pods(workspaceNS).Delete(ctx, pod.Name, metav1.DeleteOptions{}); err != nil {
		t.Fatal(err)
	}
	pod = waitWorkspaceReady(t, c, pod.Name)
	if code := get(t, "http://"+pod.Status.PodIP+":4096/session", password); code != http.StatusOK {
		t.Errorf("after the pod was deleted: %d, want 200", code)
	}
	t.Logf("restart: %s from the Pod's delete to OpenCode answering", time.Since(deleted).Round(100*time.Millisecond))
	if code, body := request(t, http.MethodGet, "http://"+pod.Status.PodIP+":4096/session/"+sessionID, password, nil); code != http.StatusOK {
		t.Errorf("the new Pod does not find session %s: %d %s", sessionID, code, body)
	}
	if n := srv.Connections() - contacted; n != 0 {
		t.Errorf("the new Pod's seed opened %d connections to the git server, want none (the clone is on the claim)", n)
	}

	// Scale to 0 and back.
	scale(t, c, 0)
	scale(t, c, 1)
	pod = waitWorkspaceReady(t, c, pod.Name)
	if code := get(t, "http://"+pod.Status.PodIP+":4096/session", password); code != http.StatusOK {
		t.Errorf("after scaling to 0 and back: %d, want 200", code)
	}
	if n := srv.Connections() - contacted; n != 0 {
		t.Errorf("scaling to 0 and back opened %d connections to the git server, want none", n)
	}

	t.Run("day 2", func(t *testing.T) { checkDay2(t, c, cl, d, pod) })

	// The label removed: the chart's Deployment is back.
	labelsNoInject := d.GetLabels()
	delete(labelsNoInject, contract.LabelInject)
	d.SetLabels(labelsNoInject)
	applyAsHelm(t, cl, d)
	var restored appsv1.Deployment
	if err := cl.Get(ctx, client.ObjectKeyFromObject(d), &restored); err != nil {
		t.Fatal(err)
	}
	if restored.Annotations[contract.AnnotationInjected] != "" {
		t.Errorf("the label is gone but annotation %s stays", contract.AnnotationInjected)
	}
	checkRestored(t, cl, d, &restored)
}

// checkRestored compares restored's Pod template with what the API server
// makes of the unlabeled manifest d (a server-side dry-run create under
// another name, so defaulted alike): equal, but for the annotation
// `kubectl rollout restart` added, which is the user's.
func checkRestored(t *testing.T, cl client.Client, d *unstructured.Unstructured, restored *appsv1.Deployment) {
	t.Helper()
	reference := d.DeepCopy()
	reference.SetName(d.GetName() + "-reference")
	reference.SetResourceVersion("")
	if err := cl.Create(context.Background(), reference, client.DryRunAll); err != nil {
		t.Fatalf("dry-run create of the unlabeled manifest: %v", err)
	}
	var want appsv1.Deployment
	if err := runtime.DefaultUnstructuredConverter.FromUnstructured(reference.Object, &want); err != nil {
		t.Fatal(err)
	}
	got := restored.Spec.Template.DeepCopy()
	delete(got.Annotations, restartedAtAnnotation)
	if !equality.Semantic.DeepEqual(*got, want.Spec.Template) {
		gotYAML, _ := yaml.Marshal(got)
		wantYAML, _ := yaml.Marshal(want.Spec.Template)
		t.Errorf("the label is gone but the Pod template is not the chart's:\n%s\nwant:\n%s", gotYAML, wantYAML)
	}
}

// checkGitInWorkspace runs git fetch in the workspace's OpenCode container
// (kubectl exec), in the clone at clonePath: it reaches the git server
// with the injected GIT_SSL_CAINFO and credential helper, and without
// GIT_SSL_CAINFO the server's certificate is not trusted.
func checkGitInWorkspace(t *testing.T, c *node.Cluster, pod *corev1.Pod, srv *gitserver.Server, clonePath string) {
	t.Helper()
	ctx := context.Background()
	before := srv.Requests()
	fetch := "git -C " + clonePath + " fetch --verbose origin"
	if out, err := c.Exec(ctx, workspaceNS, pod.Name, contract.DefaultContainerName, "sh", "-c", fetch); err != nil {
		t.Errorf("git fetch in the workspace: %v", err)
	} else if srv.Requests() == before {
		t.Errorf("git fetch in the workspace did not reach the git server: %s", out)
	}
	// The same command, the CA file aside: refused.
	out, err := c.Exec(ctx, workspaceNS, pod.Name, contract.DefaultContainerName, "sh", "-c", "unset "+contract.EnvGitSSLCAInfo+"; "+fetch)
	if err == nil || !strings.Contains(out, "certificate") {
		t.Errorf("git fetch without %s: %v, want the server's certificate refused: %s", contract.EnvGitSSLCAInfo, err, out)
	}
}

// createSession creates an OpenCode session through the API of the server
// at url and returns its ID.
func createSession(t *testing.T, url string) string {
	t.Helper()
	code, body := request(t, http.MethodPost, url+"/session", password, map[string]string{"title": "survives the pod"})
	var session struct{ ID string }
	if code != http.StatusOK || json.Unmarshal(body, &session) != nil || session.ID == "" {
		t.Fatalf("POST /session: %d %s", code, body)
	}
	return session.ID
}

// logMemoryPeak reports the OpenCode container's peak memory, as its
// cgroup counts it, against its limit.
func logMemoryPeak(t *testing.T, pod *corev1.Pod) {
	t.Helper()
	peak, err := node.MemoryPeak(pod, contract.DefaultContainerName)
	if err != nil {
		t.Fatal(err)
	}
	for _, ctr := range pod.Spec.Containers {
		if ctr.Name == contract.DefaultContainerName {
			t.Logf("OpenCode's peak memory after start and a session: %d MiB (cgroup memory.max_usage_in_bytes), limit %s", peak>>20, ctr.Resources.Limits.Memory())
		}
	}
}

// workspaceClaim creates the flux example's claim (deploy/flux's pvc.yaml,
// on a default local StorageClass) bound to a new, empty local
// PersistentVolume, and returns the volume's directory.
func workspaceClaim(t *testing.T, c *node.Cluster) string {
	t.Helper()
	ctx := context.Background()
	if _, err := c.Client.StorageV1().StorageClasses().Create(ctx, &storagev1.StorageClass{
		ObjectMeta:        metav1.ObjectMeta{Name: node.LocalStorageClass, Annotations: map[string]string{"storageclass.kubernetes.io/is-default-class": "true"}},
		Provisioner:       "kubernetes.io/no-provisioner",
		VolumeBindingMode: ptr.To(storagev1.VolumeBindingWaitForFirstConsumer),
	}, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	dir, err := c.LocalPV(ctx, "opencode-flux", "5Gi")
	if err != nil {
		t.Fatal(err)
	}
	if _, err := c.Client.CoreV1().PersistentVolumeClaims(workspaceNS).Create(ctx, &corev1.PersistentVolumeClaim{
		ObjectMeta: metav1.ObjectMeta{Name: "opencode-flux"},
		Spec: corev1.PersistentVolumeClaimSpec{
			AccessModes: []corev1.PersistentVolumeAccessMode{corev1.ReadWriteOnce},
			Resources:   corev1.VolumeResourceRequirements{Requests: corev1.ResourceList{corev1.ResourceStorage: resource.MustParse("5Gi")}},
		},
	}, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	return dir
}

// checkClone checks that clone, on the claim, is a clone of bare: its HEAD
// is bare's main, and its objects are whole.
func checkClone(t *testing.T, clone, bare string) {
	t.Helper()
	head, err := gitAsRoot(clone, "rev-parse", "HEAD")
	if err != nil {
		t.Fatalf("no clone on the claim: %v", err)
	}
	want, err := gitAsRoot(bare, "rev-parse", "main")
	if err != nil {
		t.Fatal(err)
	}
	if head != want {
		t.Errorf("the clone's HEAD is %s, want the server's main %s", head, want)
	}
	if _, err := gitAsRoot(clone, "fsck", "--no-progress"); err != nil {
		t.Error(err)
	}
}

// gitAsRoot runs git in dir, which the workspace's user owns (git refuses
// another user's repository without safe.directory), and returns its
// output.
func gitAsRoot(dir string, args ...string) (string, error) {
	out, err := exec.Command("git", append([]string{"-c", "safe.directory=*", "-C", dir}, args...)...).CombinedOutput()
	if err != nil {
		return "", fmt.Errorf("git -C %s %s: %w: %s", dir, strings.Join(args, " "), err, out)
	}
	return strings.TrimSpace(string(out)), nil
}

// addOfflineEnv adds opencode.Offline to the app container: nothing beyond
// the node answers, so OpenCode must not wait for the internet.
func addOfflineEnv(t *testing.T, d *unstructured.Unstructured) {
	t.Helper()
	containers, _, _ := unstructured.NestedSlice(d.Object, "spec", "template", "spec", "containers")
	for i, ctr := range containers {
		m := ctr.(map[string]any)
		if m["name"] != "app" {
			continue
		}
		env, _ := m["env"].([]any)
		for k, v := range opencode.Offline {
			env = append(env, map[string]any{"name": k, "value": v})
		}
		m["env"] = env
		containers[i] = m
	}
	if err := unstructured.SetNestedSlice(d.Object, containers, "spec", "template", "spec", "containers"); err != nil {
		t.Fatal(err)
	}
}

// applyAsHelm server-side applies d as helm-controller does.
func applyAsHelm(t *testing.T, cl client.Client, d *unstructured.Unstructured) {
	t.Helper()
	if err := cl.Apply(context.Background(), client.ApplyConfigurationFromUnstructured(d.DeepCopy()), client.FieldOwner("helm-controller"), client.ForceOwnership); err != nil {
		t.Fatal(err)
	}
}

// waitWorkspaceReady waits for a Ready workspace Pod other than notName.
func waitWorkspaceReady(t *testing.T, c *node.Cluster, notName string) *corev1.Pod {
	t.Helper()
	ctx := context.Background()
	selector := labels.Set{"app.kubernetes.io/name": "opencode-flux"}.String()
	deadline := time.Now().Add(4 * time.Minute)
	for {
		pods, err := c.Client.CoreV1().Pods(workspaceNS).List(ctx, metav1.ListOptions{LabelSelector: selector})
		if err != nil {
			t.Fatal(err)
		}
		for i, p := range pods.Items {
			if p.Name != notName && p.DeletionTimestamp == nil && podReady(&p) {
				return &pods.Items[i]
			}
		}
		if time.Now().After(deadline) {
			t.Fatalf("no Ready workspace pod:\n%s\n%s", podsStatus(ctx, c, workspaceNS), events(ctx, c, workspaceNS))
		}
		time.Sleep(500 * time.Millisecond)
	}
}

func podReady(p *corev1.Pod) bool {
	for _, cond := range p.Status.Conditions {
		if cond.Type == corev1.PodReady {
			return cond.Status == corev1.ConditionTrue
		}
	}
	return false
}

// events lists ns's events, for a failure message.
func events(ctx context.Context, c *node.Cluster, ns string) string {
	list, err := c.Client.CoreV1().Events(ns).List(ctx, metav1.ListOptions{})
	if err != nil {
		return err.Error()
	}
	var b strings.Builder
	for _, e := range list.Items {
		fmt.Fprintf(&b, "%s %s %s: %s\n", e.InvolvedObject.Kind, e.InvolvedObject.Name, e.Reason, e.Message)
	}
	return b.String()
}

func scale(t *testing.T, c *node.Cluster, replicas int32) {
	t.Helper()
	ctx := context.Background()
	s, err := c.Client.AppsV1().Deployments(workspaceNS).GetScale(ctx, "opencode-flux", metav1.GetOptions{})
	if err != nil {
		t.Fatal(err)
	}
	s.Spec.Replicas = replicas
	if _, err := c.Client.AppsV1().Deployments(workspaceNS).UpdateScale(ctx, "opencode-flux", s, metav1.UpdateOptions{}); err != nil {
		t.Fatal(err)
	}
	if replicas == 0 {
		if err := waitNoPods(ctx, c); err != nil {
			t.Fatal(err)
		}
	}
}

func waitNoPods(ctx context.Context, c *node.Cluster) error {
	deadline := time.Now().Add(2 * time.Minute)
	for {
		pods, err := c.Client.CoreV1().Pods(workspaceNS).List(ctx, metav1.ListOptions{})
		if err == nil && len(pods.Items) == 0 {
			return nil
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("pods remain after scaling to 0: %s", podsStatus(ctx, c, workspaceNS))
		}
		time.Sleep(500 * time.Millisecond)
	}
}

// get is GET url's status, with OpenCode's basic auth when password is
// set.
func get(t *testing.T, url, password string) int {
	t.Helper()
	code, _ := request(t, http.MethodGet, url, password, nil)
	return code
}

// request sends body (as JSON, when not nil) to url and returns the status
// and the answer, with OpenCode's basic auth when password is set. A server
// that is listening (the probes pass) may still be starting: requests that
// get no answer are retried for two minutes.
func request(t *testing.T, method, url, password string, body any) (int, []byte) {
	t.Helper()
	deadline := time.Now().Add(2 * time.Minute)
	for {
		code, answer, err := requestOnce(method, url, password, body)
		if err == nil {
			return code, answer
		}
		if time.Now().After(deadline) {
			t.Fatal(err)
		}
		time.Sleep(time.Second)
	}
}

func requestOnce(method, url, password string, body any) (int, []byte, error) {
	var content io.Reader
	if body != nil {
		b, err := json.Marshal(body)
		if err != nil {
			return 0, nil, err
		}
		content = bytes.NewReader(b)
	}
	req, err := http.NewRequest(method, url, content)
	if err != nil {
		return 0, nil, err
	}
	if body != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	if password != "" {
		req.SetBasicAuth("opencode", password)
	}
	resp, err := (&http.Client{Timeout: 20 * time.Second}).Do(req)
	if err != nil {
		return 0, nil, fmt.Errorf("%s %s: %w", method, url, err)
	}
	defer resp.Body.Close()
	answer, err := io.ReadAll(resp.Body)
	if err != nil {
		return 0, nil, fmt.Errorf("%s %s: %w", method, url, err)
	}
	return resp.StatusCode, answer, nil
}
