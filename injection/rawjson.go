package injection

import (
	"bytes"
	"encoding/json"
	"slices"
)

// The patch builder reads the request's JSON only where the injection
// changed something, and only to find a value's bytes. These scan that
// JSON in place (the typed decoding has already validated it), where
// decoding into a map or a slice of raw messages would copy every key and
// value of every object on the way to a changed leaf.

// rawField is the bytes of the value of key in the JSON object raw (the
// last one, as decoding keeps), nil when absent; false when raw is not an
// object.
func rawField(raw []byte, key string) (json.RawMessage, bool) {
	var value [1]json.RawMessage
	ok := rawFields(raw, []string{key}, value[:])
	return value[0], ok
}

// rawFields sets values[i] to the bytes of the value of keys[i] in the
// JSON object raw (the last one, as decoding keeps; nil when absent), in
// one pass over the object; false when raw is not an object.
func rawFields(raw []byte, keys []string, values []json.RawMessage) bool {
	clear(values)
	if !isObject(raw) {
		return false
	}
	for i := skipSpace(raw, skipSpace(raw, 0)+1); i < len(raw) && raw[i] == '"'; {
		end := skipString(raw, i)
		k := raw[i:end]
		i = skipSpace(raw, skipSpace(raw, end)+1) // past the colon
		next := skipValue(raw, i)
		for n, key := range keys {
			if keyIs(k, key) {
				values[n] = raw[i:next]
			}
		}
		if i = skipSpace(raw, next); i < len(raw) && raw[i] == ',' {
			i = skipSpace(raw, i+1)
		}
	}
	return true
}

// isObject tells whether raw is a JSON object (raw is valid JSON).
func isObject(raw []byte) bool {
	i := skipSpace(raw, 0)
	return i < len(raw) && raw[i] == '{'
}

// rawTree finds the request's bytes of several fields, given by their
// paths of keys, in one pass over the request: at every level, keys[i] is
// either a field (fields[i], its index in the answer, -1 for none) or the
// way to deeper ones (children[i]), or both; the objects on the way are
// read as they are met instead of skipped and read again.
type rawTree struct {
	keys     []string
	fields   []int
	children []*rawTree
}

// newRawTree is the tree of paths, whose i-th path is the i-th field.
func newRawTree(paths [][]string) *rawTree {
	t := &rawTree{}
	for i, p := range paths {
		n := t
		for depth, k := range p {
			at := slices.Index(n.keys, k)
			if at < 0 {
				at = len(n.keys)
				n.keys, n.fields, n.children = append(n.keys, k), append(n.fields, -1), append(n.children, nil)
			}
			if depth == len(p)-1 {
				n.fields[at] = i
				continue
			}
			if n.children[at] == nil {
				n.children[at] = &rawTree{}
			}
			n = n.children[at]
		}
	}
	return t
}

// find sets found[i] to the bytes of the i-th path in the JSON object raw,
// nil when absent.
func (t *rawTree) find(raw []byte, found []json.RawMessage) {
	t.clear(found)
	if i := skipSpace(raw, 0); i < len(raw) {
		t.scan(raw, i, found)
	}
}

// clear forgets what t's fields and their descendants were found at.
func (t *rawTree) clear(found []json.RawMessage) {
	for i, f := range t.fields {
		if f >= 0 {
			found[f] = nil
		}
		if c := t.children[i]; c != nil {
			c.clear(found)
		}
	}
}

// scan reads the value at raw[i], an object whose keys t looks for (any
// other value is skipped), and returns the index past it. A key met twice
// counts with its last value, as decoding keeps it.
func (t *rawTree) scan(raw []byte, i int, found []json.RawMessage) int {
	if raw[i] != '{' {
		return skipValue(raw, i)
	}
	for i = skipSpace(raw, i+1); i < len(raw) && raw[i] == '"'; {
		end := skipString(raw, i)
		k := raw[i:end]
		i = skipSpace(raw, skipSpace(raw, end)+1) // past the colon
		next := -1
		for n, key := range t.keys {
			if !keyIs(k, key) {
				continue
			}
			if c := t.children[n]; c != nil {
				c.clear(found) // an earlier value of the same key no longer counts
				next = c.scan(raw, i, found)
			} else {
				next = skipValue(raw, i)
			}
			if f := t.fields[n]; f >= 0 {
				found[f] = raw[i:next]
			}
			break
		}
		if next < 0 {
			next = skipValue(raw, i)
		}
		if i = skipSpace(raw, next); i < len(raw) && raw[i] == ',' {
			i = skipSpace(raw, i+1)
		}
	}
	return min(i+1, len(raw)) // past the closing brace
}

// rawItems are the bytes of each item of the JSON array raw (want: the
// expected count); false when raw is not an array.
func rawItems(raw []byte, want int) ([]json.RawMessage, bool) {
	i := skipSpace(raw, 0)
	if i >= len(raw) || raw[i] != '[' {
		return nil, false
	}
	items := make([]json.RawMessage, 0, want)
	for i = skipSpace(raw, i+1); i < len(raw) && raw[i] != ']'; {
		next := skipValue(raw, i)
		items = append(items, raw[i:next])
		if i = skipSpace(raw, next); i < len(raw) && raw[i] == ',' {
			i = skipSpace(raw, i+1)
		}
	}
	return items, true
}

// keyIs compares a quoted JSON key with name, decoding it only when it
// holds an escape.
func keyIs(quoted []byte, name string) bool {
	if bytes.IndexByte(quoted, '\\') < 0 {
		return string(quoted[1:len(quoted)-1]) == name
	}
	var k string
	return json.Unmarshal(quoted, &k) == nil && k == name
}

func skipSpace(b []byte, i int) int {
	for i < len(b) && (b[i] == ' ' || b[i] == '\t' || b[i] == '\n' || b[i] == '\r') {
		i++
	}
	return i
}

// skipString is the index past the string starting at b[i]. Its closing
// quote is the first one not escaped: one after an even run of
// backslashes (escapes come in pairs from the run's start, and no other
// escape holds a backslash).
func skipString(b []byte, i int) int {
	for i++; i < len(b); i++ {
		q := bytes.IndexByte(b[i:], '"')
		if q < 0 {
			return len(b)
		}
		i += q
		backslashes := 0
		for j := i - 1; j >= 0 && b[j] == '\\'; j-- {
			backslashes++
		}
		if backslashes%2 == 0 {
			return i + 1
		}
	}
	return i
}

// skipValue is the index past the value starting at b[i].
func skipValue(b []byte, i int) int {
	switch b[i] {
	case '"':
		return skipString(b, i)
	case '{', '[':
		depth := 0
		for ; i < len(b); i++ {
			switch b[i] {
			case '"':
				i = skipString(b, i) - 1
			case '{', '[':
				depth++
			case '}', ']':
				if depth--; depth == 0 {
					return i + 1
				}
			}
		}
		return i
	}
	for i < len(b) && b[i] != ',' && b[i] != '}' && b[i] != ']' && b[i] != ' ' && b[i] != '\t' && b[i] != '\n' && b[i] != '\r' {
		i++
	}
	return i
}
