package npm

import (
	"bytes"
	"crypto/rand"
	"encoding/base64"
	"encoding/json"
	"errors"
	"io"
	"reflect"
	"strings"
	"testing"
)

// splitResult is what splitPublishBody produced, with every attachment's
// data read whole.
type splitResult struct {
	meta []byte
	atts []attachment
	data map[string][]byte
}

// keepAll keeps every member, within maxBytes.
func keepAll(maxBytes int) bodyLimits { return bodyLimits{maxBytes: maxBytes, maxValues: maxBytes} }

func split(t *testing.T, body string, maxMeta int) (splitResult, error) {
	t.Helper()
	res := splitResult{data: map[string][]byte{}}
	meta, atts, err := splitPublishBody(strings.NewReader(body), keepAll(maxMeta), func(name string, r io.Reader) error {
		b, err := io.ReadAll(r)
		if err != nil {
			return err
		}
		res.data[name] = b
		return nil
	})
	res.meta, res.atts = meta, atts
	return res, err
}

// decodeNumbers decodes JSON keeping numbers as written.
func decodeNumbers(t *testing.T, b []byte) any {
	t.Helper()
	d := json.NewDecoder(bytes.NewReader(b))
	d.UseNumber()
	var v any
	if err := d.Decode(&v); err != nil {
		t.Fatalf("not JSON: %v: %s", err, b)
	}
	return v
}

// withoutAttachments decodes a body and drops its _attachments.
func withoutAttachments(t *testing.T, body string) any {
	t.Helper()
	v := decodeNumbers(t, []byte(body))
	delete(v.(map[string]any), "_attachments")
	return v
}

const helloAttachment = `{"content_type":"application/octet-stream","data":"aGVsbG8=","length":5}`

func TestSplitPublishBodyRemovesAttachmentsInAnyPosition(t *testing.T) {
	versions := `{"1.0.0":{"name":"x","version":"1.0.0","dist":{"shasum":"abc"}}}`
	atts := `{"x-1.0.0.tgz":` + helloAttachment + `}`
	tests := []struct {
		name string
		body string
	}{
		{"last, as npm sends it", `{"_id":"x","name":"x","versions":` + versions + `,"_attachments":` + atts + `}`},
		{"before versions", `{"_id":"x","name":"x","_attachments":` + atts + `,"versions":` + versions + `}`},
		{"between every member", `{"_id":"x","_attachments":` + atts + `,"name":"x","versions":` + versions + `,"access":null}`},
		{"only member", `{"_attachments":` + atts + `}`},
		{"pretty-printed", "{\n  \"_id\": \"x\",\n  \"name\" : \"x\",\n  \"_attachments\" : {\n    \"x-1.0.0.tgz\" : {\n      \"content_type\": \"application/octet-stream\",\n      \"data\" : \"aGVs\" ,\n      \"length\": 3\n    }\n  } ,\n  \"versions\": " + versions + "\n}\n"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			res, err := split(t, tt.body, 1<<20)
			if err != nil {
				t.Fatalf("splitPublishBody: %v", err)
			}
			if got, want := decodeNumbers(t, res.meta), withoutAttachments(t, tt.body); !reflect.DeepEqual(got, want) {
				t.Fatalf("document = %s\nwant %v", res.meta, want)
			}
			if bytes.Contains(res.meta, []byte("_attachments")) || bytes.Contains(res.meta, []byte("aGVs")) {
				t.Fatalf("document still carries the attachment: %s", res.meta)
			}
			if len(res.atts) != 1 || res.atts[0].Name != "x-1.0.0.tgz" || !res.atts[0].Received {
				t.Fatalf("attachments = %+v, want one received x-1.0.0.tgz", res.atts)
			}
			if got := string(res.data["x-1.0.0.tgz"]); got != "aGVsbG8=" && got != "aGVs" {
				t.Fatalf("data = %q, want the base64 text as sent", got)
			}
		})
	}
}

func TestSplitPublishBodyAttachmentFirstFollowedByMembers(t *testing.T) {
	body := `{"_attachments":{"x-1.0.0.tgz":` + helloAttachment + `},"_id":"x","name":"x","versions":{}}`
	res, err := split(t, body, 1<<20)
	if err != nil {
		t.Fatalf("splitPublishBody: %v", err)
	}
	if got, want := decodeNumbers(t, res.meta), withoutAttachments(t, body); !reflect.DeepEqual(got, want) {
		t.Fatalf("document = %s, want %v", res.meta, want)
	}
	if string(res.data["x-1.0.0.tgz"]) != "aGVsbG8=" {
		t.Fatalf("data = %q", res.data["x-1.0.0.tgz"])
	}
}

func TestSplitPublishBodyReportsAttachmentFields(t *testing.T) {
	body := `{"name":"x","_attachments":{"x-1.0.0.tgz":{"length":5,"data":"aGVsbG8=","content_type":"application/octet-stream","extra":{"a":[1,2]}}}}`
	res, err := split(t, body, 1<<20)
	if err != nil {
		t.Fatal(err)
	}
	want := []attachment{{Name: "x-1.0.0.tgz", ContentType: "application/octet-stream", Length: 5, Received: true}}
	if !reflect.DeepEqual(res.atts, want) {
		t.Fatalf("attachments = %+v, want %+v", res.atts, want)
	}
	if string(res.meta) != `{"name":"x"}` {
		t.Fatalf("document = %s: attachment fields leaked into it", res.meta)
	}
}

func TestSplitPublishBodyAttachmentWithoutDataOrLength(t *testing.T) {
	res, err := split(t, `{"_attachments":{"x-1.0.0.tgz":{"content_type":"application/octet-stream"}}}`, 1<<20)
	if err != nil {
		t.Fatal(err)
	}
	want := []attachment{{Name: "x-1.0.0.tgz", ContentType: "application/octet-stream", Length: -1}}
	if !reflect.DeepEqual(res.atts, want) {
		t.Fatalf("attachments = %+v, want %+v", res.atts, want)
	}
	if len(res.data) != 0 {
		t.Fatalf("callback called for an attachment without data: %v", res.data)
	}
}

func TestSplitPublishBodyKeepsOtherValuesVerbatim(t *testing.T) {
	body := `{"_id":"x","description":"quote \" backslash \\ slash \/ tab \t nl \n unicode \u00e9\u2028 emoji 😀 <b>&amp;</b>",` +
		`"nested":{"a":[1,-2.50,3e10,1E-7,0,{"deep":[[[]]]},{}],"t":true,"f":false,"n":null,"s":"}]{[,:"},` +
		`"empty":[],"obj":{},"num":12345678901234567890,"neg":-0.000,` +
		`"_attachments":{"x-1.0.0.tgz":` + helloAttachment + `},` +
		`"after":[true,false,null,"x"],"last":1}`
	res, err := split(t, body, 1<<20)
	if err != nil {
		t.Fatalf("splitPublishBody: %v", err)
	}
	if got, want := decodeNumbers(t, res.meta), withoutAttachments(t, body); !reflect.DeepEqual(got, want) {
		t.Fatalf("document = %s\nwant %v", res.meta, want)
	}
	// Numbers are kept exactly as written, not reformatted.
	for _, lit := range []string{"-2.50", "3e10", "1E-7", "12345678901234567890", "-0.000"} {
		if !bytes.Contains(res.meta, []byte(lit)) {
			t.Errorf("number %s not copied verbatim: %s", lit, res.meta)
		}
	}
}

func TestSplitPublishBodyDecodesEscapedMemberNames(t *testing.T) {
	body := `{"na\u006de":"x","_attach\u006dents":{"x-1.0.0.tgz":` + helloAttachment + `}}`
	res, err := split(t, body, 1<<20)
	if err != nil {
		t.Fatal(err)
	}
	if got, want := decodeNumbers(t, res.meta), map[string]any{"name": "x"}; !reflect.DeepEqual(got, want) {
		t.Fatalf("document = %s, want %v", res.meta, want)
	}
	if len(res.atts) != 1 {
		t.Fatalf("an escaped _attachments name was not recognised: %+v", res.atts)
	}
}

func TestSplitPublishBodyAcceptsEscapedSlashInData(t *testing.T) {
	raw := []byte{0xff, 0xff, 0xfe, 0xfb, 0xef, 0xbf, 0x01}
	b64 := base64.StdEncoding.EncodeToString(raw)
	if !strings.Contains(b64, "/") {
		t.Fatalf("test data %q has no slash", b64)
	}
	escaped := strings.ReplaceAll(b64, "/", `\/`)
	res, err := split(t, `{"_attachments":{"a.tgz":{"data":"`+escaped+`"}}}`, 1<<20)
	if err != nil {
		t.Fatalf("splitPublishBody: %v", err)
	}
	if got := string(res.data["a.tgz"]); got != b64 {
		t.Fatalf("data = %q, want %q", got, b64)
	}
}

func TestSplitPublishBodyRefusesOtherEscapesInData(t *testing.T) {
	for _, esc := range []string{`\n`, `\"`, `\u0041`, `\\`} {
		t.Run(esc, func(t *testing.T) {
			_, err := split(t, `{"_attachments":{"a.tgz":{"data":"AAAA`+esc+`AAAA"}}}`, 1<<20)
			if err == nil {
				t.Fatalf("data with %s accepted", esc)
			}
		})
	}
}

func TestSplitPublishBodyReportsTwoAttachments(t *testing.T) {
	body := `{"name":"x","_attachments":{"x-1.0.0.tgz":{"data":"b25l","length":3},"x-2.0.0.tgz":{"data":"dHdv","length":3}}}`
	res, err := split(t, body, 1<<20)
	if err != nil {
		t.Fatal(err)
	}
	if len(res.atts) != 2 || res.atts[0].Name != "x-1.0.0.tgz" || res.atts[1].Name != "x-2.0.0.tgz" {
		t.Fatalf("attachments = %+v, want both in order", res.atts)
	}
	if string(res.data["x-1.0.0.tgz"]) != "b25l" || string(res.data["x-2.0.0.tgz"]) != "dHdv" {
		t.Fatalf("data = %q", res.data)
	}
}

func TestSplitPublishBodyStreamsDataLargerThanItsBuffer(t *testing.T) {
	raw := make([]byte, 1<<20+17)
	if _, err := rand.Read(raw); err != nil {
		t.Fatal(err)
	}
	b64 := base64.StdEncoding.EncodeToString(raw)
	// npm's JSON.stringify never escapes '/', but other encoders do.
	for _, tt := range []struct{ name, data string }{
		{"plain", b64},
		{"escaped slashes", strings.ReplaceAll(b64, "/", `\/`)},
	} {
		t.Run(tt.name, func(t *testing.T) {
			body := `{"name":"x","_attachments":{"x-1.0.0.tgz":{"content_type":"application/octet-stream","data":"` + tt.data + `","length":` + itoa(len(raw)) + `}},"tail":"end"}`
			var got []byte
			var reads int
			meta, atts, err := splitPublishBody(strings.NewReader(body), keepAll(1024), func(_ string, r io.Reader) error {
				dec := base64.NewDecoder(base64.StdEncoding, readCounter{r, &reads})
				var err error
				got, err = io.ReadAll(dec)
				return err
			})
			if err != nil {
				t.Fatalf("splitPublishBody: %v", err)
			}
			if !bytes.Equal(got, raw) {
				t.Fatalf("streamed %d bytes, want the %d bytes sent", len(got), len(raw))
			}
			if reads < 2 {
				t.Fatalf("data arrived in %d read(s): not streamed", reads)
			}
			if string(meta) != `{"name":"x","tail":"end"}` {
				t.Fatalf("document = %s", meta)
			}
			if len(atts) != 1 || atts[0].Length != int64(len(raw)) {
				t.Fatalf("attachments = %+v", atts)
			}
		})
	}
}

type readCounter struct {
	r io.Reader
	n *int
}

func (c readCounter) Read(p []byte) (int, error) {
	*c.n++
	return c.r.Read(p)
}

func itoa(n int) string {
	b, _ := json.Marshal(n)
	return string(b)
}

func TestSplitPublishBodyDrainsDataTheCallbackLeaves(t *testing.T) {
	body := `{"_id":"x","_attachments":{"x-1.0.0.tgz":{"data":"` + strings.Repeat("QUFB", 50000) + `","length":150000}},"name":"x"}`
	meta, atts, err := splitPublishBody(strings.NewReader(body), keepAll(1024), func(_ string, r io.Reader) error {
		_, err := io.ReadFull(r, make([]byte, 10))
		return err
	})
	if err != nil {
		t.Fatalf("splitPublishBody: %v", err)
	}
	if string(meta) != `{"_id":"x","name":"x"}` {
		t.Fatalf("document = %s", meta)
	}
	if len(atts) != 1 || atts[0].Length != 150000 {
		t.Fatalf("attachments = %+v", atts)
	}
}

func TestSplitPublishBodyPassesCallbackErrors(t *testing.T) {
	stop := errors.New("stop here")
	_, _, err := splitPublishBody(strings.NewReader(`{"_attachments":{"a.tgz":{"data":"AAAA"}}}`), keepAll(1024), func(string, io.Reader) error {
		return stop
	})
	if !errors.Is(err, stop) {
		t.Fatalf("err = %v, want the callback's error", err)
	}
}

func TestSplitPublishBodyBoundsTheDocumentNotTheData(t *testing.T) {
	data := strings.Repeat("QUFB", 4096) // 16 KiB of base64, far above maxMeta
	tests := []struct {
		name    string
		body    string
		tooBig  bool
		maxMeta int
	}{
		{"large attachment, small document", `{"name":"x","_attachments":{"a.tgz":{"data":"` + data + `"}}}`, false, 64},
		{"long string value", `{"name":"` + strings.Repeat("a", 200) + `"}`, true, 64},
		{"long member name", `{"` + strings.Repeat("a", 200) + `":1}`, true, 64},
		{"many small members", `{` + strings.Repeat(`"a":1,`, 40) + `"b":2}`, true, 64},
		{"deep object", `{"a":` + strings.Repeat(`{"b":`, 20) + `1` + strings.Repeat(`}`, 20) + `}`, true, 64},
		{"long number", `{"a":` + strings.Repeat("1", 200) + `}`, true, 64},
		{"attachment field other than data", `{"_attachments":{"a.tgz":{"content_type":"` + strings.Repeat("a", 200) + `"}}}`, true, 64},
		{"exactly at the limit", `{"n":"` + strings.Repeat("a", 64-8) + `"}`, false, 64},
		{"one byte over", `{"n":"` + strings.Repeat("a", 64-7) + `"}`, true, 64},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := split(t, tt.body, tt.maxMeta)
			if tt.tooBig != errors.Is(err, errBodyTooLarge) {
				t.Fatalf("err = %v, want too large: %v", err, tt.tooBig)
			}
			if !tt.tooBig && err != nil {
				t.Fatalf("err = %v", err)
			}
		})
	}
}

func TestSplitPublishBodyRefusesMalformedJSON(t *testing.T) {
	for _, tt := range []struct{ name, body string }{
		{"empty", ``},
		{"whitespace", "  \n"},
		{"array", `[1,2]`},
		{"string", `"x"`},
		{"truncated object", `{"a":1`},
		{"truncated after comma", `{"a":1,`},
		{"truncated string", `{"a":"unterminated`},
		{"truncated nested", `{"a":{"b":[1,2`},
		{"missing colon", `{"a" 1}`},
		{"missing comma", `{"a":1 "b":2}`},
		{"unquoted member name", `{a:1}`},
		{"leading comma", `{,"a":1}`},
		{"invalid escape in name", `{"\x":1}`},
		{"attachments not an object", `{"_attachments":[]}`},
		{"attachments null", `{"_attachments":null}`},
		{"attachment not an object", `{"_attachments":{"a.tgz":"AAAA"}}`},
		{"data not a string", `{"_attachments":{"a.tgz":{"data":5}}}`},
		{"two data fields", `{"_attachments":{"a.tgz":{"data":"AAAA","data":"AAAA"}}}`},
		{"length not a number", `{"_attachments":{"a.tgz":{"length":"five"}}}`},
		{"missing comma between attachments", `{"_attachments":{"a.tgz":{} "b.tgz":{}}}`},
		{"missing comma in attachment", `{"_attachments":{"a.tgz":{"length":1 "data":"AAAA"}}}`},
		{"truncated data", `{"_attachments":{"a.tgz":{"data":"AAAA`},
		{"too deep", `{"a":` + strings.Repeat("[", 65) + strings.Repeat("]", 65) + `}`},
	} {
		t.Run(tt.name, func(t *testing.T) {
			res, err := split(t, tt.body, 1<<20)
			if err == nil {
				t.Fatalf("splitPublishBody accepted %q, returning %s", tt.body, res.meta)
			}
		})
	}
}

func TestSplitPublishBodyCountsValuesNotMemberNames(t *testing.T) {
	tests := []struct {
		body   string
		values int
	}{
		{`{"a":1}`, 1},
		{`{"a":"s","b":true,"c":null,"d":-1.5e3}`, 4},
		{`{"a":{"k1":1,"k2":"v"}}`, 3},
		{`{"a":[{},{},[],"x"]}`, 5},
		{`{"a":[ 1 , 22 ,333 ]}`, 4},
		// The attachment (kept aside, as one entry) and its length.
		{`{"_attachments":{"a.tgz":{"length":5,"data":"aGVsbG8="}},"b":1}`, 3},
	}
	for _, tt := range tests {
		lim := bodyLimits{maxBytes: 1 << 20, maxValues: tt.values}
		if _, _, err := splitPublishBody(strings.NewReader(tt.body), lim, func(string, io.Reader) error { return nil }); err != nil {
			t.Errorf("%s with %d values allowed: %v", tt.body, tt.values, err)
		}
		lim.maxValues--
		_, _, err := splitPublishBody(strings.NewReader(tt.body), lim, func(string, io.Reader) error { return nil })
		if !errors.Is(err, errBodyTooLarge) || !strings.Contains(err.Error(), "JSON values") {
			t.Errorf("%s with %d values allowed: err = %v, want too many JSON values", tt.body, lim.maxValues, err)
		}
	}
}

func TestSplitPublishBodySkipsMembersAndKeepsOnlyTheOwnEntry(t *testing.T) {
	rules := map[string]memberRule{"skip": skipMember, "users": keepOwnEntry}
	lim := bodyLimits{maxBytes: 1 << 10, maxValues: 16, ownEntry: "me", member: func(key string) (memberRule, error) {
		return rules[key], nil
	}}
	big := strings.Repeat(`{"k":["]\"}",1,{}]},`, 1000) // far beyond both bounds, kept nowhere
	tests := []struct{ body, want string }{
		{`{"_id":"x","skip":[` + big + `{}],"users":{"a":[` + big + `{}],"me":true,"z":[1,2]}}`, `{"_id":"x","users":{"me":true}}`},
		{`{"users":{"a":true}}`, `{"users":{}}`},
		{`{"users":["me"],"n":1}`, `{"users":{},"n":1}`},
		{`{"users": "me" ,"skip":"x"}`, `{"users":{}}`},
		{`{"skip":{"a":"}"},"_rev":"1-a"}`, `{"_rev":"1-a"}`},
	}
	for _, tt := range tests {
		meta, _, err := splitPublishBody(strings.NewReader(tt.body), lim, func(string, io.Reader) error { return nil })
		if err != nil || string(meta) != tt.want {
			t.Errorf("%.80s: %s, %v; want %s", tt.body, meta, err, tt.want)
		}
	}
	// Brackets must match in what is read past too.
	for _, body := range []string{`{"skip":[1}}`, `{"skip":{"a":1]}`, `{"skip":[1,2`, `{"users":{"a":[}]}}`} {
		if _, _, err := splitPublishBody(strings.NewReader(body), lim, func(string, io.Reader) error { return nil }); err == nil {
			t.Errorf("%s accepted", body)
		}
	}
}

func TestSplitPublishBodyStopsAtARefusedMember(t *testing.T) {
	refused := errors.New("refused")
	lim := bodyLimits{maxBytes: 1 << 10, maxValues: 16, member: func(key string) (memberRule, error) {
		if key == "versions" {
			return 0, refused
		}
		return skipMember, nil
	}}
	body := &recordingBody{r: strings.NewReader(`{"a":1,"versions":` + strings.Repeat(`[`, 1<<20))}
	_, _, err := splitPublishBody(body, lim, func(string, io.Reader) error { return nil })
	if !errors.Is(err, refused) {
		t.Fatalf("err = %v", err)
	}
	if n := body.read.Load(); n > 64<<10 {
		t.Fatalf("read %d bytes past the refused member", n)
	}
}
