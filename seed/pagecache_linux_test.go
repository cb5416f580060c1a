package seed

import (
	"os"
	"path/filepath"
	"testing"
	"unsafe"

	"golang.org/x/sys/unix"
)

// TestWriteBehindKeepsTheCacheSmall: a file written behind never has more
// than two windows (and the write in progress) in the page cache, and
// none once finished. Residency is the kernel's own (mincore); on a
// filesystem that keeps files in memory (tmpfs) the test is skipped.
func TestWriteBehindKeepsTheCacheSmall(t *testing.T) {
	dir := t.TempDir()
	var fs unix.Statfs_t
	if err := unix.Statfs(dir, &fs); err != nil {
		t.Fatal(err)
	}
	if fs.Type == unix.TMPFS_MAGIC {
		t.Skip("the temporary directory is on tmpfs, whose pages cannot be dropped")
	}
	f, err := os.Create(filepath.Join(dir, "large"))
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	const chunk, size = 1 << 20, 6 * writeBehindWindow
	w := writeBehind{fd: int(f.Fd())}
	buf := make([]byte, chunk)
	most := int64(0)
	for written := 0; written < size; written += chunk {
		buf[0] = byte(written) // not all zero pages
		if _, err := f.Write(buf); err != nil {
			t.Fatal(err)
		}
		if err := w.wrote(chunk); err != nil {
			t.Fatal(err)
		}
		most = max(most, cached(t, f, int64(written+chunk)))
	}
	if limit := int64(2*writeBehindWindow + chunk); most > limit {
		t.Errorf("up to %d MiB of the file was in the page cache, want at most %d MiB", most>>20, limit>>20)
	}
	if err := w.finish(); err != nil {
		t.Fatal(err)
	}
	if n := cached(t, f, size); n != 0 {
		t.Errorf("%d KiB of the finished file stayed in the page cache", n>>10)
	}
	t.Logf("at most %d MiB of %d MiB cached while written", most>>20, size>>20)
}

// cached is how many bytes of f's first size bytes are in the page cache.
func cached(t *testing.T, f *os.File, size int64) int64 {
	t.Helper()
	m, err := unix.Mmap(int(f.Fd()), 0, int(size), unix.PROT_READ, unix.MAP_SHARED)
	if err != nil {
		t.Fatal(err)
	}
	defer unix.Munmap(m)
	page := int64(os.Getpagesize())
	vec := make([]byte, (size+page-1)/page)
	if _, _, errno := unix.Syscall(unix.SYS_MINCORE, uintptr(unsafe.Pointer(&m[0])), uintptr(len(m)), uintptr(unsafe.Pointer(&vec[0]))); errno != 0 {
		t.Fatal("mincore:", errno)
	}
	var n int64
	for _, v := range vec {
		n += int64(v & 1)
	}
	return n * page
}
