package seed

import (
	"errors"
	"os"
	"path/filepath"

	"golang.org/x/sys/unix"
)

// A clone is made in a staging directory, ".<name>.seed-<digits>", beside
// the highest directory of the clone path that does not exist yet (the
// host's, the owner's or the clone's own), with the rest of the path inside
// it. One rename puts the whole subtree in place once the clone is on disk;
// a failed clone removes the staging directory, and the claim is as it was.
// A seed killed midway leaves only that directory, which the next start
// removes from any directory above the clone path.
const stagingPattern = ".*.seed-[0-9]*"

func stagingPrefix(name string) string { return "." + name + ".seed-" }

// stage is a clone in the making.
type stage struct {
	dir    string // the staging directory, renamed to target when done
	target string // the highest directory of the clone path that was missing
	clone  string // where the clone is made, inside dir
}

// newStage creates the staging directory for a clone at ws, which may
// exist only as an empty directory (the rename replaces it).
func newStage(ws string) (*stage, error) {
	target := ws
	for parent := filepath.Dir(target); parent != target; parent = filepath.Dir(target) {
		if _, err := os.Lstat(parent); err == nil {
			break
		} else if !errors.Is(err, os.ErrNotExist) {
			return nil, diskError(err, "inspect %s", parent)
		}
		target = parent
	}
	parent := filepath.Dir(target)
	dir, err := os.MkdirTemp(parent, stagingPrefix(filepath.Base(target)))
	if err != nil {
		return nil, diskError(err, "create a staging directory in %s", parent)
	}
	s := &stage{dir: dir, target: target, clone: dir}
	if target != ws {
		rest, _ := filepath.Rel(target, ws)
		s.clone = filepath.Join(dir, rest)
		// The host's and owner's directories, as MkdirAll would make them.
		err = os.Chmod(dir, 0o755)
		if err == nil {
			err = os.MkdirAll(filepath.Dir(s.clone), 0o755)
		}
		if err == nil {
			err = os.Mkdir(s.clone, 0o700)
		}
		if err != nil {
			s.discard()
			return nil, diskError(err, "create %s", s.clone)
		}
	}
	return s, nil
}

// commit flushes the staged clone to disk, then renames it into place and
// flushes the rename: a node crash never leaves a partial clone at the
// clone path.
func (s *stage) commit() error {
	if err := syncAll(s.dir); err != nil {
		s.discard()
		return diskError(err, "flush the clone in %s to disk", s.dir)
	}
	// rename(2) itself: it replaces an empty directory, where os.Rename refuses.
	if err := unix.Rename(s.dir, s.target); err != nil {
		s.discard()
		return diskError(err, "move the clone into %s", s.target)
	}
	parent := filepath.Dir(s.target)
	if err := syncDir(parent); err != nil { // the rename; what it sits in was flushed before
		return diskError(err, "flush %s to disk", parent)
	}
	return nil
}

// discard removes everything the clone created.
func (s *stage) discard() { _ = os.RemoveAll(s.dir) }

// removeStagingLeftovers removes the staging directories a killed seed left
// in any directory above ws, whatever clone path that seed had.
func removeStagingLeftovers(ws string, report func(string, ...any)) error {
	for dir := filepath.Dir(ws); ; dir = filepath.Dir(dir) {
		leftovers, _ := filepath.Glob(filepath.Join(dir, stagingPattern))
		for _, l := range leftovers {
			if fi, err := os.Lstat(l); err != nil || !fi.IsDir() {
				continue
			}
			if err := os.RemoveAll(l); err != nil {
				return diskError(err, "remove %s, left by an interrupted clone", l)
			}
			report("removed %s, left by an interrupted clone", l)
		}
		if dir == filepath.Dir(dir) {
			return nil
		}
	}
}
