package seed

import (
	"errors"
	"os"
	"path/filepath"
	"syscall"
)

// ensureHomeDir creates dir (HOME or an XDG directory) and its missing
// parents. HOME is the user's: where dir or a parent already exists as
// something other than a directory (a symlink whose target is gone, a plain
// file), the user put it there, so it is neither followed nor replaced and
// the start goes on; report says so once.
func ensureHomeDir(dir string, report func(string, ...any)) error {
	err := os.MkdirAll(dir, 0o700)
	if err == nil {
		return nil
	}
	if entry := firstNonDirectory(dir); entry != "" {
		report("%s is not a directory (yours: a symlink whose target is gone, or a file): left as it is, and %s not created", entry, dir)
		return nil
	}
	return diskError(err, "create %s", dir)
}

// firstNonDirectory is the highest entry on the way to dir that exists but
// does not lead to a directory, or "" when there is none.
func firstNonDirectory(dir string) string {
	var path []string
	for p := filepath.Clean(dir); ; p = filepath.Dir(p) {
		path = append([]string{p}, path...)
		if p == filepath.Dir(p) {
			break
		}
	}
	for _, p := range path {
		// Only an entry seen to be there and seen to lead nowhere, or to a
		// non-directory, is the user's; any other error (permission denied)
		// is the caller's to report as a disk error.
		li, err := os.Lstat(p)
		if err != nil {
			return ""
		}
		fi, err := os.Stat(p)
		// A symlink the user made whose target the seed cannot reach is
		// theirs whatever the reason: OpenCode may reach it (a volume only
		// it mounts, or root with the capabilities the seed drops).
		userLink := li.Mode()&os.ModeSymlink != 0
		if err != nil && !userLink && !errors.Is(err, os.ErrNotExist) && !errors.Is(err, syscall.ELOOP) && !errors.Is(err, syscall.ENOTDIR) {
			return ""
		}
		if err != nil || !fi.IsDir() {
			return p
		}
	}
	return ""
}
