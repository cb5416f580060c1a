package webhook

import (
	"regexp"
	"slices"
	"strconv"
	"strings"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/utils/ptr"
)

var gitConfigPair = regexp.MustCompile(`^GIT_CONFIG_(KEY|VALUE)_[0-9]+$`)

// ownedEnv reports whether the webhook owns the env name in the OpenCode
// container.
func ownedEnv(name string) bool {
	switch name {
	case EnvHome, EnvXDGData, EnvXDGConfig, EnvXDGState, EnvXDGCache, EnvPassword, EnvToken, EnvGitConfigCount:
		return true
	}
	return gitConfigPair.MatchString(name)
}

func secretEnv(name, secret, key string, optional bool) corev1.EnvVar {
	ref := &corev1.SecretKeySelector{LocalObjectReference: corev1.LocalObjectReference{Name: secret}, Key: key}
	if optional {
		ref.Optional = ptr.To(true)
	}
	return corev1.EnvVar{Name: name, ValueFrom: &corev1.EnvVarSource{SecretKeyRef: ref}}
}

// homeEnv is HOME and the XDG directories on the claim.
func homeEnv() []corev1.EnvVar {
	env := make([]corev1.EnvVar, len(xdgDirs))
	for i, x := range xdgDirs {
		env[i] = corev1.EnvVar{Name: x.Name, Value: x.Path}
	}
	return env
}

// tokenEnv is the optional GitHub token; without the key git and the seed
// work anonymously.
func tokenEnv(ws Workspace) corev1.EnvVar {
	return secretEnv(EnvToken, ws.Secret, SecretKeyToken, true)
}

// credentialHelper answers git's "get" with the token from the environment,
// so no token is ever written to disk.
const credentialHelper = `!f() { test "$1" = get && echo username=` + TokenUser + ` && echo "password=` + tokenEnvReference + `"; }; f`

// gitConfigEnv scopes the credential helper to each allowed host and marks
// the clone safe, through git's GIT_CONFIG_COUNT environment.
func gitConfigEnv(ws Workspace, s Settings) []corev1.EnvVar {
	var pairs [][2]string
	for _, h := range s.AllowedGitHosts {
		pairs = append(pairs, [2]string{"credential.https://" + h + ".helper", credentialHelper})
	}
	pairs = append(pairs, [2]string{"safe.directory", ws.ClonePath()})
	env := []corev1.EnvVar{{Name: EnvGitConfigCount, Value: strconv.Itoa(len(pairs))}}
	for i, p := range pairs {
		n := strconv.Itoa(i)
		env = append(env, corev1.EnvVar{Name: envGitConfigKey + n, Value: p[0]}, corev1.EnvVar{Name: envGitConfigValue + n, Value: p[1]})
	}
	return env
}

// injectContainer adds the env, working directory, claim mount and resource
// defaults to the OpenCode container.
func injectContainer(c *corev1.Container, ws Workspace, s Settings, rec *record) []string {
	var warnings []string
	var kept []corev1.EnvVar
	for i, e := range c.Env {
		if ownedEnv(e.Name) {
			rec.Env = append(rec.Env, replacedEnv{Index: i, EnvVar: e})
			warnings = append(warnings, "env "+e.Name+" of container "+c.Name+" replaced: opencode-injector sets it for persistence and the password")
			continue
		}
		kept = append(kept, e)
	}
	c.Env = append(kept, homeEnv()...)
	c.Env = append(c.Env, secretEnv(EnvPassword, ws.Secret, SecretKeyPassword, false), tokenEnv(ws))
	c.Env = append(c.Env, gitConfigEnv(ws, s)...)

	if c.WorkingDir != "" && c.WorkingDir != ws.ClonePath() {
		rec.WorkingDir = c.WorkingDir
		warnings = append(warnings, "workingDir "+c.WorkingDir+" of container "+c.Name+" replaced by the clone "+ws.ClonePath())
	}
	c.WorkingDir = ws.ClonePath()
	c.VolumeMounts = append(c.VolumeMounts, dataMount())
	rec.Filled = fillResources(&c.Resources, s)
	return warnings
}

// stripContainer undoes injectContainer; with an untrusted record only what
// is ours by name goes.
func stripContainer(c *corev1.Container, rec record, trusted bool) {
	c.Env = slices.DeleteFunc(c.Env, func(e corev1.EnvVar) bool { return ownedEnv(e.Name) })
	if trusted {
		for _, e := range rec.Env {
			c.Env = slices.Insert(c.Env, min(max(e.Index, 0), len(c.Env)), e.EnvVar)
		}
		c.WorkingDir = rec.WorkingDir
		unfillResources(&c.Resources, rec.Filled)
	} else if strings.HasPrefix(c.WorkingDir, WorkspaceRoot+"/") {
		c.WorkingDir = ""
	}
	if len(c.Env) == 0 {
		c.Env = nil
	}
}
