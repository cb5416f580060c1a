// Package contract is what the admission webhook and the seed share: the
// label, the annotations, the names, env keys and paths of the injected pod,
// and the parsing of repositories, branches and hosts. Both sides import it;
// neither imports the other.
package contract

// Version is recorded in the status annotation; it changes when the shape of
// what is injected changes incompatibly. v2 moved the clone from
// /data/workspace/<name> to /data/workspace/<host>/<owner>/<name> and records the
// values the injection wrote; objects injected under v1 still un-inject.
const (
	Version   = "v2"
	VersionV1 = "v1"
)

// Prefix is the domain of every label and annotation of the contract.
const Prefix = "opencode.angryninja.cloud/"

// The opt-in label and the annotations users set on the Deployment.
const (
	LabelInject        = Prefix + "inject"
	LabelInjectEnabled = "true"
	// LabelWorkspaces (value LabelWorkspacesEnabled) is the cluster
	// admin's switch for a namespace that holds workspaces: the scale
	// guard (fail-closed) runs there and nowhere else, and the injector
	// creates claims there and nowhere else.
	LabelWorkspaces      = Prefix + "workspaces"
	AnnotationRepo       = Prefix + "repo"
	AnnotationBranch     = Prefix + "branch"
	AnnotationSecret     = Prefix + "secret"
	AnnotationClaim      = Prefix + "claim"
	AnnotationContainer  = Prefix + "container"
	AnnotationSeedMemory = Prefix + "seed-memory" // memory limit of the seed init container
	AnnotationInjected   = Prefix + "injected"    // written by the webhook only
	DefaultContainerName = "app"
)

// LabelWorkspacesEnabled is the value of LabelWorkspaces that consents.
const LabelWorkspacesEnabled = "true"

// AnnotationStorage asks the injector to create the claim, of this size, when
// it does not exist; AnnotationStorageClass names the class of the claim it
// creates (else the cluster's default class).
const (
	AnnotationStorage      = Prefix + "storage"
	AnnotationStorageClass = Prefix + "storage-class"
)

// UserAnnotations are the keys under Prefix that users may set.
var UserAnnotations = []string{AnnotationRepo, AnnotationBranch, AnnotationSecret, AnnotationClaim, AnnotationContainer, AnnotationSeedMemory, AnnotationStorage, AnnotationStorageClass, AnnotationCABundle}

// Names the webhook owns in the pod template.
const (
	SeedContainerName = "opencode-seed"
	DataVolumeName    = "opencode-data"
	AuthVolumeName    = "opencode-auth"
)

// Paths inside the pods.
const (
	DataMountPath  = "/data"
	HomePath       = DataMountPath + "/home"
	WorkspaceRoot  = DataMountPath + "/workspace"
	AuthMountPath  = "/var/run/opencode-auth"
	SeedBinaryPath = "/usr/local/bin/opencode-injector"
	AuthFileName   = "auth.json"
	AuthTargetPath = HomePath + "/.local/share/opencode/" + AuthFileName
	AuthSourcePath = AuthMountPath + "/" + AuthFileName
	TokenUser      = "x-access-token" // GitHub's basic-auth user for a token
)

// Secret keys read from the workspace Secret.
const (
	SecretKeyPassword = "OPENCODE_SERVER_PASSWORD"
	SecretKeyToken    = "GITHUB_TOKEN"
	SecretKeyAuth     = AuthFileName
)

// Env names the webhook owns in the OpenCode container.
const (
	EnvHome           = "HOME"
	EnvXDGData        = "XDG_DATA_HOME"
	EnvXDGConfig      = "XDG_CONFIG_HOME"
	EnvXDGState       = "XDG_STATE_HOME"
	EnvXDGCache       = "XDG_CACHE_HOME"
	EnvPassword       = SecretKeyPassword
	EnvToken          = SecretKeyToken
	EnvGitConfigCount = "GIT_CONFIG_COUNT"
	EnvGitConfigKey   = "GIT_CONFIG_KEY_"   // + index
	EnvGitConfigValue = "GIT_CONFIG_VALUE_" // + index
)

// Env the seed reads (flags of `opencode-injector seed` override them).
const (
	EnvSeedRepo         = "OPENCODE_SEED_REPO"
	EnvSeedBranch       = "OPENCODE_SEED_BRANCH"
	EnvSeedWorkspace    = "OPENCODE_SEED_WORKSPACE"
	EnvSeedAuthSource   = "OPENCODE_SEED_AUTH_SOURCE"
	EnvSeedAuthTarget   = "OPENCODE_SEED_AUTH_TARGET"
	EnvSeedAllowedHosts = "OPENCODE_SEED_ALLOWED_HOSTS"
	// The seed container's own memory limit in bytes, from the downward
	// API (resourceFieldRef limits.memory); the seed budgets its memory by it.
	EnvSeedMemoryLimit = "OPENCODE_SEED_MEMORY_LIMIT"
)

// DefaultAllowedGitHosts is the default of --allowed-git-hosts, for the
// webhook and the seed alike.
const DefaultAllowedGitHosts = "github.com"

// XDGDirs maps HOME and each XDG variable to its directory on the claim.
var XDGDirs = []struct{ Name, Path string }{
	{EnvHome, HomePath},
	{EnvXDGData, HomePath + "/.local/share"},
	{EnvXDGConfig, HomePath + "/.config"},
	{EnvXDGState, HomePath + "/.local/state"},
	{EnvXDGCache, HomePath + "/.cache"},
}
