module github.com/angryninja/opencode-injector

go 1.25.0
