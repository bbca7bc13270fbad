package authstore

import (
	"reflect"
	"testing"
)

// FuzzParse: whatever Parse accepts, Marshal writes back in a form Parse
// reads to the same content.
func FuzzParse(f *testing.F) {
	f.Add([]byte("version: 1\ntokens: []\n"))
	f.Add([]byte(`{"version":1,"tokens":[{"hash":"sha256:` + "0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef" + `","user":"ci","scopes":["oci:repository:a/*:push"]}]}`))
	f.Add([]byte("version: 2\n"))
	f.Add([]byte("tokens:\n- hash: x\n"))
	f.Fuzz(func(t *testing.T, data []byte) {
		file, err := Parse(data)
		if err != nil {
			return
		}
		out, err := Marshal(file)
		if err != nil {
			t.Fatalf("Marshal of a parsed file: %v", err)
		}
		again, err := Parse(out)
		if err != nil || !reflect.DeepEqual(normal(file), normal(again)) {
			t.Fatalf("round trip changed the file: %+v -> %+v (%v)", file, again, err)
		}
	})
}

// normal drops the difference between a nil and an empty list.
func normal(f *File) File {
	n := *f
	if len(n.Tokens) == 0 {
		n.Tokens = nil
	}
	for i := range n.Tokens {
		if len(n.Tokens[i].Scopes) == 0 {
			n.Tokens[i].Scopes = nil
		}
	}
	return n
}
