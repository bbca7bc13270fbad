package limit

import (
	"errors"
	"strings"
	"testing"
)

func TestJSONDepthCountsOnlyStructure(t *testing.T) {
	tests := []struct {
		doc  string
		max  int
		deep bool
	}{
		{`{"a":[1,{"b":2}]}`, 3, false},
		{`{"a":[1,{"b":2}]}`, 2, true},
		{`{"a":"[[[[[[[[[[[["}`, 1, false},     // brackets in strings do not count
		{`{"a":"\"[[[[[","b":"\\"}`, 1, false}, // nor after escaped quotes
		{`{"a":"\\","b":[[[1]]]}`, 3, true},    // an escaped backslash ends before the quote
		{strings.Repeat("[", 65) + strings.Repeat("]", 65), DefaultJSONDepth, true},
		{strings.Repeat("[", 64) + strings.Repeat("]", 64), DefaultJSONDepth, false},
	}
	for _, tt := range tests {
		err := JSONDepth([]byte(tt.doc), tt.max)
		if deep := errors.Is(err, ErrTooDeep); deep != tt.deep {
			t.Errorf("JSONDepth(%s, %d) = %v, want too deep %v", tt.doc, tt.max, err, tt.deep)
		}
	}
}

func TestUploadsCountPerKey(t *testing.T) {
	u := NewUploads(2)
	r1, ok1 := u.Acquire("alice")
	_, ok2 := u.Acquire("alice")
	_, ok3 := u.Acquire("alice")
	_, okBob := u.Acquire("bob")
	if !ok1 || !ok2 || ok3 || !okBob {
		t.Fatalf("acquire: %v %v %v bob %v; want true true false, bob true", ok1, ok2, ok3, okBob)
	}
	r1()
	r1() // releasing twice frees one slot only
	if _, ok := u.Acquire("alice"); !ok {
		t.Fatal("a released slot was not given back")
	}
	if _, ok := u.Acquire("alice"); ok {
		t.Fatal("a double release freed two slots")
	}
	var none *Uploads
	if _, ok := none.Acquire("x"); !ok {
		t.Fatal("a nil *Uploads refused")
	}
}
