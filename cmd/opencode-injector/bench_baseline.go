//go:build benchbaseline

package main

import "github.com/angryninja/opencode-injector/test/bench/baseline"

// The server benchmarks' baselines run as a mode of this binary (see
// package baseline); release builds carry no such command.
func init() { benchCommands[baseline.Command] = baseline.Main }
