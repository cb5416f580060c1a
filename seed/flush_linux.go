package seed

import (
	"fmt"

	"golang.org/x/sys/unix"
)

// startWriteBack hands a file's range to the kernel's writeback without
// waiting for it.
func startWriteBack(fd int, off, n int64) error {
	return syncFileRange(fd, off, n, unix.SYNC_FILE_RANGE_WRITE)
}

// writeBack writes a file's range and waits until it is on disk.
func writeBack(fd int, off, n int64) error {
	return syncFileRange(fd, off, n,
		unix.SYNC_FILE_RANGE_WAIT_BEFORE|unix.SYNC_FILE_RANGE_WRITE|unix.SYNC_FILE_RANGE_WAIT_AFTER)
}

func syncFileRange(fd int, off, n int64, flags int) error {
	for {
		err := unix.SyncFileRange(fd, off, n, flags)
		if err == unix.EINTR {
			continue
		}
		if err != nil {
			return fmt.Errorf("write back bytes %d to %d: %w", off, off+n, err)
		}
		return nil
	}
}

// dropCache drops clean cached pages of a file's range: advice, which a
// filesystem that cannot drop them (tmpfs) ignores.
func dropCache(fd int, off, n int64) {
	_ = unix.Fadvise(fd, off, n, unix.FADV_DONTNEED)
}

// syncFilesystem flushes the whole filesystem fd is on.
func syncFilesystem(fd int) error { return unix.Syncfs(fd) }
