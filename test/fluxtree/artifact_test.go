package fluxtree_test

import (
	"archive/tar"
	"bytes"
	"compress/gzip"
	"crypto/sha1"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"io/fs"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"slices"
	"testing"
)

// artifact is a GitRepository artifact as source-controller serves one: a
// tar.gz of the repository's files, with its revision and digest.
type artifact struct {
	tarball  []byte
	revision string // main@sha1:<40 hex>
	digest   string // sha256:<hex>, which kustomize-controller verifies
}

// newArtifact lays the directories out as one repository (a later layer's
// file replaces an earlier one's at the same path) and packs it.
func newArtifact(layers ...string) (*artifact, error) {
	files := map[string]string{} // path in the repository → file on disk
	for _, layer := range layers {
		err := filepath.WalkDir(layer, func(path string, d fs.DirEntry, err error) error {
			if err != nil || d.IsDir() {
				return err
			}
			rel, err := filepath.Rel(layer, path)
			if err != nil {
				return err
			}
			files[filepath.ToSlash(rel)] = path
			return nil
		})
		if err != nil {
			return nil, fmt.Errorf("read %s: %w", layer, err)
		}
	}
	var buf bytes.Buffer
	gz := gzip.NewWriter(&buf)
	tw := tar.NewWriter(gz)
	paths := make([]string, 0, len(files))
	for p := range files {
		paths = append(paths, p)
	}
	slices.Sort(paths) // the same tree packs to the same bytes
	for _, p := range paths {
		b, err := os.ReadFile(files[p])
		if err != nil {
			return nil, err
		}
		if err := tw.WriteHeader(&tar.Header{Name: p, Mode: 0o644, Size: int64(len(b)), Typeflag: tar.TypeReg}); err != nil {
			return nil, fmt.Errorf("pack %s: %w", p, err)
		}
		if _, err := tw.Write(b); err != nil {
			return nil, fmt.Errorf("pack %s: %w", p, err)
		}
	}
	if err := tw.Close(); err != nil {
		return nil, err
	}
	if err := gz.Close(); err != nil {
		return nil, err
	}
	commit := sha1.Sum(buf.Bytes())
	digest := sha256.Sum256(buf.Bytes())
	return &artifact{
		tarball:  buf.Bytes(),
		revision: "main@sha1:" + hex.EncodeToString(commit[:]),
		digest:   "sha256:" + hex.EncodeToString(digest[:]),
	}, nil
}

// serve serves the tarball on 127.0.0.1 and returns its URL.
func (a *artifact) serve(t *testing.T) string {
	const path = "/gitrepository/flux-system/flux-system/artifact.tar.gz"
	mux := http.NewServeMux()
	mux.HandleFunc("GET "+path, func(w http.ResponseWriter, _ *http.Request) {
		w.Header().Set("Content-Type", "application/gzip")
		_, _ = w.Write(a.tarball)
	})
	srv := httptest.NewServer(mux)
	t.Cleanup(srv.Close)
	return srv.URL + path
}
