package contract

// A self-hosted git host's CA: the annotation names a ConfigMap in the
// Deployment's namespace holding the PEM certificates under key ca.crt (the
// trust-manager convention). The CA is added to the system roots, never
// substituted for them.
const (
	AnnotationCABundle = Prefix + "ca-bundle"
	CABundleKey        = "ca.crt"
	CAVolumeName       = "opencode-ca"
	CAMountPath        = "/var/run/opencode-ca"
	CASourcePath       = CAMountPath + "/" + CABundleKey
	// CATargetDir on the claim holds what the seed writes on every start:
	// CAFileName (the CA alone, for NODE_EXTRA_CA_CERTS, which Node adds to
	// its own roots) and CAPoolFileName (the system roots plus the CA, for
	// GIT_SSL_CAINFO, which replaces git's roots).
	CATargetDir    = DataMountPath + "/tls"
	CAFileName     = "ca.crt"
	CAPoolFileName = "ca-certificates.crt"
)

// Env of the OpenCode container when a CA is given, and of the seed.
const (
	EnvGitSSLCAInfo     = "GIT_SSL_CAINFO"
	EnvNodeExtraCACerts = "NODE_EXTRA_CA_CERTS"
	EnvSeedCASource     = "OPENCODE_SEED_CA_SOURCE"
	EnvSeedCATarget     = "OPENCODE_SEED_CA_TARGET"
)
