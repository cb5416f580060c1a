package testenv

import "regexp"

// variable is a Flux postBuild variable: ${NAME} or ${NAME:=default}.
var variable = regexp.MustCompile(`\$\{([A-Za-z_][A-Za-z0-9_]*)(:=([^}]*))?\}`)

// Substitute replaces the postBuild variables in text the way
// kustomize-controller does: by vars, else by the variable's own default.
// It returns the names that have neither, left as they were.
func Substitute(text string, vars map[string]string) (string, []string) {
	var missing []string
	out := variable.ReplaceAllStringFunc(text, func(v string) string {
		m := variable.FindStringSubmatch(v)
		if val, ok := vars[m[1]]; ok && val != "" {
			return val
		}
		if m[2] != "" {
			return m[3]
		}
		missing = append(missing, m[1])
		return v
	})
	return out, missing
}
