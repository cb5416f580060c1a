package fluxtree_test

import (
	"encoding/json"
	"fmt"
	"reflect"
)

// contains says where got lacks what want sets: maps key by key (got may
// hold more, such as the API server's defaults), lists item by item with
// the same length, other values equal. Numbers compare as JSON numbers.
func contains(path string, want, got any) []string {
	return containsJSON(path, normalize(want), normalize(got))
}

func containsJSON(path string, want, got any) []string {
	switch w := want.(type) {
	case map[string]any:
		g, ok := got.(map[string]any)
		if !ok {
			return []string{fmt.Sprintf("%s: %v, want %v", path, got, want)}
		}
		var out []string
		for k, wv := range w {
			gv, ok := g[k]
			if !ok {
				out = append(out, fmt.Sprintf("%s.%s: missing, want %v", path, k, wv))
				continue
			}
			out = append(out, containsJSON(path+"."+k, wv, gv)...)
		}
		return out
	case []any:
		g, ok := got.([]any)
		if !ok || len(g) != len(w) {
			return []string{fmt.Sprintf("%s: %v, want %v", path, got, want)}
		}
		var out []string
		for i := range w {
			out = append(out, containsJSON(fmt.Sprintf("%s[%d]", path, i), w[i], g[i])...)
		}
		return out
	default:
		if !reflect.DeepEqual(want, got) {
			return []string{fmt.Sprintf("%s: %v, want %v", path, got, want)}
		}
		return nil
	}
}

// normalize is v as encoding/json decodes it (numbers as float64).
func normalize(v any) any {
	b, err := json.Marshal(v)
	if err != nil {
		return fmt.Sprintf("unencodable %T: %v", v, err)
	}
	var out any
	if err := json.Unmarshal(b, &out); err != nil {
		return fmt.Sprintf("undecodable %s: %v", b, err)
	}
	return out
}
