// Package webhook holds the opencode-injector contract (label, annotations,
// names), the pure injection function and the admission handler around it.
package webhook

// ContractVersion is recorded in the status annotation; it changes when the
// shape of what is injected changes incompatibly.
const ContractVersion = "v1"

// Prefix is the domain of every label and annotation of the contract.
const Prefix = "opencode.angryninja.cloud/"

// The opt-in label and the annotations users set on the Deployment.
const (
	LabelInject          = Prefix + "inject"
	AnnotationRepo       = Prefix + "repo"
	AnnotationBranch     = Prefix + "branch"
	AnnotationSecret     = Prefix + "secret"
	AnnotationClaim      = Prefix + "claim"
	AnnotationContainer  = Prefix + "container"
	AnnotationInjected   = Prefix + "injected" // written by the webhook only
	LabelInjectEnabled   = "true"
	DefaultContainerName = "app"
)

// Names the webhook owns in the pod template.
const (
	SeedContainerName = "opencode-seed"
	DataVolumeName    = "opencode-data"
	AuthVolumeName    = "opencode-auth"
)

// Paths inside the pods.
const (
	DataMountPath     = "/data"
	HomePath          = DataMountPath + "/home"
	WorkspaceRoot     = DataMountPath + "/workspace"
	AuthMountPath     = "/var/run/opencode-auth"
	SeedBinaryPath    = "/usr/local/bin/opencode-injector"
	AuthFileName      = "auth.json"
	opencodeDataDir   = HomePath + "/.local/share/opencode"
	AuthTargetPath    = opencodeDataDir + "/" + AuthFileName
	AuthSourcePath    = AuthMountPath + "/" + AuthFileName
	TokenUser         = "x-access-token" // GitHub's basic-auth user for a token
	tokenEnvReference = "$GITHUB_TOKEN"
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
	envGitConfigKey   = "GIT_CONFIG_KEY_"
	envGitConfigValue = "GIT_CONFIG_VALUE_"
)

// Env the seed reads (flags of `opencode-injector seed` override them).
const (
	EnvSeedRepo         = "OPENCODE_SEED_REPO"
	EnvSeedBranch       = "OPENCODE_SEED_BRANCH"
	EnvSeedWorkspace    = "OPENCODE_SEED_WORKSPACE"
	EnvSeedAuthSource   = "OPENCODE_SEED_AUTH_SOURCE"
	EnvSeedAuthTarget   = "OPENCODE_SEED_AUTH_TARGET"
	EnvSeedAllowedHosts = "OPENCODE_SEED_ALLOWED_HOSTS"
)

// xdgDirs maps each XDG variable to its directory on the claim.
var xdgDirs = []struct{ Name, Path string }{
	{EnvHome, HomePath},
	{EnvXDGData, HomePath + "/.local/share"},
	{EnvXDGConfig, HomePath + "/.config"},
	{EnvXDGState, HomePath + "/.local/state"},
	{EnvXDGCache, HomePath + "/.cache"},
}

// userAnnotations are the keys under Prefix that users may set.
var userAnnotations = []string{AnnotationRepo, AnnotationBranch, AnnotationSecret, AnnotationClaim, AnnotationContainer}
