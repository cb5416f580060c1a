package seed

import (
	"errors"
	"os"
	"path/filepath"
	"regexp"
	"strings"

	"golang.org/x/sys/unix"
)

// A clone is made in a staging directory, ".<name>.seed-<digits>", beside
// the highest directory of the clone path that does not exist yet (the
// host's, the owner's or the clone's own), with the rest of the path inside
// it. One rename puts the whole subtree in place once the clone is on disk;
// a failed clone removes the staging directory, and the claim is as it was.
// A seed killed midway leaves only that directory, which the next start
// removes. It looks only in the directories the staging can be in (up to
// the claim's root, workspace/<host>/<owner>/<name> above the clone) and
// removes only directories named exactly so that have the sentinel the
// seed creates beside them first: a user's ".notes.seed-2025" is left alone.
var stagingName = regexp.MustCompile(`^\.[^/]+\.seed-[0-9]+$`)

// stagingSentinelSuffix names the sentinel file beside a staging directory
// (".<name>.seed-<digits>.staging"). Beside it, not inside: the rename
// moves the clone away from it, so a staging directory holds its sentinel
// until the instant it stops being one, and a kill at any step before the
// rename (the flush included) leaves a leftover the next start recognises.
// The sentinel is removed after the rename; one a kill left there alone is
// removed by the next start.
const stagingSentinelSuffix = ".staging"

// stagingLevels is how many directories above the clone path a staging
// directory can be in: owner, host, workspace root, claim root.
const stagingLevels = 4

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
	if err := os.WriteFile(s.sentinel(), nil, 0o600); err != nil {
		s.discard()
		return nil, diskError(err, "create %s", s.sentinel())
	}
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
	if err := s.flush(); err != nil {
		return err
	}
	// rename(2) itself: it replaces an empty directory, where os.Rename refuses.
	if err := unix.Rename(s.dir, s.target); err != nil {
		s.discard()
		return diskError(err, "move the clone into %s", s.target)
	}
	if err := os.Remove(s.sentinel()); err != nil {
		return diskError(err, "remove the staging sentinel %s", s.sentinel())
	}
	parent := filepath.Dir(s.target)
	if err := syncDir(parent); err != nil { // the rename; what it sits in was flushed before
		return diskError(err, "flush %s to disk", parent)
	}
	return nil
}

// flush puts the staged clone on disk; the sentinel stays beside it.
func (s *stage) flush() error {
	if err := syncAll(s.dir); err != nil {
		s.discard()
		return diskError(err, "flush the clone in %s to disk", s.dir)
	}
	return nil
}

func (s *stage) sentinel() string { return s.dir + stagingSentinelSuffix }

// discard removes everything the clone created.
func (s *stage) discard() {
	_ = os.RemoveAll(s.dir)
	_ = os.Remove(s.sentinel())
}

// removeStagingLeftovers removes the staging directories a killed seed left
// in the directories above ws it can stage in, whatever clone path that
// seed had, and the marker's temporary file a kill left beside ws.
func removeStagingLeftovers(ws string, report func(string, ...any)) error {
	markerTemp := "." + filepath.Base(cloneMarker(ws)) + ".tmp-" // writeAtomic's name
	dir := filepath.Dir(ws)
	for level := 0; level < stagingLevels; level++ {
		entries, _ := os.ReadDir(dir)
		for _, e := range entries {
			path := filepath.Join(dir, e.Name())
			switch {
			case e.IsDir() && stagingName.MatchString(e.Name()) && isRegular(path+stagingSentinelSuffix):
			case isStraySentinel(path):
			case level == 0 && e.Type().IsRegular() && strings.HasPrefix(e.Name(), markerTemp):
			default:
				continue
			}
			if err := os.RemoveAll(path); err != nil {
				return diskError(err, "remove %s, left by an interrupted clone", path)
			}
			if e.IsDir() { // its sentinel goes after it, as after a rename
				if err := os.Remove(path + stagingSentinelSuffix); err != nil {
					return diskError(err, "remove %s, left by an interrupted clone", path+stagingSentinelSuffix)
				}
			}
			report("removed %s, left by an interrupted clone", path)
		}
		if dir == filepath.Dir(dir) {
			break
		}
		dir = filepath.Dir(dir)
	}
	return nil
}

// isStraySentinel: a staging sentinel without its directory, left by a kill
// after the rename (or already removed with its directory this start).
func isStraySentinel(path string) bool {
	dir, ok := strings.CutSuffix(path, stagingSentinelSuffix)
	if !ok || !stagingName.MatchString(filepath.Base(dir)) || !isRegular(path) {
		return false
	}
	_, err := os.Lstat(dir)
	return errors.Is(err, os.ErrNotExist)
}

func isRegular(path string) bool {
	fi, err := os.Lstat(path)
	return err == nil && fi.Mode().IsRegular()
}
