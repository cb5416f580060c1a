package seed

import (
	"context"
	"errors"
	"fmt"
	"io"
	"strings"
	"sync"
	"time"

	"github.com/go-git/go-git/v5"
	"github.com/go-git/go-git/v5/plumbing"
	"github.com/go-git/go-git/v5/plumbing/filemode"
	"github.com/go-git/go-git/v5/plumbing/format/index"
	"github.com/go-git/go-git/v5/plumbing/object"
	"github.com/go-git/go-git/v5/plumbing/storer"
	"golang.org/x/sys/unix"
)

// The clone's checkout is the seed's own, over go-git's object API: go-git's
// Worktree.Reset looks every file up from the root tree and creates the
// files one at a time, 80% of a clone of 20,000 files. Here one walk of the
// tree creates each directory once and reads every blob (go-git's storage
// is not safe for concurrent use), workers create and write the files in
// parallel, and the index is written with go-git's encoder from the files'
// own fstat, so `git status` finds the work tree clean without reading it.
// The work tree is new and empty: nothing is ever overwritten or followed
// (O_EXCL, O_NOFOLLOW, mkdir), and durability is the stage's one syncfs.

// checkoutWorkers create files in parallel: file creation is the kernel's
// work, and blocks on the filesystem's journal.
const checkoutWorkers = 8

// parallelBlob is the largest blob the walk reads whole and hands to a
// worker; larger ones it streams to their file itself. The bytes in flight
// stay under (workers + queue) × parallelBlob, 6 MiB.
const parallelBlob = 256 << 10

// errBadEntry is a tree entry git itself refuses to check out.
var errBadEntry = errors.New("a path or mode git refuses to check out")

// checkoutHead writes HEAD's tree into dir, the clone's new, empty work
// tree, and its index.
func checkoutHead(ctx context.Context, repo *git.Repository, dir string) error {
	head, err := repo.Head()
	if err != nil {
		return fmt.Errorf("check out: HEAD: %w", err)
	}
	commit, err := repo.CommitObject(head.Hash())
	if err != nil {
		return fmt.Errorf("check out %s: %w", head.Hash(), err)
	}
	tree, err := commit.Tree()
	if err != nil {
		return fmt.Errorf("check out %s: tree: %w", head.Hash(), err)
	}
	c := &checkout{ctx: ctx, store: repo.Storer, dir: dir, jobs: make(chan fileJob, 2*checkoutWorkers)}
	var workers sync.WaitGroup
	for range checkoutWorkers {
		workers.Go(c.work)
	}
	err = c.walk(tree, "")
	close(c.jobs)
	workers.Wait()
	if err == nil {
		err = c.failed()
	}
	if err != nil {
		return err
	}
	if err := repo.Storer.SetIndex(&index.Index{Version: 2, Entries: c.entries}); err != nil {
		return fmt.Errorf("check out: write the index: %w", err)
	}
	return nil
}

type checkout struct {
	ctx     context.Context
	store   storer.EncodedObjectStorer
	dir     string
	entries []*index.Entry // in the walk's order, which is the index's
	jobs    chan fileJob

	mu  sync.Mutex
	err error // the first worker's error
}

// fileJob is one file or symlink for a worker to create: its whole content,
// and the index entry its stat completes.
type fileJob struct {
	entry   *index.Entry
	mode    filemode.FileMode
	content []byte
}

func (c *checkout) fail(err error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.err == nil {
		c.err = err
	}
}

func (c *checkout) failed() error {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.err
}

func (c *checkout) work() {
	for job := range c.jobs {
		if c.failed() != nil {
			continue // drain: the walk stops at its next entry
		}
		if err := c.create(job); err != nil {
			c.fail(err)
		}
	}
}

// walk creates the directories under t and hands out its files, depth
// first in the tree's order (which is the index's).
func (c *checkout) walk(t *object.Tree, prefix string) error {
	for _, e := range t.Entries {
		if err := c.ctx.Err(); err != nil {
			return err
		}
		if err := c.failed(); err != nil {
			return err
		}
		name := prefix + e.Name
		if !checkoutName(e.Name) {
			return fmt.Errorf("check out %q: %w", name, errBadEntry)
		}
		if err := c.entry(e, name); err != nil {
			return err
		}
	}
	return nil
}

func (c *checkout) entry(e object.TreeEntry, name string) error {
	path := c.dir + "/" + name
	switch e.Mode {
	case filemode.Dir:
		if err := unix.Mkdir(path, 0o777); err != nil {
			return fmt.Errorf("check out %s: %w", name, err)
		}
		sub, err := object.GetTree(c.store, e.Hash)
		if err != nil {
			return fmt.Errorf("check out %s: %w", name, err)
		}
		return c.walk(sub, name+"/")
	case filemode.Submodule: // not cloned: an empty directory, as git leaves it
		if err := unix.Mkdir(path, 0o777); err != nil {
			return fmt.Errorf("check out %s: %w", name, err)
		}
		c.entries = append(c.entries, &index.Entry{Name: name, Hash: e.Hash, Mode: e.Mode})
		return nil
	case filemode.Regular, filemode.Deprecated, filemode.Executable, filemode.Symlink:
		return c.blob(e, name)
	default:
		return fmt.Errorf("check out %q: mode %o: %w", name, uint32(e.Mode), errBadEntry)
	}
}

// blob hands a small blob to the workers and streams a large one itself.
func (c *checkout) blob(e object.TreeEntry, name string) error {
	entry := &index.Entry{Name: name, Hash: e.Hash, Mode: e.Mode}
	if e.Mode == filemode.Deprecated {
		entry.Mode = filemode.Regular // as git records it
	}
	c.entries = append(c.entries, entry)
	obj, err := c.store.EncodedObject(plumbing.BlobObject, e.Hash)
	if err != nil {
		return fmt.Errorf("check out %s: %w", name, err)
	}
	r, err := obj.Reader()
	if err != nil {
		return fmt.Errorf("check out %s: %w", name, err)
	}
	defer r.Close()
	if e.Mode == filemode.Symlink && obj.Size() >= unix.PathMax {
		return fmt.Errorf("check out %s: a symlink to a path of %d bytes: %w", name, obj.Size(), unix.ENAMETOOLONG)
	}
	if obj.Size() > parallelBlob && e.Mode != filemode.Symlink {
		return c.stream(entry, e.Mode, r)
	}
	content := make([]byte, obj.Size())
	if _, err := io.ReadFull(r, content); err != nil {
		return fmt.Errorf("check out %s: %w", name, err)
	}
	c.jobs <- fileJob{entry: entry, mode: e.Mode, content: content}
	return nil
}

// create writes one file or symlink and completes its index entry.
func (c *checkout) create(job fileJob) error {
	path := c.dir + "/" + job.entry.Name
	if job.mode == filemode.Symlink {
		if err := unix.Symlink(string(job.content), path); err != nil {
			return fmt.Errorf("check out %s: %w", job.entry.Name, err)
		}
		var st unix.Stat_t
		if err := unix.Lstat(path, &st); err != nil {
			return fmt.Errorf("check out %s: %w", job.entry.Name, err)
		}
		fillStat(job.entry, &st)
		return nil
	}
	fd, err := createFile(path, job.mode)
	if err != nil {
		return fmt.Errorf("check out %s: %w", job.entry.Name, err)
	}
	err = writeAll(fd, job.content)
	if err == nil {
		err = closeFile(fd, job.entry)
	} else {
		_ = unix.Close(fd)
	}
	if err != nil {
		return fmt.Errorf("check out %s: %w", job.entry.Name, err)
	}
	return nil
}

// stream writes a large blob from its reader, a buffer at a time.
func (c *checkout) stream(entry *index.Entry, mode filemode.FileMode, r io.Reader) error {
	fd, err := createFile(c.dir+"/"+entry.Name, mode)
	if err != nil {
		return fmt.Errorf("check out %s: %w", entry.Name, err)
	}
	buf := make([]byte, 64<<10)
	behind := writeBehind{fd: fd}
	for err == nil {
		var n int
		n, err = r.Read(buf)
		if n > 0 {
			if werr := writeAll(fd, buf[:n]); werr != nil {
				err = werr
			} else if werr := behind.wrote(n); werr != nil {
				err = werr
			}
		}
	}
	if err == io.EOF && behind.large() {
		err = behind.finish()
	}
	if err == nil || err == io.EOF {
		err = closeFile(fd, entry)
	} else {
		_ = unix.Close(fd)
	}
	if err != nil {
		return fmt.Errorf("check out %s: %w", entry.Name, err)
	}
	return nil
}

// createFile creates a new file with git's permissions (0666, or 0777 for
// an executable, less the umask).
func createFile(path string, mode filemode.FileMode) (int, error) {
	perm := uint32(0o666)
	if mode == filemode.Executable {
		perm = 0o777
	}
	for {
		fd, err := unix.Open(path, unix.O_WRONLY|unix.O_CREAT|unix.O_EXCL|unix.O_NOFOLLOW|unix.O_CLOEXEC, perm)
		if err != unix.EINTR {
			return fd, err
		}
	}
}

func writeAll(fd int, p []byte) error {
	for len(p) > 0 {
		n, err := unix.Write(fd, p)
		if err == unix.EINTR {
			continue
		}
		if err != nil {
			return err
		}
		p = p[n:]
	}
	return nil
}

// closeFile completes the file's index entry from fstat, then closes it.
func closeFile(fd int, entry *index.Entry) error {
	var st unix.Stat_t
	err := unix.Fstat(fd, &st)
	if closeErr := unix.Close(fd); err == nil {
		err = closeErr
	}
	if err == nil {
		fillStat(entry, &st)
	}
	return err
}

// fillStat records what git compares to tell a file unchanged.
func fillStat(e *index.Entry, st *unix.Stat_t) {
	e.CreatedAt = time.Unix(st.Ctim.Unix())
	e.ModifiedAt = time.Unix(st.Mtim.Unix())
	e.Dev = uint32(st.Dev)
	e.Inode = uint32(st.Ino)
	e.UID = st.Uid
	e.GID = st.Gid
	e.Size = uint32(st.Size)
}

// checkoutName refuses the tree entry names git's verify_path refuses with
// its defaults on Linux (core.protectNTFS on): empty, ".", "..", a slash,
// and .git in any spelling NTFS reads as .git, since a tree could otherwise
// write into the clone's own repository.
func checkoutName(name string) bool {
	if name == "" || name == "." || name == ".." || strings.ContainsAny(name, "/\x00") {
		return false
	}
	n := strings.ToLower(name)
	n, _, _ = strings.Cut(n, ":")  // an NTFS stream: .git::$INDEX_ALLOCATION
	n, _, _ = strings.Cut(n, "\\") // a separator on NTFS
	n = strings.TrimRight(n, " .")
	return n != ".git" && n != "git~1"
}
