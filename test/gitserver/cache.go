package gitserver

import (
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"os"
	"path/filepath"
)

// shapeFormat changes whenever MakeShape makes the same Shape differently,
// so that a cached repository is never one of an older format.
const shapeFormat = 3

// MakeShapeCached is MakeShape for shapes that take minutes to make (60
// versions of a 30 MiB file repacked with a window of 250): the repository
// is made once in cacheDir, under a name that changes with the shape, and
// root/owner/name.git links to it.
func MakeShapeCached(cacheDir, root, owner, name string, s Shape) (int, error) {
	sum := sha256.Sum256([]byte(fmt.Sprintf("%s/%s %#v %d", owner, name, s, shapeFormat)))
	cached := filepath.Join(cacheDir, name+"-"+hex.EncodeToString(sum[:6]))
	bare := filepath.Join(cached, owner, name+".git")
	if _, err := os.Stat(cached); err != nil {
		tmp, err := os.MkdirTemp(cacheDir, ".making-")
		if err != nil {
			return 0, fmt.Errorf("shape cache: %w", err)
		}
		defer os.RemoveAll(tmp)
		if _, err := MakeShape(tmp, owner, name, s); err != nil {
			return 0, err
		}
		if err := os.Rename(tmp, cached); err != nil {
			return 0, fmt.Errorf("shape cache: %w", err)
		}
	}
	link := filepath.Join(root, owner, name+".git")
	if err := os.MkdirAll(filepath.Dir(link), 0o755); err != nil {
		return 0, err
	}
	if err := os.Symlink(bare, link); err != nil {
		return 0, err
	}
	return countObjects(bare)
}

// ShapeCacheDir is where MakeShapeCached keeps shapes between runs: the
// user's cache directory, beside the envtest binaries.
func ShapeCacheDir() (string, error) {
	base, err := os.UserCacheDir()
	if err != nil {
		return "", err
	}
	dir := filepath.Join(base, "opencode-injector", "seed-shapes")
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return "", fmt.Errorf("shape cache: %w", err)
	}
	return dir, nil
}
