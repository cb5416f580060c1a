package seed

import (
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"os"
	"path/filepath"
)

// loginMarkerSuffix names the login marker: the file beside auth.json that
// holds the SHA-256 of what was last seeded (a digest, not a second copy of
// the tokens). The name on disk is part of the contract on users' claims.
const loginMarkerSuffix = ".seeded"

// SeedAuth applies the three-way rule: seed auth.json when absent; keep a
// file that changed on the volume (OpenCode rewrites it on login); follow a
// rotated Secret only while the file is exactly what was last seeded. Where
// the user put something else in the login's way (a dangling symlink, a
// file), nothing is written and the outcome says how to get the login.
func SeedAuth(source, target string) (string, error) {
	src, err := os.ReadFile(source)
	if source == "" || errors.Is(err, os.ErrNotExist) {
		return "the Secret has no auth.json; nothing to seed", nil
	}
	if err != nil {
		return "", diskError(err, "read %s", source)
	}
	// The login's place is in HOME, which is the user's (see ensureHomeDir):
	// an entry of theirs in the way is left alone, and the start goes on.
	if entry := firstNonDirectory(filepath.Dir(target)); entry != "" {
		return fmt.Sprintf("not seeded: %s is not a directory; to have the Secret's login seeded, "+
			"make it a directory on the claim (or a symlink to one) and restart the pod", entry), nil
	}
	if what := notAFile(target); what != "" {
		return fmt.Sprintf("not seeded: %s is %s (yours), left as it is; "+
			"to have the Secret's login seeded, remove it and restart the pod", target, what), nil
	}
	loginMarker := target + loginMarkerSuffix
	cur, err := os.ReadFile(target)
	switch {
	case errors.Is(err, os.ErrNotExist):
		if err := seedFile(target, loginMarker, src); err != nil {
			return "", err
		}
		return "seeded from the Secret", nil
	case err != nil:
		return "", diskError(err, "read %s", target)
	}
	last, _ := os.ReadFile(loginMarker)
	switch {
	case bytes.Equal(cur, src):
		if string(last) != digest(src) {
			// Same bytes as the Secret: mark them, so a later rotation is followed.
			if err := writeAtomic(loginMarker, []byte(digest(src))); err != nil {
				return "", err
			}
		}
		return "up to date with the Secret", nil
	case string(last) == digest(cur):
		if err := seedFile(target, loginMarker, src); err != nil {
			return "", err
		}
		return "updated: the Secret's copy changed and the file was untouched since the last seed", nil
	default:
		return "kept: it changed on the volume since the last seed (a newer login)", nil
	}
}

// notAFile says what stands at the login's place when it is something of
// the user's the seed neither reads nor replaces: a directory, or a symlink
// it cannot follow (its target gone or out of its reach, or a loop);
// empty for a file, a symlink to one, or nothing.
func notAFile(path string) string {
	li, err := os.Lstat(path)
	if err != nil {
		return ""
	}
	fi, err := os.Stat(path)
	switch {
	case err == nil && fi.IsDir():
		return "a directory"
	case err != nil && li.Mode()&os.ModeSymlink != 0 && errors.Is(err, os.ErrNotExist):
		return "a symlink whose target is gone"
	case err != nil && li.Mode()&os.ModeSymlink != 0:
		return "a symlink the seed cannot follow"
	}
	return ""
}

func seedFile(target, loginMarker string, content []byte) error {
	if err := os.MkdirAll(filepath.Dir(target), 0o700); err != nil {
		return diskError(err, "create %s", filepath.Dir(target))
	}
	if err := writeAtomic(target, content); err != nil {
		return err
	}
	return writeAtomic(loginMarker, []byte(digest(content)))
}

func digest(b []byte) string {
	sum := sha256.Sum256(b)
	return hex.EncodeToString(sum[:])
}

// writeAtomic writes a 0600 file through a temporary sibling and a rename,
// with the file and its directory fsynced before and after the rename, so a
// crash never leaves half a file, nor loses one reported written.
func writeAtomic(path string, content []byte) error {
	f, err := os.CreateTemp(filepath.Dir(path), "."+filepath.Base(path)+".tmp-")
	if err != nil {
		return diskError(err, "write %s", path)
	}
	tmp := f.Name()
	err = f.Chmod(0o600)
	if err == nil {
		_, err = f.Write(content)
	}
	if err == nil {
		err = f.Sync()
	}
	if closeErr := f.Close(); err == nil {
		err = closeErr
	}
	if err == nil { // the new file's entry, before the rename makes it count
		err = syncDir(filepath.Dir(path))
	}
	if err == nil {
		err = os.Rename(tmp, path)
	}
	if err != nil {
		_ = os.Remove(tmp)
		return diskError(err, "write %s", path)
	}
	if err := syncDir(filepath.Dir(path)); err != nil { // the rename itself
		return diskError(err, "flush %s to disk", path)
	}
	return nil
}
