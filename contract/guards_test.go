package contract

import (
	"errors"
	"strings"
	"testing"
)

// Whole bytes are checked exactly at any size: the exabyte sizes that
// MilliValue wraps are judged right, and the sizes the parser clamps (8Ei
// and up) are refused rather than silently changed.
func TestStorageIsExactlyWholeBytesAtAnySize(t *testing.T) {
	for v, ok := range map[string]bool{
		"1Ei":                 true,
		"1.5Ei":               true,
		"7Ei":                 true,
		"1000m":               true,
		"9223372036854775806": true,
		"1.000000001Ei":       false, // not a whole number of bytes
		"1500m":               false,
		"1n":                  false,
		"8Ei":                 false, // clamped by the parser to 8Ei-1
		"100Ei":               false,
		"9223372036854775807": false,
		"9223372036854775808": false,
	} {
		s, err := ParseStorage(map[string]string{AnnotationStorage: v})
		var ae *AnnotationError
		switch {
		case ok && (err != nil || s == nil):
			t.Errorf("%s: %v, want accepted", v, err)
		case !ok && (!errors.As(err, &ae) || ae.Key != AnnotationStorage):
			t.Errorf("%s: %v, want a denial naming %s", v, err, AnnotationStorage)
		}
	}
}

var tokens = []string{
	"ghp_0123456789abcdefABCDEF0123456789abcd",
	"gho_0123456789abcdefABCDEF0123456789abcd",
	"ghu_0123456789abcdefABCDEF0123456789abcd",
	"ghs_0123456789abcdefABCDEF0123456789abcd",
	"ghr_0123456789abcdefABCDEF0123456789abcd",
	"github_pat_11ABCDEFG0123456789_abcdefghijklmnopqrstuvwxyz0123456789",
	"glpat-0123456789abcdefABCD",
}

// secretPart is what of a token may never appear: all but its prefix.
func secretPart(tok string) string { return tok[len(tok)-12:] }

// A token pasted as a bare value, or inside one, is never echoed by any
// denial of the contract's parsers.
func TestNoTokenLikeValueIsEchoed(t *testing.T) {
	for _, tok := range tokens {
		errs := []error{
			func() error { _, err := ParseRepo(tok, []string{"github.com"}); return err }(),
			func() error { _, err := ParseRepo("owner/"+tok+"!", []string{"github.com"}); return err }(),
			ValidateBranch(tok + ".lock"),
			func() error { _, err := ParseStorage(map[string]string{AnnotationStorage: tok}); return err }(),
			func() error {
				_, err := ParseStorage(map[string]string{AnnotationStorage: "1Gi", AnnotationStorageClass: tok})
				return err
			}(),
			func() error { _, err := ParseHosts(tok + "/x"); return err }(),
		}
		for i, err := range errs {
			if err == nil {
				t.Fatalf("%s: case %d was accepted", tok, i)
			}
			if strings.Contains(err.Error(), secretPart(tok)) {
				t.Errorf("case %d echoes the token: %v", i, err)
			}
		}
		if got := HideTokens("x " + strings.ToUpper(tok) + " y"); got != "x REDACTED y" {
			t.Errorf("HideTokens of an upper-case token: %q", got)
		}
	}
}

// Redaction only where a credential can be: a commit stays visible, and a
// name keeps its '@' (only URL-like values lose what is before it).
func TestRedactionOnlyWhereACredentialCanBe(t *testing.T) {
	commit := "0123456789abcdef0123456789abcdef01234567"
	if got := Mask(commit); got != commit {
		t.Errorf("a commit was hidden: %q", got)
	}
	if got := Redact("https://github.com/a/" + commit); got != "https://github.com/a/"+commit {
		t.Errorf("a commit in a URL was hidden: %q", got)
	}
	err := ValidateBranch("a@{b")
	if err == nil || !strings.Contains(err.Error(), `"a@{b"`) {
		t.Errorf("a bad branch name is not shown as given: %v", err)
	}
	_, err = ParseStorage(map[string]string{AnnotationStorage: "1Gi", AnnotationStorageClass: "a@b"})
	if err == nil || !strings.Contains(err.Error(), `"a@b"`) {
		t.Errorf("a bad class name is not shown as given: %v", err)
	}
	if got := Mask(strings.Repeat("x", 1000)); len(got) > maxQuoted+3 {
		t.Errorf("a long value is repeated whole (%d bytes)", len(got))
	}
}

// A password may hold '@': Redact cuts at the last one, so none of it
// shows.
func TestRedactCutsAtTheLastAt(t *testing.T) {
	if got := Redact("https://user:p@ss@github.com/a/b"); got != "https://REDACTED@github.com/a/b" {
		t.Errorf("Redact = %q", got)
	}
}

// HEAD names no branch (git check-ref-format --branch refuses it).
func TestValidateBranchRefusesHEAD(t *testing.T) {
	if err := ValidateBranch("HEAD"); err == nil {
		t.Error("HEAD was accepted as a branch")
	}
	for _, b := range []string{"main", "release/1.2", "head", "HEADS"} {
		if err := ValidateBranch(b); err != nil {
			t.Errorf("%s: %v", b, err)
		}
	}
}

// A host becomes a directory of the clone path: '..' and other non-names
// are refused.
func TestParseHostsRefusesWhatIsNotAHost(t *testing.T) {
	for _, h := range []string{"..", ".", "a..b", ".github.com", "github.com.", "github.com:0", "github.com:65536", "github.com:08", "github.com:", "git hub.com", "a/b", "user@host", "host?x", "host#x", "-host.com"} {
		if got, err := ParseHosts(h); err == nil {
			t.Errorf("%q accepted as %q", h, got)
		}
	}
	got, err := ParseHosts(" GitHub.com, git.example.com:8443 ,10.0.0.1:1,")
	if err != nil || strings.Join(got, ",") != "github.com,git.example.com:8443,10.0.0.1:1" {
		t.Errorf("valid hosts: %q, %v", got, err)
	}
}

// A user:password pasted where no URL belongs (a Secret or branch name) is
// not repeated in a message, also with '/' in the password, nor is a
// percent-encoded token (issue 18 review, finding 7); an image digest or a
// namespaced name is.
func TestHideTokensHidesUserinfo(t *testing.T) {
	for in, want := range map[string]string{
		"clone https://x/o/ghp%5FAbcdef0123456789 failed":     "clone https://x/o/REDACTED failed",
		"clone https://x/o/GLPAT%2dAbcdef0123 failed":         "clone https://x/o/REDACTED failed",
		"remote alice:s3cr/et@example refused":                "remote REDACTED@example refused",
		"remote https://alice:s3cr/et@example refused":        "remote https://REDACTED@example refused",
		`secret "https://user:hunter2@x" is not a valid name`: `secret "https://REDACTED@x" is not a valid name`,
		`branch user:hunter2@host is refused`:                 `branch REDACTED@host is refused`,
		`image ghcr.io/a/b@sha256:0123 kept`:                  `image ghcr.io/a/b@sha256:0123 kept`,
		`user system:serviceaccount:ns:sa may not`:            `user system:serviceaccount:ns:sa may not`,
	} {
		if got := HideTokens(in); got != want {
			t.Errorf("HideTokens(%q) = %q, want %q", in, got, want)
		}
	}
}

// Issue 18 review, finding 4: a token pasted as a repository's name (also
// percent-encoded) or as a branch is refused at admission with a denial
// naming the annotation, without the token: it would otherwise reach the
// seed's output and the Pod's status.
func TestTokenLikeRepoAndBranchAreRefused(t *testing.T) {
	for _, tok := range tokens {
		encoded := strings.Replace(strings.Replace(tok, "_", "%5F", 1), "glpat-", "glpat%2D", 1)
		for key, err := range map[string]error{
			"repo " + tok: func() error { _, err := ParseRepo("someone/"+tok, []string{"github.com"}); return err }(),
			"repo URL " + tok: func() error {
				_, err := ParseRepo("https://github.com/"+tok+"/name", []string{"github.com"})
				return err
			}(),
			"repo " + encoded: func() error { _, err := ParseRepo("https://github.com/o/"+encoded, []string{"github.com"}); return err }(),
			"branch " + tok:   ValidateBranch(tok),
			"branch x/" + tok: ValidateBranch("feature/" + tok),
		} {
			var ae *AnnotationError
			if !errors.As(err, &ae) {
				t.Errorf("%s: %v, want a denial", key, err)
				continue
			}
			// The problem is read as written: HideTokens leaves it alone.
			if strings.Contains(err.Error(), secretPart(tok)) || !strings.Contains(err.Error(), "token-like") || HideTokens(ae.Problem) != ae.Problem {
				t.Errorf("%s: %v", key, err)
			}
		}
	}
	if _, err := ParseRepo("someone/0123456789abcdef0123456789abcdef01234567", []string{"github.com"}); err != nil {
		t.Errorf("a 40-hex name is no token: %v", err)
	}
}
