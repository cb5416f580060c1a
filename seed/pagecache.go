package seed

// A memory cgroup charges the page cache of the files the seed writes and
// reads to the seed, and dirty pages cannot be reclaimed before they are
// written: a 30 MiB pack left in the cache took 30 MiB of the seed's limit
// beside its heap. The seed's large files (the pack as it arrives, large
// blobs at checkout) are written behind: a window at a time handed to the
// kernel's writeback and, once written, dropped from the cache. Durability
// is still the stage's one syncfs; this only starts the writing earlier.

// writeBehindWindow is how much of a file is written before the kernel is
// asked to write it back: at most two windows are cached at once.
const writeBehindWindow = 8 << 20

// writeBehind follows a file written sequentially through fd.
type writeBehind struct {
	fd      int
	written int64 // bytes written so far
	started int64 // handed to writeback up to here
	dropped int64 // written back and dropped up to here
}

// wrote records n more bytes written at the file's end.
func (w *writeBehind) wrote(n int) error {
	w.written += int64(n)
	if w.written-w.started < writeBehindWindow {
		return nil
	}
	if err := w.drop(w.started); err != nil {
		return err
	}
	err := startWriteBack(w.fd, w.started, w.written-w.started)
	w.started = w.written
	return err
}

// finish writes back and drops all that was written.
func (w *writeBehind) finish() error { return w.drop(w.written) }

// large is whether the file outgrew a window: a smaller one is left to the
// syncfs, as every small file is, rather than waited for on its own.
func (w *writeBehind) large() bool { return w.started > 0 }

// drop waits until everything before end is written and drops it.
func (w *writeBehind) drop(end int64) error {
	if end <= w.dropped {
		return nil
	}
	err := writeBack(w.fd, w.dropped, end-w.dropped)
	if err != nil {
		return err
	}
	dropCache(w.fd, w.dropped, end-w.dropped)
	w.dropped = end
	return nil
}
