package injection

import (
	"errors"
	"fmt"
	"slices"
	"strconv"
	"strings"

	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/equality"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/angryninja/opencode-injector/contract"
)

// ErrNoSeedImage is Mutate's answer to a Deployment it would inject while
// Settings.SeedImage is empty: it never injects an image that is not there.
// Removing an injection needs no seed image.
var ErrNoSeedImage = errors.New("no seed image is set")

// Mutate is the whole mutation, a pure function: it returns a copy of in
// (sharing with in and stored what it leaves as it is: see mutableCopy;
// deep-copy it before editing it) with the workspace injected when in carries the opt-in label, or with an
// earlier injection removed when the label is gone; the warnings for the
// user; and an error that denies the request. An injected Deployment is
// first stripped back to what the user wrote, then injected again, so the
// same input always gives the same output and injecting twice changes
// nothing.
//
// stored is the stored object on an UPDATE (nil otherwise). Its status
// annotation, written by this webhook, is what the user already knows, so
// only what changes since is warned about, and a changed repo or branch is
// explained. Its injection is kept as it is while the user's part of the
// Deployment does not change (see keepPinned), so an injector upgrade
// restarts no workspace.
func Mutate(in *appsv1.Deployment, stored *appsv1.Deployment, s Settings) (*appsv1.Deployment, []string, error) {
	if in.DeletionTimestamp != nil {
		return mutableCopy(in), nil, nil // a way out is never blocked
	}
	var old *metav1.ObjectMeta
	if stored != nil {
		old = &stored.ObjectMeta
	}
	d := mutableCopy(in)
	var warnings []string
	prev, trusted, w := readRecord(d)
	storedRec, storedTrusted := prev, trusted // a no-op UPDATE: the record was just read
	if stored != in {
		storedRec, storedTrusted = storedRecord(stored)
	}
	stripRec, stripTrusted := prev, trusted
	if storedTrusted && slices.ContainsFunc(d.Spec.Template.Spec.Containers, func(c corev1.Container) bool { return c.Name == storedRec.Container }) {
		// On an UPDATE the stored object's record, written by this webhook,
		// says what the injection wrote, whatever the request's record says
		// (the requester's word: one edited to drop the user's password
		// entry would otherwise lose it). So the request's user part (their
		// own HOME, say) is the stored object's and nothing of the user's
		// is stripped by name.
		stripRec, stripTrusted, w = storedRec, true, ""
	}
	if w != "" {
		warnings = append(warnings, w)
	}
	baseline := baselineRecord(prev, trusted, old, in)
	enabled := Enabled(d)
	// Leftovers of an injection whose record and seed were deleted by hand
	// still go when the label is removed: a way out leaves nothing behind.
	leftovers := !enabled && old != nil && old.Labels[contract.LabelInject] == contract.LabelInjectEnabled && hasOurItems(d)
	if IsInjected(d) || leftovers {
		if leftovers && !IsInjected(d) && !stripTrusted {
			warnings = append(warnings, "the Deployment holds opencode-injector's volumes or claim mount without its record and seed container: they were removed by name, but values they replaced cannot be restored")
		}
		strip(d, stripRec, stripTrusted)
		if !enabled {
			stripForeignMounts(&d.Spec.Template.Spec)
			return d, append(warnings, "label "+contract.LabelInject+" removed: the workspace injection was removed; the claim and its data are kept"), nil
		}
	}
	if !enabled {
		return d, warnings, nil
	}
	if s.SeedImage == "" {
		return nil, warnings, ErrNoSeedImage
	}
	// Advice about the user's own settings is given when they change, not
	// on every reconcile: on an UPDATE, when the stored object differs; else
	// when there is no record yet.
	fresh := func(key string) bool {
		if old != nil {
			v, had := old.Annotations[key]
			return !had || v != d.Annotations[key]
		}
		return baseline == nil
	}
	unknown := 0
	for _, k := range unknownKeys(d.Annotations) {
		if !fresh(k) {
			continue
		}
		if unknown++; unknown <= maxUnknownKeyWarnings {
			warnings = append(warnings, unknownKeyWarning(k))
		}
	}
	if more := unknown - maxUnknownKeyWarnings; more > 0 {
		warnings = append(warnings, fmt.Sprintf("%d more unknown annotations under %s are ignored", more, contract.Prefix))
	}

	ws, err := ParseWorkspace(d, s)
	if err != nil {
		return nil, warnings, err
	}
	if r := d.Spec.Replicas; r != nil && *r > 1 {
		return nil, warnings, fmt.Errorf("spec.replicas is %d: a workspace runs exactly one pod, since its ReadWriteOnce claim attaches to one node; set replicas to 1 (app-template: controllers.<id>.replicas)", *r)
	}
	ps := &d.Spec.Template.Spec
	ci, err := selectContainer(ps, ws.Container)
	if err != nil {
		return nil, warnings, err
	}
	ws.Container = ps.Containers[ci].Name
	if err := checkCollisions(ps, ci); err != nil {
		return nil, warnings, err
	}
	digest := userDigest(d)
	if src, pinRec, ok := pinSource(in, stored, storedRec, storedTrusted, prev, trusted, s.Offline); ok {
		if kept, imageWarning := keepPinned(d, src, pinRec, digest, s); kept {
			if imageWarning != "" {
				warnings = append(warnings, imageWarning)
			}
			return d, warnings, nil
		}
	}

	rec := record{Version: contract.Version, Container: ws.Container, Secret: ws.Secret, Clone: ws.ClonePath(), Hosts: s.AllowedGitHosts, CABundle: ws.CABundle, UserDigest: digest}
	setStrategy(d, &rec)
	ps.Volumes = append(ps.Volumes, volumes(ws)...)
	ps.InitContainers = append([]corev1.Container{seedContainer(ps, ci, ws, s, &rec)}, ps.InitContainers...)
	injectContainer(&ps.Containers[ci], &rec, s)
	if _, w := clampSeedMemory(ws.SeedMemory); w != "" && fresh(contract.AnnotationSeedMemory) {
		warnings = append(warnings, w)
	}
	warnings = append(warnings, changeWarnings(baseline, rec, ps)...)
	if old != nil {
		warnings = append(warnings, updateWarnings(old, d, baseline, rec)...)
	}

	if d.Annotations == nil {
		d.Annotations = map[string]string{}
	}
	d.Annotations[contract.AnnotationInjected] = rec.encode()
	return d, warnings, nil
}

// baselineRecord is the record the user has already been told about: the
// stored object's on an UPDATE, else the object's own (own, read from in).
// A v1 record is completed from the request's pod template.
func baselineRecord(own record, trusted bool, old *metav1.ObjectMeta, in *appsv1.Deployment) *record {
	if old != nil {
		raw, ok := old.Annotations[contract.AnnotationInjected]
		if !ok {
			return nil
		}
		if trusted && raw == in.Annotations[contract.AnnotationInjected] {
			return &own // the same record, already read
		}
		rec, err := parseRecord(raw, &in.Spec.Template.Spec)
		if err != nil {
			return nil
		}
		return &rec
	}
	if trusted {
		return &own
	}
	return nil
}

// Enabled reports whether d carries the opt-in label.
func Enabled(d *appsv1.Deployment) bool {
	return d.Labels[contract.LabelInject] == contract.LabelInjectEnabled
}

// hasOurItems reports whether d holds our volumes or the claim mount.
func hasOurItems(d *appsv1.Deployment) bool {
	ps := &d.Spec.Template.Spec
	return slices.ContainsFunc(ps.Volumes, func(v corev1.Volume) bool { return isOurVolume(v.Name) }) ||
		slices.ContainsFunc(ps.Containers, func(c corev1.Container) bool { return slices.ContainsFunc(c.VolumeMounts, isDataMount) })
}

// IsInjected reports whether d carries anything of an earlier injection:
// the status annotation, or the seed init container.
func IsInjected(d *appsv1.Deployment) bool {
	_, annotated := d.Annotations[contract.AnnotationInjected]
	return annotated || slices.ContainsFunc(d.Spec.Template.Spec.InitContainers, isOurSeed)
}

// strip removes an earlier injection and leaves the user's object: each
// item the injection wrote is removed, or gets the user's original back,
// only while it holds exactly what was written. Without a trusted record,
// what is ours by name goes and nothing is restored.
func strip(d *appsv1.Deployment, rec record, trusted bool) {
	delete(d.Annotations, contract.AnnotationInjected)
	if len(d.Annotations) == 0 {
		d.Annotations = nil
	}
	ps := &d.Spec.Template.Spec
	ps.InitContainers = slices.DeleteFunc(ps.InitContainers, isOurSeed)
	if len(ps.InitContainers) == 0 {
		ps.InitContainers = nil
	}
	stripVolumes(ps)

	if trusted {
		if i := slices.IndexFunc(ps.Containers, func(c corev1.Container) bool { return c.Name == rec.Container }); i >= 0 {
			stripContainer(&ps.Containers[i], rec, true)
		}
		recreate := appsv1.DeploymentStrategy{Type: appsv1.RecreateDeploymentStrategyType}
		if rec.Strategy != nil && equality.Semantic.DeepEqual(d.Spec.Strategy, recreate) {
			d.Spec.Strategy = *rec.Strategy
		}
		if psc := ps.SecurityContext; rec.FSGroup != nil && psc != nil && psc.FSGroup != nil && *psc.FSGroup == *rec.FSGroup {
			psc.FSGroup = nil
			if rec.PodSecurityContextAdded && equality.Semantic.DeepEqual(*psc, corev1.PodSecurityContext{}) {
				ps.SecurityContext = nil
			}
		}
		return
	}
	// Without a record: every container the claim is mounted into, and the
	// one the annotations select, lose what is ours by name.
	selected, _ := selectContainer(ps, d.Annotations[contract.AnnotationContainer])
	for i := range ps.Containers {
		if i == selected || slices.ContainsFunc(ps.Containers[i].VolumeMounts, isDataMount) {
			stripContainer(&ps.Containers[i], rec, false)
		}
	}
}

// selectContainer finds the OpenCode container: the named one, else "app",
// else the only one.
func selectContainer(ps *corev1.PodSpec, name string) (int, error) {
	names := make([]string, len(ps.Containers))
	for i, c := range ps.Containers {
		names[i] = c.Name
	}
	if name != "" {
		if i := slices.Index(names, name); i >= 0 {
			return i, nil
		}
		return -1, &contract.AnnotationError{Key: contract.AnnotationContainer, Value: name, Problem: "names no container of the pod template (it has " + strings.Join(names, ", ") + ")", Fix: "set it to the container that runs OpenCode"}
	}
	if i := slices.Index(names, contract.DefaultContainerName); i >= 0 {
		return i, nil
	}
	if len(names) == 1 {
		return 0, nil
	}
	return -1, fmt.Errorf("the pod template has %d containers (%s) and none is named %q: set annotation %s to the one that runs OpenCode",
		len(names), strings.Join(names, ", "), contract.DefaultContainerName, contract.AnnotationContainer)
}

// setStrategy makes the rollout Recreate: a ReadWriteOnce claim cannot
// attach to two pods on two nodes during a rolling update.
func setStrategy(d *appsv1.Deployment, rec *record) {
	recreate := appsv1.DeploymentStrategy{Type: appsv1.RecreateDeploymentStrategyType}
	if equality.Semantic.DeepEqual(d.Spec.Strategy, recreate) {
		return
	}
	orig := d.Spec.Strategy
	rec.Strategy = &orig
	d.Spec.Strategy = recreate
}

func strategyName(s appsv1.DeploymentStrategy) string {
	if s.Type == "" {
		return string(appsv1.RollingUpdateDeploymentStrategyType) + " (the default)"
	}
	return string(s.Type)
}

// changeWarnings says what the injection overrides or gives up, compared
// with what base (the record the user was already told about) held: an
// override warns when it is new or its original changed, never again while
// it stays as it was.
func changeWarnings(base *record, rec record, ps *corev1.PodSpec) []string {
	if base == nil {
		base = &record{}
	}
	c := &ps.Containers[slices.IndexFunc(ps.Containers, func(c corev1.Container) bool { return c.Name == rec.Container })]
	var warnings []string
	if rec.Strategy != nil && (base.Strategy == nil || !equality.Semantic.DeepEqual(*base.Strategy, *rec.Strategy)) {
		warnings = append(warnings, "spec.strategy "+strategyName(*rec.Strategy)+" replaced by Recreate: the workspace's ReadWriteOnce claim cannot attach to two pods during a rollout")
	}
	// The container's entries of names the contract owns are now exactly
	// what the injection wrote.
	current, told := indexEnv(c.Env, plainEnv, len(rec.Env)), indexEnv(base.Env, recordedEnv, len(rec.Env))
	for _, e := range rec.Env {
		if current.has(e.Name, func(w corev1.EnvVar) bool { return envEqual(e.EnvVar, w) }) ||
			told.has(e.Name, func(b corev1.EnvVar) bool { return equality.Semantic.DeepEqual(b, e.EnvVar) }) {
			continue
		}
		warnings = append(warnings, "env "+e.Name+" of container "+c.Name+" replaced: opencode-injector sets it "+envPurpose(e.Name))
	}
	if rec.WorkingDir != nil && *rec.WorkingDir != "" && (base.WorkingDir == nil || *base.WorkingDir != *rec.WorkingDir) {
		warnings = append(warnings, "workingDir "+*rec.WorkingDir+" of container "+c.Name+" replaced by the clone "+rec.Clone+" (a workingDir inside the clone is kept)")
	}
	if rec.SeedRunsAsImageUser && !base.SeedRunsAsImageUser {
		warnings = append(warnings, "container "+c.Name+" requires runAsNonRoot but sets no runAsUser: "+
			"opencode-seed runs as the image's user "+strconv.FormatInt(seedImageUser, 10)+"; set runAsUser so both run as the same user")
	}
	if rec.FSGroup != nil && (base.FSGroup == nil || *base.FSGroup != *rec.FSGroup) {
		warnings = append(warnings, "spec.template.spec.securityContext.fsGroup set to "+strconv.FormatInt(*rec.FSGroup, 10)+
			" so that a non-root user can write to the workspace claim; set fsGroup yourself to choose it")
	}
	if base.Container == rec.Container {
		for _, f := range sortedKeys(base.Filled) {
			if _, still := rec.Filled[f]; still {
				continue
			}
			if q, set := resourceField(&c.Resources, f); set {
				warnings = append(warnings, "resources "+f+" of container "+c.Name+" is now "+q.String()+", set by you: opencode-injector no longer fills it")
			}
		}
	}
	if psc := ps.SecurityContext; base.FSGroup != nil && rec.FSGroup == nil && psc != nil && psc.FSGroup != nil && *psc.FSGroup != *base.FSGroup {
		warnings = append(warnings, "spec.template.spec.securityContext.fsGroup is now "+strconv.FormatInt(*psc.FSGroup, 10)+", set by you: opencode-injector no longer sets it")
	}
	return warnings
}

// updateWarnings tells the user what an UPDATE that changes the repo, the
// branch or the claim does to the workspace's data.
func updateWarnings(old *metav1.ObjectMeta, cur *appsv1.Deployment, base *record, rec record) []string {
	if base == nil || old.Labels[contract.LabelInject] != contract.LabelInjectEnabled {
		return nil
	}
	var warnings []string
	if o, c := old.Annotations[contract.AnnotationBranch], cur.Annotations[contract.AnnotationBranch]; o != c {
		warnings = append(warnings, "annotation "+contract.AnnotationBranch+" changed: the existing clone keeps its branch; switch it with git in the workspace")
	}
	if base.Clone != "" && base.Clone != rec.Clone {
		warnings = append(warnings, "the clone moves: the old clone stays on the claim at "+base.Clone+"; the repo is cloned beside it at "+rec.Clone+
			" (annotation "+contract.AnnotationRepo+" changed, or the workspace was injected by an older injector); move unpushed work from the old clone")
	}
	if o, c := contract.ClaimName(old.Annotations, old.Name), contract.ClaimName(cur.Annotations, cur.Name); o != c {
		warnings = append(warnings, "annotation "+contract.AnnotationClaim+" changed: the workspace now uses claim "+c+"; the data on claim "+o+" stays there")
	}
	return warnings
}

func sortedKeys[K ~string, V any](m map[K]V) []string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, string(k))
	}
	slices.Sort(keys)
	return keys
}
