package seed

import (
	"fmt"
	"io"
	"os"

	"golang.org/x/sys/unix"
)

// The most the seed reads of a file in the claim it did not necessarily
// write: its marker holds one URL, a clone's config a few remotes.
const (
	markerLimit = 4 << 10
	configLimit = 64 << 10
)

// readRegular reads at most limit bytes of path when it is a regular file.
// A symlink is not followed (it may lead to the Secret's token) and a FIFO
// or device is not opened (reading one could hang the pod).
func readRegular(path string, limit int64) ([]byte, error) {
	fi, err := os.Lstat(path)
	if err != nil {
		return nil, err
	}
	if !fi.Mode().IsRegular() {
		return nil, fmt.Errorf("%s is not a regular file", path)
	}
	// O_NOFOLLOW and O_NONBLOCK: the path may have changed since Lstat.
	f, err := os.OpenFile(path, os.O_RDONLY|unix.O_NOFOLLOW|unix.O_NONBLOCK, 0)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	if fi, err = f.Stat(); err != nil {
		return nil, err
	}
	if !fi.Mode().IsRegular() {
		return nil, fmt.Errorf("%s is not a regular file", path)
	}
	return io.ReadAll(io.LimitReader(f, limit))
}
