package opencode

import (
	"encoding/json"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
)

// YAMLServerVersion is the yaml-language-server npm package the tests run
// as OpenCode's YAML language server ("yaml-ls", which OpenCode takes from
// PATH, or installs from npm when downloads are allowed). 1.25.0 is the
// newest that runs on Node 20; 2.x needs Node 22.
const YAMLServerVersion = "1.25.0"

// YAMLServer returns the directory that holds the yaml-language-server
// command, for PATH: the pinned npm package, installed into the test cache
// on the first call (progress goes to log). The command is a Node script,
// so node must be on PATH too.
func YAMLServer(log io.Writer) (string, error) {
	if _, err := exec.LookPath("node"); err != nil {
		return "", fmt.Errorf("yaml-language-server runs on Node, and node is not on PATH: %w", err)
	}
	dir, err := packageDir("yaml-language-server", YAMLServerVersion)
	if err != nil {
		return "", err
	}
	bin, err := cachedPackage(log, "yaml-language-server", YAMLServerVersion, dir, filepath.Join("node_modules", ".bin", "yaml-language-server"))
	if err != nil {
		return "", err
	}
	return filepath.Dir(bin), nil
}

// EnableLanguageServers writes OpenCode's global config in configHome
// ($XDG_CONFIG_HOME) with the language servers switched on: OpenCode
// 1.18.33 starts none unless its config sets "lsp" (it logs "all LSPs are
// disabled"). This is the file a workspace's user edits on the claim.
func EnableLanguageServers(configHome string) error {
	dir := filepath.Join(configHome, "opencode")
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return err
	}
	b, err := json.Marshal(map[string]any{"lsp": true})
	if err != nil {
		return err
	}
	if err := os.WriteFile(filepath.Join(dir, "opencode.json"), b, 0o644); err != nil {
		return fmt.Errorf("write OpenCode's config: %w", err)
	}
	return nil
}
