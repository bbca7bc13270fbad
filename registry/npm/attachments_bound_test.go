package npm

import (
	"errors"
	"io"
	"net/http"
	"strings"
	"testing"
)

// What a publish body keeps of its attachments (their names, content types,
// one entry each) counts against the document's bounds like the rest of
// what is kept. Before, only the data was streamed and everything else of
// `_attachments` was free: a writer's body of 40 attachments with 8 MiB
// names took the server from 33 MB to 604 MB, and there was no limit to
// how many.
func TestSplitPublishBodyCountsWhatItKeepsOfAttachments(t *testing.T) {
	const max = 1 << 20
	long := strings.Repeat("a", max/4)
	tests := map[string]string{
		"long names": `{"_attachments":{"1` + long + `":{},"2` + long + `":{},"3` + long + `":{},"4` + long + `":{},"5` + long + `":{}}}`,
		"long content types": `{"_attachments":{"a":{"content_type":"` + long + `"},"b":{"content_type":"` + long + `"},` +
			`"c":{"content_type":"` + long + `"},"d":{"content_type":"` + long + `"},"e":{"content_type":"` + long + `"}}}`,
		"many attachments": `{"_attachments":{` + strings.TrimSuffix(strings.Repeat(`"a":{},`, max/8), ",") + `}}`,
	}
	for name, body := range tests {
		t.Run(name, func(t *testing.T) {
			_, _, err := splitPublishBody(strings.NewReader(body), bodyLimits{maxBytes: max, maxValues: max / 16}, func(string, io.Reader) error { return nil })
			if !errors.Is(err, errBodyTooLarge) {
				t.Fatalf("err = %v, want the document's bound", err)
			}
		})
	}
}

// The same through the handler: 413, and nothing stored.
func TestPublishWithOversizedAttachmentEntriesIs413(t *testing.T) {
	hs := newHarnessWith(t, harnessConfig{users: defaultUsers(), options: func(o *Options) { o.MaxDocumentSize = 1 << 20 }})
	hs.mustPublish("x", "1.0.0")
	before := hs.storedPackument("x")
	body := repeatedBody(`{"_id":"x","name":"x","_attachments":{`, `"`+strings.Repeat("n", 64<<10)+`":{}`, 32, `}}`)
	expectStatus(t, hs.putBody("writer", "/x", body), http.StatusRequestEntityTooLarge)
	if got := hs.storedPackument("x"); string(got) != string(before) {
		t.Fatalf("document changed: %s", got)
	}
}
