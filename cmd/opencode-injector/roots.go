package main

// The image is built FROM an empty base (hack/image): it holds no CA bundle.
// These roots (Mozilla's, through Go's x509roots) are used only when the
// system has none, so on a machine or base with a CA bundle, or with
// SSL_CERT_FILE set, those are used as before.
import _ "golang.org/x/crypto/x509roots/fallback"
