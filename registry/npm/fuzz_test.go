package npm

import (
	"bytes"
	"encoding/json"
	"io"
	"testing"
)

// FuzzSplitPublishBody: the streaming splitter never panics, and on any
// body it accepts that is valid JSON, the metadata it returns is the body
// without `_attachments`, as a JSON decoder sees it.
func FuzzSplitPublishBody(f *testing.F) {
	f.Add([]byte(`{"name":"a","versions":{},"_attachments":{"a-1.0.0.tgz":{"content_type":"application/octet-stream","data":"aGVsbG8=","length":5}}}`))
	f.Add([]byte(`{"name":"a"}`))
	f.Add([]byte(`{"_attachments":{}}`))
	f.Add([]byte(`{"a":"\u0022\\","_attachments":{"x":{"data":"!!"}}}`))
	f.Add([]byte(`[1]`))
	f.Fuzz(func(t *testing.T, body []byte) {
		meta, _, err := splitPublishBody(bytes.NewReader(body), keepAll(1<<20), func(string, io.Reader) error { return nil })
		if err != nil || !json.Valid(body) {
			return
		}
		var want, got map[string]any
		if json.Unmarshal(body, &want) != nil {
			return
		}
		delete(want, "_attachments")
		if err := json.Unmarshal(meta, &got); err != nil {
			t.Fatalf("metadata of %q is not JSON: %q: %v", body, meta, err)
		}
		w, _ := json.Marshal(want)
		g, _ := json.Marshal(got)
		if !bytes.Equal(w, g) {
			t.Fatalf("metadata of %q is %s, want %s", body, g, w)
		}
	})
}
