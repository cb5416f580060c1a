package injection

import (
	"bytes"
	"encoding/json"
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
	i := skipSpace(raw, 0)
	if i >= len(raw) || raw[i] != '{' {
		return nil, false
	}
	var value json.RawMessage
	for i = skipSpace(raw, i+1); i < len(raw) && raw[i] == '"'; {
		end := skipString(raw, i)
		k := raw[i:end]
		i = skipSpace(raw, skipSpace(raw, end)+1) // past the colon
		next := skipValue(raw, i)
		if keyIs(k, key) {
			value = raw[i:next]
		}
		if i = skipSpace(raw, next); i < len(raw) && raw[i] == ',' {
			i = skipSpace(raw, i+1)
		}
	}
	return value, true
}

// rawAt is the bytes of the value at keys in the JSON object raw, nil
// when any of them is absent.
func rawAt(raw []byte, keys []string) json.RawMessage {
	for _, k := range keys {
		raw, _ = rawField(raw, k)
	}
	return raw
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

// skipString is the index past the string starting at b[i].
func skipString(b []byte, i int) int {
	for i++; i < len(b); i++ {
		switch b[i] {
		case '\\':
			i++
		case '"':
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
