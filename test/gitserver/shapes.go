package gitserver

import (
	"bufio"
	"fmt"
	"io"
	"math/rand/v2"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
)

// Shape describes a generated repository of the kinds that make a first
// clone expensive: one large incompressible file, many small files in deep
// trees, a long history of the same files, many objects.
type Shape struct {
	Name      string
	LargeFile int64    // size in bytes of one incompressible file (0: none)
	Versions  int      // versions of the large file, each a commit (a delta onto the last)
	Files     int      // small text files in the first commit
	Fanout    int      // subdirectories per directory
	Depth     int      // directory levels above each file
	Commits   int      // later commits, each changing Touch files
	Touch     int      // files each later commit changes
	Repack    []string // arguments the history is repacked with (nil: -adq)
}

// The shapes of issue 8 at full size (the benchmarks); tests use smaller
// ones of the same kinds.
var (
	ShapeLarge   = Shape{Name: "large", LargeFile: 200_000_000, Files: 3, Fanout: 1, Depth: 1}
	ShapeDeep    = Shape{Name: "deep", Files: 20_000, Fanout: 4, Depth: 6}
	ShapeHistory = Shape{Name: "history", Files: 20, Fanout: 1, Depth: 1, Commits: 2_000, Touch: 20}
	ShapeObjects = Shape{Name: "objects", Files: 20_000, Fanout: 10, Depth: 3, Commits: 1_350, Touch: 40}
	Shapes       = []Shape{ShapeLarge, ShapeDeep, ShapeHistory, ShapeObjects}
)

// MakeShape creates the bare repository root/owner/name.git in the given
// shape, with git fast-import (the files never touch a work tree), then
// repacks a history so the server sends deltas as a real host would. It returns how
// many objects the repository holds.
func MakeShape(root, owner, name string, s Shape) (int, error) {
	bare := filepath.Join(root, owner, name+".git")
	if err := os.MkdirAll(bare, 0o755); err != nil {
		return 0, err
	}
	if err := Git(bare, "init", "-q", "--bare", "-b", "main"); err != nil {
		return 0, err
	}
	// Always a pack; stored, not deflated: zlib stores an incompressible
	// file's blocks anyway, and this is much faster.
	cmd := exec.Command("git", "-c", "fastimport.unpackLimit=0", "-c", "pack.compression=0", "fast-import", "--quiet", "--done")
	cmd.Dir = bare
	cmd.Env = append(os.Environ(), "GIT_CONFIG_NOSYSTEM=1", "GIT_CONFIG_GLOBAL=/dev/null", "HOME="+bare)
	stdin, err := cmd.StdinPipe()
	if err != nil {
		return 0, err
	}
	var stderr strings.Builder
	cmd.Stderr = &stderr
	if err := cmd.Start(); err != nil {
		return 0, err
	}
	werr := writeStream(bufio.NewWriterSize(stdin, 1<<20), s)
	_ = stdin.Close()
	if err := cmd.Wait(); err != nil || werr != nil {
		return 0, fmt.Errorf("git fast-import of shape %s: %v, %v: %s", s.Name, werr, err, stderr.String())
	}
	if s.LargeFile == 0 || s.Versions > 1 { // one random blob: no deltas to find
		repack := s.Repack
		if repack == nil {
			repack = []string{"-adq"}
		}
		if err := Git(bare, append([]string{"repack"}, repack...)...); err != nil {
			return 0, err
		}
	}
	return countObjects(bare)
}

// countObjects is how many objects the packs of bare hold.
func countObjects(bare string) (int, error) {
	out, err := exec.Command("git", "-C", bare, "count-objects", "-v").Output()
	if err != nil {
		return 0, err
	}
	for _, line := range strings.Split(string(out), "\n") {
		if v, ok := strings.CutPrefix(line, "in-pack: "); ok {
			return strconv.Atoi(v)
		}
	}
	return 0, fmt.Errorf("git count-objects: no in-pack count in %q", out)
}

// path of small file f: Depth directory levels of Fanout each.
func (s Shape) path(f int) string {
	var b strings.Builder
	n := f
	for level := 0; level < s.Depth; level++ {
		fmt.Fprintf(&b, "d%d/", n%s.Fanout)
		n /= s.Fanout
	}
	fmt.Fprintf(&b, "file%d.txt", f)
	return b.String()
}

const words = "opencode workspace flux kustomization helmrelease namespace secret automation sensor template "

// text is a small text file's content: version v of file f.
func text(f, v int) string {
	rng := rand.New(rand.NewPCG(uint64(f), 7))
	var b strings.Builder
	fmt.Fprintf(&b, "file %d, version %d\n", f, v)
	for line := 0; line < 4+int(rng.IntN(40)); line++ {
		start := rng.IntN(len(words) / 2)
		b.WriteString(words[start : start+20+rng.IntN(len(words)/2-20)])
		b.WriteByte('\n')
	}
	return b.String()
}

// large writes version v of the large file: the same random bytes, with
// markers written over them in the second half, each at its own place:
// version v carries its own and those of version v/2, v/4 and so on down
// to 1. Each version is an earlier one with one more change, edits on
// branches of branches, which makes git build delta trees that branch at
// every depth.
func large(w *bufio.Writer, size int64, v, versions int) error {
	fmt.Fprintf(w, "M 100644 inline media/large.bin\ndata %d\n", size)
	rng := rand.NewChaCha8([32]byte{8})
	half := size / 2
	stride := half / int64(max(versions, 1))
	var marks []int // ascending: v's line of versions, from 1 up
	for k := v; k > 0; k /= 2 {
		marks = append([]int{k}, marks...)
	}
	written := int64(0)
	for _, k := range marks {
		marker := fmt.Sprintf("version %08d", k)
		at := half + int64(k-1)*stride
		if at+int64(len(marker)) > size {
			break
		}
		if _, err := io.CopyN(w, rng, at-written); err != nil {
			return err
		}
		w.WriteString(marker)
		if _, err := io.CopyN(io.Discard, rng, int64(len(marker))); err != nil {
			return err
		}
		written = at + int64(len(marker))
	}
	if _, err := io.CopyN(w, rng, size-written); err != nil {
		return err
	}
	w.WriteString("\n")
	return nil
}

func writeStream(w *bufio.Writer, s Shape) error {
	const who = "test <test@example.com> 1767225600 +0000"
	commit := func(n int, msg string, files func() error) error {
		fmt.Fprintf(w, "commit refs/heads/main\ncommitter %s\ndata %d\n%s\n", who, len(msg), msg)
		if n == 0 {
			w.WriteString("deleteall\n")
		} // later commits continue the branch
		if err := files(); err != nil {
			return err
		}
		w.WriteString("\n")
		return nil
	}
	inline := func(path, content string) {
		fmt.Fprintf(w, "M 100644 inline %s\ndata %d\n%s\n", path, len(content), content)
	}
	err := commit(0, "first commit", func() error {
		inline("README.md", "# "+s.Name+"\n")
		for f := 0; f < s.Files; f++ {
			inline(s.path(f), text(f, 0))
		}
		if s.LargeFile > 0 {
			return large(w, s.LargeFile, 0, s.Versions)
		}
		return nil
	})
	if err != nil {
		return err
	}
	for v := 1; v < s.Versions; v++ {
		if err := commit(v, "large file, version "+strconv.Itoa(v), func() error { return large(w, s.LargeFile, v, s.Versions) }); err != nil {
			return err
		}
	}
	// Spread each commit's changes over the tree.
	stride := max(1, s.Files/max(1, s.Touch))
	if stride > 1 {
		stride++
	}
	for c := 1; c <= s.Commits; c++ {
		_ = commit(c, "commit "+strconv.Itoa(c), func() error {
			for t := 0; t < s.Touch; t++ {
				f := (c*s.Touch + t*stride) % s.Files
				inline(s.path(f), text(f, c))
			}
			return nil
		})
	}
	w.WriteString("done\n")
	return w.Flush()
}
