package injection

import (
	"bytes"
	"encoding/json"
	"testing"

	"github.com/angryninja/opencode-injector/injection/injectiontest"
)

// rawField, rawFields and rawItems find the same bytes as decoding into a
// map or a slice of raw messages does, in every object and array of the
// golden cases (compact and indented) and in hand-written corners: escapes
// in keys and strings (runs of backslashes before a quote), brackets
// inside strings, duplicate keys, literals.
func TestRawScanFindsWhatDecodingFinds(t *testing.T) {
	docs := [][]byte{
		[]byte(`{"a\"}":"x]}\\","b" : [ 1 , {"c":[]} , "]" ] ,"n":-1.5e3,"t":true,"z":null,"a\u0062":{},"dup":1,"dup":2}`),
		[]byte(`{"k\\\\":"v\\\"\\\\","k2":"\\\\","k\\\\\\\"3":["\\\"]"]}`),
		[]byte(` [ ] `), []byte(`{ }`), []byte(`"not an object"`), []byte(`12`),
	}
	docs = append(docs, goldenJSON(t)...)
	var check func(raw json.RawMessage)
	check = func(raw json.RawMessage) {
		var fields map[string]json.RawMessage
		_, isObject := rawField(raw, "")
		if err := json.Unmarshal(raw, &fields); (err == nil && fields != nil) != isObject {
			t.Fatalf("%s: rawField says object %v, decoding says %v", raw, isObject, err)
		}
		keys := []string{"absent-key"}
		for k, want := range fields {
			if got, _ := rawField(raw, k); !bytes.Equal(got, want) {
				t.Fatalf("%s: field %q is %s, decoding finds %s", raw, k, got, want)
			}
			keys = append(keys, k)
			check(want)
		}
		all := make([]json.RawMessage, len(keys))
		rawFields(raw, keys, all) // every key in one pass
		for i, k := range keys {
			if !bytes.Equal(all[i], fields[k]) {
				t.Fatalf("%s: field %q read with the others is %s, decoding finds %s", raw, k, all[i], fields[k])
			}
		}
		if got, _ := rawField(raw, "absent-key"); got != nil && fields["absent-key"] == nil {
			t.Fatalf("%s: an absent key has %s", raw, got)
		}
		var items []json.RawMessage
		got, isArray := rawItems(raw, 0)
		if err := json.Unmarshal(raw, &items); (err == nil && items != nil) != isArray {
			t.Fatalf("%s: rawItems says array %v, decoding says %v", raw, isArray, err)
		}
		if len(got) != len(items) {
			t.Fatalf("%s: %d items, decoding finds %d", raw, len(got), len(items))
		}
		for i := range items {
			if !bytes.Equal(got[i], items[i]) {
				t.Fatalf("%s: item %d is %s, decoding finds %s", raw, i, got[i], items[i])
			}
			check(items[i])
		}
	}
	for _, doc := range docs {
		check(doc)
	}
}

// injectedRaw finds each injected field's bytes where decoding level by
// level finds them, absent fields included: in the golden cases (compact
// and indented) and in corners: a key met twice (the last counts whole),
// a level that is not an object, escaped keys, brackets in strings.
func TestInjectedRawFindsWhatDecodingFinds(t *testing.T) {
	docs := [][]byte{
		[]byte(`{"spec":{"template":{"spec":{"volumes":[1]}}},"spec":{"strategy":{"type":"Recreate"}}}`),
		[]byte(`{"spec":{"template":{"spec":{"volumes":[1]}},"template":null},"metadata":{"annotations":{"a":"}"}},"metadata":{"annotations":{"b":"]"}}}`),
		[]byte(` { "metadata" : [ {"annotations":{}} ] , "spec" : { "te\u006dplate" : { "spec" : { "containers" : [ {"name":"a\"]}"} ] , "securityContext" : {} } } } } `),
		[]byte(`{"spec":"template","x":{"spec":{"template":{}}}}`), []byte(`[]`), []byte(`{}`),
	}
	docs = append(docs, goldenJSON(t)...)
	for _, raw := range docs {
		found := make([]json.RawMessage, len(injectedFields))
		for i := range found {
			found[i] = json.RawMessage("stale") // find must clear what it does not find
		}
		injectedRaw.find(raw, found)
		for i, f := range injectedFields {
			want := json.RawMessage(raw)
			for _, k := range f.keys {
				var fields map[string]json.RawMessage
				if json.Unmarshal(want, &fields) != nil {
					want = nil
					break
				}
				want = fields[k]
			}
			if !bytes.Equal(found[i], want) {
				t.Errorf("%s: %s is %s, decoding finds %s", raw, f.path, found[i], want)
			}
		}
	}
}

// goldenJSON is every golden case's JSON, compact and indented.
func goldenJSON(t *testing.T) [][]byte {
	var docs [][]byte
	for _, in := range injectiontest.GoldenCases(t) {
		compact := injectiontest.MustJSON(t, in)
		var indented bytes.Buffer
		if err := json.Indent(&indented, compact, "", "  "); err != nil {
			t.Fatal(err)
		}
		docs = append(docs, compact, indented.Bytes())
	}
	return docs
}
