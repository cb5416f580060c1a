package kubelet

import (
	"fmt"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"time"
)

// ProjectSecret writes a Secret's data into dir as the kubelet updates a
// Secret volume: every key is a symlink key -> ..data/key, ..data is a
// symlink to a timestamped directory, and an update writes a new
// timestamped directory, swaps ..data to it with one rename and then
// removes the old one. A reader therefore sees either all old or all new
// files, never a certificate from one revision with a key from another.
func ProjectSecret(dir string, data map[string][]byte) error {
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return fmt.Errorf("secret volume %s: %w", dir, err)
	}
	old, _ := os.Readlink(filepath.Join(dir, "..data"))
	ts, err := os.MkdirTemp(dir, time.Now().UTC().Format("..2006_01_02_15_04_05."))
	if err != nil {
		return fmt.Errorf("secret volume %s: %w", dir, err)
	}
	keys := make([]string, 0, len(data))
	for k := range data {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	for _, k := range keys {
		if strings.Contains(k, "/") || strings.HasPrefix(k, "..") {
			return fmt.Errorf("secret volume %s: bad key %q", dir, k)
		}
		if err := os.WriteFile(filepath.Join(ts, k), data[k], 0o644); err != nil {
			return fmt.Errorf("secret volume %s: %w", dir, err)
		}
	}
	tmp := filepath.Join(dir, "..data_tmp")
	_ = os.Remove(tmp)
	if err := os.Symlink(filepath.Base(ts), tmp); err != nil {
		return fmt.Errorf("secret volume %s: %w", dir, err)
	}
	if err := os.Rename(tmp, filepath.Join(dir, "..data")); err != nil {
		return fmt.Errorf("secret volume %s: %w", dir, err)
	}
	for _, k := range keys {
		link := filepath.Join(dir, k)
		if _, err := os.Lstat(link); err == nil {
			continue
		}
		if err := os.Symlink(filepath.Join("..data", k), link); err != nil {
			return fmt.Errorf("secret volume %s: %w", dir, err)
		}
	}
	if old != "" && old != filepath.Base(ts) {
		if err := os.RemoveAll(filepath.Join(dir, old)); err != nil {
			return fmt.Errorf("secret volume %s: %w", dir, err)
		}
	}
	return nil
}
