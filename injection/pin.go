package injection

import (
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"regexp"
	"slices"
	"strings"

	"github.com/google/go-containerregistry/pkg/name"
	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"

	"github.com/angryninja/opencode-injector/contract"
)

// An injector upgrade never restarts a workspace by itself: what an earlier
// injection wrote into the pod template (seed image, filled defaults, hosts,
// volumes, security contexts, env) stays as it is until the user's own part
// of the Deployment changes. The record keeps a digest of that part; when
// the request's user part still has it, the earlier injection is kept
// whole, whatever this injector's settings or code would write today.

// userPart is what the user owns of an un-injected Deployment and what,
// with the settings, decides the injection: the pod template, the strategy
// and the contract's annotations that shape the pod template (the storage
// annotations only ask the provisioner for a claim).
type userPart struct {
	// The name chooses the default claim: a renamed copy is a new workspace.
	Name        string                    `json:"name"`
	Template    corev1.PodTemplateSpec    `json:"template"`
	Strategy    appsv1.DeploymentStrategy `json:"strategy"`
	Annotations map[string]string         `json:"annotations,omitempty"`
}

// userDigest is the sha256 of d's user part as canonical JSON (struct
// fields in order, map keys sorted, empty lists omitted); d must be
// stripped of any injection.
func userDigest(d *appsv1.Deployment) string {
	part := userPart{Name: d.Name, Template: d.Spec.Template, Strategy: d.Spec.Strategy}
	for _, k := range contract.UserAnnotations {
		if k == contract.AnnotationStorage || k == contract.AnnotationStorageClass {
			continue
		}
		if v, ok := d.Annotations[k]; ok {
			if part.Annotations == nil {
				part.Annotations = map[string]string{}
			}
			part.Annotations[k] = v
		}
	}
	buf := getJSONBuffer()
	defer buf.release()
	if err := buf.encode(part); err != nil {
		panic(fmt.Sprintf("encode the user's part: %v", err)) // only API types: cannot fail
	}
	sum := sha256.Sum256(buf.Bytes())
	return "sha256:" + hex.EncodeToString(sum[:])
}

// pinSource is the earlier injection this request may keep: the stored
// object's on an UPDATE (server-side apply drops the injected fields from
// the request, the stored object still holds them), else, offline only,
// the request's own when it carries a trusted record with a digest
// (injecting an injected manifest again). In the webhook a request's own
// record proves nothing: a CREATE carrying a self-consistent forged record
// would keep a template without the password env. A record without a
// digest cannot tell whether the user's part changed since, so it is not a
// pin.
func pinSource(in, stored *appsv1.Deployment, storedRec record, storedTrusted bool, own record, ownTrusted, offline bool) (*appsv1.Deployment, record, bool) {
	if storedTrusted && Enabled(stored) && stored.DeletionTimestamp == nil {
		return stored, storedRec, true
	}
	if offline && ownTrusted && own.UserDigest != "" {
		return in, own, true
	}
	return nil, record{}, false
}

// storedRecord is the stored object's record on an UPDATE, and whether it
// can be trusted: written by this webhook, it agrees with the object.
func storedRecord(stored *appsv1.Deployment) (record, bool) {
	if stored == nil {
		return record{}, false
	}
	rec, trusted, _ := readRecord(stored)
	return rec, trusted
}

// keepPinned gives d (the request, stripped to the user's part, whose
// digest is digest) the pod template, strategy and record of src when the
// user's part is the one src was injected from. A record written before
// records kept a digest adopts what src holds: its user part is what
// stripping src leaves. It reports whether it kept src, and a warning when
// src's seed image could not be trusted.
func keepPinned(d, src *appsv1.Deployment, rec record, digest string, s Settings) (kept bool, warning string) {
	si := slices.IndexFunc(src.Spec.Template.Spec.InitContainers, isOurSeed)
	if si < 0 {
		return false, "" // a v1 record is trusted without a seed beside it: no pin
	}
	pinned := rec.UserDigest
	if pinned == "" {
		user := mutableCopy(src)
		strip(user, rec, true)
		pinned = userDigest(user)
	}
	if pinned != digest && pinned != nameGivenAfterAdmission(d, src) || !hostsStillAllowed(rec.Hosts, s.AllowedGitHosts) {
		return false, ""
	}
	d.Spec.Template = mutableTemplate(&src.Spec.Template)
	d.Spec.Strategy = src.Spec.Strategy // a value, replaced whole and never edited
	if d.Annotations == nil {
		d.Annotations = map[string]string{}
	}
	d.Annotations[contract.AnnotationInjected] = src.Annotations[contract.AnnotationInjected]
	if pinned != digest {
		// Kept through the nameless digest: from now on the record holds
		// the named one, so the pin no longer depends on generateName,
		// which an UPDATE may drop. Only the annotation changes.
		rec.UserDigest = digest
		d.Annotations[contract.AnnotationInjected] = rec.encode()
	}
	ps := &d.Spec.Template.Spec
	seed := &ps.InitContainers[si]
	if trustedSeedImage(seed.Image, s.SeedImage, s.Offline) {
		return true, ""
	}
	warning = "the seed image " + seed.Image + " of init container " + contract.SeedContainerName + " is not " + repository(s.SeedImage) +
		" pinned by digest: it runs with " + contract.EnvToken + ", so it was replaced by the injector's own image " + s.SeedImage
	seed.Image = s.SeedImage
	seed.ImagePullPolicy = pullPolicy(s.SeedImage)
	return true, warning
}

// nameGivenAfterAdmission is the digest d's user part had when it was
// created with metadata.generateName: the webhook saw it before the API
// server gave it the name. The pin source says so (an UPDATE may drop
// generateName from the request); empty when its name did not come from
// its prefix.
func nameGivenAfterAdmission(d, src *appsv1.Deployment) string {
	if src.GenerateName == "" || !strings.HasPrefix(src.Name, src.GenerateName) || d.Name != src.Name {
		return ""
	}
	nameless := *d
	nameless.Name = ""
	return userDigest(&nameless)
}

// hostsStillAllowed: narrowing --allowed-git-hosts is how an admin stops the
// token going to a host, so a pin that names a host no longer allowed is
// not kept.
func hostsStillAllowed(pinned, allowed []string) bool {
	for _, h := range pinned {
		if !slices.Contains(allowed, h) {
			return false
		}
	}
	return true
}

// trustedSeedImage: the seed image is input the user can edit, and it runs
// with the token; a pinned one is kept only when it is the current image or
// the current image's repository by digest (an earlier release of this
// injector). Offline, one of that repository's release tags is kept too: a
// released inject pins its own tag, nothing is pulled by the command, and
// its output is reviewed by the user in Git before a cluster pulls it.
func trustedSeedImage(pinned, current string, offline bool) bool {
	if pinned == current {
		return true
	}
	if ref, err := name.NewDigest(pinned, name.StrictValidation); err == nil {
		return ref.Context().Name() == repository(current)
	}
	tag, err := name.NewTag(pinned, name.StrictValidation)
	return offline && err == nil && ReleaseTag.MatchString(tag.TagStr()) && tag.Context().Name() == repository(current)
}

// ReleaseTag is a version the release workflow publishes an image for.
var ReleaseTag = regexp.MustCompile(`^v[0-9]+\.[0-9]+\.[0-9]+(-(alpha|beta|rc)\.[0-9]+)?$`)

// repository is the image's repository without tag or digest ("" when it
// is not an image reference).
func repository(image string) string {
	ref, err := name.ParseReference(image)
	if err != nil {
		return ""
	}
	return ref.Context().Name()
}
