package injection

import (
	"regexp"
	"slices"
	"strconv"
	"strings"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/equality"
	"k8s.io/utils/ptr"

	"github.com/angryninja/opencode-injector/contract"
)

var gitConfigPair = regexp.MustCompile(`^GIT_CONFIG_(KEY|VALUE)_[0-9]+$`)

// ownedEnv reports whether the webhook owns the env name in the OpenCode
// container.
func ownedEnv(name string) bool {
	switch name {
	case contract.EnvHome, contract.EnvXDGData, contract.EnvXDGConfig, contract.EnvXDGState, contract.EnvXDGCache,
		contract.EnvPassword, contract.EnvToken, contract.EnvGitConfigCount:
		return true
	}
	return gitConfigPair.MatchString(name)
}

// mayBeWritten reports whether e could be an entry some injection wrote,
// whatever its record said: without a trusted record, only such entries
// go. A value the injection never writes (HOME=/home/me, a token from
// another key) is the user's and stays. The password entry is never one:
// ours cannot be told from the user's, and OpenCode must keep one.
func mayBeWritten(e corev1.EnvVar) bool {
	if e.Name == contract.EnvPassword {
		return false
	}
	if e.Name == contract.EnvToken {
		ref := e.ValueFrom
		return ref != nil && ref.SecretKeyRef != nil && envEqual(e, tokenEnv(ref.SecretKeyRef.Name))
	}
	for _, x := range contract.XDGDirs {
		if e.Name == x.Name {
			return envEqual(e, corev1.EnvVar{Name: x.Name, Value: x.Path})
		}
	}
	if isCAEnv(e.Name) {
		return isWritten(e, caEnv())
	}
	return ownedEnv(e.Name)
}

func secretEnv(name, secret, key string, optional bool) corev1.EnvVar {
	ref := &corev1.SecretKeySelector{LocalObjectReference: corev1.LocalObjectReference{Name: secret}, Key: key}
	if optional {
		ref.Optional = ptr.To(true)
	}
	return corev1.EnvVar{Name: name, ValueFrom: &corev1.EnvVarSource{SecretKeyRef: ref}}
}

// homeEnv is HOME and the XDG directories on the claim (values: each
// review appends copies).
var homeEnv = func() []corev1.EnvVar {
	env := make([]corev1.EnvVar, len(contract.XDGDirs))
	for i, x := range contract.XDGDirs {
		env[i] = corev1.EnvVar{Name: x.Name, Value: x.Path}
	}
	return env
}()

// tokenEnv is the optional GitHub token; without the key git and the seed
// work anonymously.
func tokenEnv(secret string) corev1.EnvVar {
	return secretEnv(contract.EnvToken, secret, contract.SecretKeyToken, true)
}

// credentialHelper answers git's "get" with the token from the environment,
// so no token is ever written to disk.
const credentialHelper = `!f() { test "$1" = get && echo username=` + contract.TokenUser + ` && echo "password=$` + contract.EnvToken + `"; }; f`

// appendGitConfigEnv appends the entries that scope the credential helper
// to each allowed host and mark the clone safe, through git's
// GIT_CONFIG_COUNT environment.
func appendGitConfigEnv(env []corev1.EnvVar, clone string, hosts []string) []corev1.EnvVar {
	n := strconv.Itoa(len(hosts))
	env = append(env, corev1.EnvVar{Name: contract.EnvGitConfigCount, Value: strconv.Itoa(len(hosts) + 1)})
	env = append(env, credentialEnv(hosts)...)
	return append(env, corev1.EnvVar{Name: contract.EnvGitConfigKey + n, Value: "safe.directory"}, corev1.EnvVar{Name: contract.EnvGitConfigValue + n, Value: clone})
}

// writtenEnv is the env the injection described by rec adds to the OpenCode
// container, in order.
func writtenEnv(rec record) []corev1.EnvVar {
	env := make([]corev1.EnvVar, 0, len(homeEnv)+2+1+2*(len(rec.Hosts)+1)+2)
	env = append(env, homeEnv...)
	env = append(env, secretEnv(contract.EnvPassword, rec.Secret, contract.SecretKeyPassword, false), tokenEnv(rec.Secret))
	env = appendGitConfigEnv(env, rec.Clone, rec.Hosts)
	if rec.CABundle != "" {
		env = append(env, caEnv()...)
	}
	return env
}

// unmerged splits an entry that holds both a value and a valueFrom, which
// the API refuses and only a server-side apply merge makes (the user's
// applied value over the valueFrom the injection wrote there, or the
// reverse). When the user's half is the original the record keeps, the
// entry is the injection's (it goes, and the original is put back at its
// index, as before the apply); otherwise the user's half is a value they
// set since.
func unmerged(e corev1.EnvVar, written []corev1.EnvVar, originals envIndex[replacedEnv]) corev1.EnvVar {
	if e.Value == "" || e.ValueFrom == nil {
		return e
	}
	ours, users := corev1.EnvVar{Name: e.Name, ValueFrom: e.ValueFrom}, corev1.EnvVar{Name: e.Name, Value: e.Value}
	if !isWritten(ours, written) {
		ours, users = users, ours
		if !isWritten(ours, written) {
			return e
		}
	}
	if originals.has(users.Name, func(o corev1.EnvVar) bool { return envEqual(o, users) }) {
		return ours
	}
	return users
}

// envIndex finds env entries by name among items (env gives an item's
// entry): by a scan when the lookups or the items are a handful (linear
// still, and nothing to allocate on the usual review), by a map built once
// when both are many, since a scan per lookup of a long record would cost
// its square.
type envIndex[T any] struct {
	items  []T
	env    func(T) corev1.EnvVar
	byName map[string][]corev1.EnvVar // nil: scan items
}

func indexEnv[T any](items []T, env func(T) corev1.EnvVar, lookups int) envIndex[T] {
	x := envIndex[T]{items: items, env: env}
	if lookups > 16 && len(items) > 16 {
		x.byName = make(map[string][]corev1.EnvVar, len(items))
		for _, it := range items {
			e := env(it)
			x.byName[e.Name] = append(x.byName[e.Name], e)
		}
	}
	return x
}

// has reports whether an entry named name matches.
func (x envIndex[T]) has(name string, match func(corev1.EnvVar) bool) bool {
	if x.byName != nil {
		return slices.ContainsFunc(x.byName[name], match)
	}
	for _, it := range x.items {
		if e := x.env(it); e.Name == name && match(e) {
			return true
		}
	}
	return false
}

func plainEnv(e corev1.EnvVar) corev1.EnvVar  { return e }
func recordedEnv(r replacedEnv) corev1.EnvVar { return r.EnvVar }

// putBack inserts each original the record keeps, unless the user has set
// its name since, at its recorded index, as one insertion after the other
// would, in one pass: a trusted record's indices increase (agreesWith).
func putBack(env []corev1.EnvVar, originals []replacedEnv, usersNow map[string]bool) []corev1.EnvVar {
	if len(originals) == 0 {
		return env
	}
	out := make([]corev1.EnvVar, 0, len(env)+len(originals))
	k := 0
	for _, o := range originals {
		if usersNow[o.Name] {
			continue
		}
		for ; len(out) < o.Index && k < len(env); k++ {
			out = append(out, env[k])
		}
		out = append(out, o.EnvVar)
	}
	return append(out, env[k:]...)
}

// isWritten reports whether e is exactly an entry of written.
func isWritten(e corev1.EnvVar, written []corev1.EnvVar) bool {
	return slices.ContainsFunc(written, func(w corev1.EnvVar) bool { return envEqual(e, w) })
}

// envEqual compares env entries without reflection for the shapes the
// injection writes (a value, or a Secret key), which every admission review
// compares many times.
func envEqual(a, b corev1.EnvVar) bool {
	if a.Name != b.Name || a.Value != b.Value || (a.ValueFrom == nil) != (b.ValueFrom == nil) {
		return false
	}
	if a.ValueFrom == nil {
		return true
	}
	as, bs := a.ValueFrom.SecretKeyRef, b.ValueFrom.SecretKeyRef
	if as != nil && bs != nil && *a.ValueFrom == (corev1.EnvVarSource{SecretKeyRef: as}) && *b.ValueFrom == (corev1.EnvVarSource{SecretKeyRef: bs}) {
		return as.Name == bs.Name && as.Key == bs.Key && ptr.Deref(as.Optional, false) == ptr.Deref(bs.Optional, false) && (as.Optional == nil) == (bs.Optional == nil)
	}
	return equality.Semantic.DeepEqual(a, b)
}

// insideClone reports whether dir is the clone or a directory in it, which
// is where users of monorepos point OpenCode.
func insideClone(dir, clone string) bool {
	return dir == clone || strings.HasPrefix(dir, clone+"/")
}

// injectContainer adds the env, working directory, claim mount and resource
// defaults to the OpenCode container, and records what it replaced.
func injectContainer(c *corev1.Container, rec *record, s Settings) {
	var kept []corev1.EnvVar
	for i, e := range c.Env {
		if rec.ownsEnv(e.Name) {
			rec.Env = append(rec.Env, replacedEnv{Index: i, EnvVar: e})
			continue
		}
		kept = append(kept, e)
	}
	c.Env = append(kept, writtenEnv(*rec)...)
	if !insideClone(c.WorkingDir, rec.Clone) {
		rec.WorkingDir = ptr.To(c.WorkingDir)
		c.WorkingDir = rec.Clone
	}
	c.VolumeMounts = append(c.VolumeMounts, dataMount())
	rec.Filled = fillResources(&c.Resources, s)
}

// stripContainer undoes injectContainer. Each item the injection wrote goes
// (or gets the user's original back) only while it holds exactly what was
// written; a value the user set since stays. Without a trusted record only
// what may be ours goes (mayBeWritten: never the password entry), and
// resources stay.
func stripContainer(c *corev1.Container, rec record, trusted bool) {
	c.VolumeMounts = slices.DeleteFunc(c.VolumeMounts, isDataMount)
	if len(c.VolumeMounts) == 0 {
		c.VolumeMounts = nil
	}
	if !trusted {
		c.Env = slices.DeleteFunc(c.Env, mayBeWritten)
		if strings.HasPrefix(c.WorkingDir, contract.WorkspaceRoot+"/") {
			c.WorkingDir = ""
		}
	} else {
		written := writtenEnv(rec)
		// A v1 record did not say what it wrote: a password entry goes only
		// when the record holds the user's own to put back.
		legacyKeepsPassword := rec.legacy && !slices.ContainsFunc(rec.Env, func(e replacedEnv) bool { return e.Name == contract.EnvPassword })
		originals := indexEnv(rec.Env, recordedEnv, len(c.Env))
		for i := range c.Env {
			c.Env[i] = unmerged(c.Env[i], written, originals)
		}
		var usersNow map[string]bool // owned names holding a value the user set since
		c.Env = slices.DeleteFunc(c.Env, func(e corev1.EnvVar) bool {
			if !rec.ownsEnv(e.Name) || e.Name == contract.EnvPassword && legacyKeepsPassword {
				return false
			}
			if rec.legacy || isWritten(e, written) {
				return true
			}
			if usersNow == nil {
				usersNow = map[string]bool{}
			}
			usersNow[e.Name] = true
			return false
		})
		c.Env = putBack(c.Env, rec.Env, usersNow)
		if rec.WorkingDir != nil && rec.Clone != "" && c.WorkingDir == rec.Clone {
			c.WorkingDir = *rec.WorkingDir
		}
		unfillResources(&c.Resources, rec.Filled)
	}
	if len(c.Env) == 0 {
		c.Env = nil
	}
}
