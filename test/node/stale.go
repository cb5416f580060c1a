package node

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
)

// workDirPrefix starts every run's work directory's name, followed by the
// PID of the run that owns it.
const workDirPrefix = "opencode-node-"

// makeWorkDir creates this run's work directory, named after its PID.
func makeWorkDir() (string, error) {
	return os.MkdirTemp("", fmt.Sprintf("%s%d-", workDirPrefix, os.Getpid()))
}

// removeStaleWorkDirs removes the work directories of runs that were
// killed before their clean-up: those whose owner is no longer running.
func removeStaleWorkDirs() error {
	dirs, err := filepath.Glob(filepath.Join(os.TempDir(), workDirPrefix+"*"))
	if err != nil {
		return err
	}
	var errs []error
	for _, dir := range dirs {
		if ownerRunning(filepath.Base(dir)) {
			continue
		}
		if err := os.RemoveAll(dir); err != nil {
			errs = append(errs, fmt.Errorf("remove a killed run's work directory: %w", err))
		}
	}
	return errors.Join(errs...)
}

// ownerRunning says whether the process whose PID the work directory's
// name holds still runs.
func ownerRunning(name string) bool {
	pidText, _, _ := strings.Cut(strings.TrimPrefix(name, workDirPrefix), "-")
	pid, err := strconv.Atoi(pidText)
	if err != nil || pid <= 0 {
		return false
	}
	return syscall.Kill(pid, 0) == nil
}
