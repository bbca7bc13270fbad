package npm

import (
	"bufio"
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"

	"github.com/unireg/unireg/registry/limit"
)

// A publish body is JSON whose `_attachments` hold the tarball in base64:
// for a large package nearly all of the body. splitPublishBody reads it in
// one pass, copying everything else into a bounded buffer and streaming each
// attachment's data, base64-decoded, to a callback; so a tarball never sits
// in memory whole.

// attachment is an entry of `_attachments`, without its data.
type attachment struct {
	Name        string
	ContentType string
	Length      int64 // as declared; -1 when absent
	Received    bool  // the data field was present and handed to the callback
}

// bodyLimits bound what splitPublishBody keeps of a body, and decide, member
// by member, what each top-level member is worth before its value is read.
type bodyLimits struct {
	// maxBytes bounds the document kept (the body without attachment data).
	maxBytes int
	// maxValues bounds the JSON values kept (member names aside): decoded,
	// `{"a":[{},{},...]}` costs tens of times its size, so bytes alone do not
	// bound the memory a document takes.
	maxValues int
	// member says what to do with a top-level member, or refuses the body
	// (e.g. 403 for a member the caller may not change); nil keeps them all.
	member func(key string) (memberRule, error)
	// ownEntry is the one member kept of a keepOwnEntry object.
	ownEntry string
	// maxBody bounds the body as a whole, whitespace and what is read past
	// included, so that no body streams for ever; 0: no bound.
	maxBody int64
}

// memberRule is what splitPublishBody does with a top-level member.
type memberRule int

const (
	// keepMember copies the member into the document.
	keepMember memberRule = iota
	// skipMember reads past the value, keeping nothing of it.
	skipMember
	// keepOwnEntry keeps, of an object, only its member named
	// bodyLimits.ownEntry (a star's `users`: only the caller's entry counts).
	// A value that is not an object is read past.
	keepOwnEntry
)

// errBodyTooLarge is matched by every refusal of a document beyond one of
// its bounds (bytes or JSON values).
var errBodyTooLarge = errors.New("document too large")

// tooLargeError is a document beyond one of its bounds.
type tooLargeError struct {
	max  int64
	unit string // "bytes", "JSON values" or "bytes of body"
}

func (e *tooLargeError) Error() string        { return fmt.Sprintf("document exceeds %d %s", e.max, e.unit) }
func (e *tooLargeError) Is(target error) bool { return target == errBodyTooLarge }

// jsonReader is a byte reader over the body that keeps a bounded copy of
// what it copies into meta.
type jsonReader struct {
	br     *bufio.Reader
	meta   bytes.Buffer
	lim    bodyLimits
	values int // JSON values copied into meta so far
	// aside is what is kept of the attachments outside meta (names, field
	// values), in bytes: it counts against maxBytes as meta does.
	aside int
}

// truncated is a read error inside the document: the body ending there is
// io.ErrUnexpectedEOF; any other error (a broken or too slow body) stays.
func truncated(err error) error {
	if err == io.EOF {
		return io.ErrUnexpectedEOF
	}
	return err
}

func (j *jsonReader) next() (byte, error) {
	for {
		c, err := j.br.ReadByte()
		if err != nil {
			return 0, truncated(err)
		}
		switch c {
		case ' ', '\t', '\r', '\n':
			continue
		}
		return c, nil
	}
}

func (j *jsonReader) emit(b ...byte) error {
	if j.meta.Len()+j.aside+len(b) > j.lim.maxBytes {
		return &tooLargeError{int64(j.lim.maxBytes), "bytes"}
	}
	j.meta.Write(b)
	return nil
}

// keepAside counts n bytes kept outside meta.
func (j *jsonReader) keepAside(n int) error {
	if j.meta.Len()+j.aside+n > j.lim.maxBytes {
		return &tooLargeError{int64(j.lim.maxBytes), "bytes"}
	}
	j.aside += n
	return nil
}

// countValue counts one more JSON value kept.
func (j *jsonReader) countValue() error {
	j.values++
	if j.values > j.lim.maxValues {
		return &tooLargeError{int64(j.lim.maxValues), "JSON values"}
	}
	return nil
}

// splitPublishBody returns the body without `_attachments` (and without
// what lim.member skips), and the attachments; onData receives each
// attachment's decoded data.
func splitPublishBody(r io.Reader, lim bodyLimits, onData func(name string, data io.Reader) error) ([]byte, []attachment, error) {
	if lim.member == nil {
		lim.member = func(string) (memberRule, error) { return keepMember, nil }
	}
	if lim.maxBody > 0 {
		r = &boundedBody{r: r, max: lim.maxBody}
	}
	j := &jsonReader{br: bufio.NewReaderSize(r, 64<<10), lim: lim}
	var atts []attachment
	c, err := j.next()
	if err != nil || c != '{' {
		return nil, nil, fmt.Errorf("body is not a JSON object")
	}
	if err := j.emit('{'); err != nil {
		return nil, nil, err
	}
	first, emitted := true, false
	for {
		c, err := j.next()
		if err != nil {
			return nil, nil, err
		}
		if c == '}' {
			break
		}
		if !first {
			if c != ',' {
				return nil, nil, fmt.Errorf("expected , between members")
			}
			if c, err = j.next(); err != nil {
				return nil, nil, err
			}
		}
		first = false
		key, err := j.readKey(c)
		if err != nil {
			return nil, nil, err
		}
		rule, err := lim.member(key)
		if err != nil {
			return nil, nil, err
		}
		if rule == skipMember {
			if err := j.value(false); err != nil {
				return nil, nil, err
			}
			continue
		}
		if key == "_attachments" {
			if atts, err = j.readAttachments(onData); err != nil {
				return nil, nil, err
			}
			continue
		}
		if emitted {
			if err := j.emit(','); err != nil {
				return nil, nil, err
			}
		}
		emitted = true
		kb, _ := json.Marshal(key)
		if err := j.emit(append(kb, ':')...); err != nil {
			return nil, nil, err
		}
		if rule == keepOwnEntry {
			err = j.ownEntry()
		} else {
			err = j.value(true)
		}
		if err != nil {
			return nil, nil, err
		}
	}
	if err := j.emit('}'); err != nil {
		return nil, nil, err
	}
	return j.meta.Bytes(), atts, nil
}

// readKey reads `"key":` given the opening quote already read.
func (j *jsonReader) readKey(c byte) (string, error) {
	if c != '"' {
		return "", fmt.Errorf("expected a member name")
	}
	raw, err := j.rawString()
	if err != nil {
		return "", err
	}
	var key string
	if err := json.Unmarshal(raw, &key); err != nil {
		return "", err
	}
	if c, err := j.next(); err != nil || c != ':' {
		return "", fmt.Errorf("expected : after %q", key)
	}
	return key, nil
}

// rawString reads a string's remainder (after the opening quote) and returns
// it quoted, escapes intact. Member names and small values only.
func (j *jsonReader) rawString() ([]byte, error) {
	out := []byte{'"'}
	for {
		c, err := j.br.ReadByte()
		if err != nil {
			return nil, truncated(err)
		}
		out = append(out, c)
		if len(out) > j.lim.maxBytes {
			return nil, &tooLargeError{int64(j.lim.maxBytes), "bytes"}
		}
		switch c {
		case '\\':
			e, err := j.br.ReadByte()
			if err != nil {
				return nil, truncated(err)
			}
			out = append(out, e)
		case '"':
			return out, nil
		}
	}
}

// skipString reads past a string's remainder (after the opening quote),
// keeping nothing of it.
func (j *jsonReader) skipString() error {
	for {
		c, err := j.br.ReadByte()
		if err != nil {
			return truncated(err)
		}
		switch c {
		case '\\':
			if _, err := j.br.ReadByte(); err != nil {
				return truncated(err)
			}
		case '"':
			return nil
		}
	}
}

// value reads one JSON value: copied verbatim into meta and counted when
// keep is set, else read past without keeping anything. Brackets must
// match; the rest of the grammar is left to the decoder, which sees every
// value that is kept.
func (j *jsonReader) value(keep bool) error {
	put := func(b ...byte) error {
		if !keep {
			return nil
		}
		return j.emit(b...)
	}
	count := func() error {
		if !keep {
			return nil
		}
		return j.countValue()
	}
	c, err := j.next()
	if err != nil {
		return err
	}
	// open holds the containers entered, 'o' (object) or 'a' (array);
	// expectName is set where an object's member name comes next.
	var open [limit.DefaultJSONDepth]byte
	depth, expectName, inScalar := 0, false, false
	for {
		scalar := false
		switch c {
		case '"':
			if !expectName {
				if err := count(); err != nil {
					return err
				}
			}
			expectName = false
			if !keep {
				if err := j.skipString(); err != nil {
					return err
				}
				break
			}
			s, err := j.rawString()
			if err != nil {
				return err
			}
			if err := j.emit(s...); err != nil {
				return err
			}
		case '{', '[':
			if depth == len(open) {
				return fmt.Errorf("%w: more than %d levels", limit.ErrTooDeep, limit.DefaultJSONDepth)
			}
			if err := count(); err != nil {
				return err
			}
			open[depth] = 'a'
			if c == '{' {
				open[depth] = 'o'
			}
			depth++
			expectName = c == '{'
			if err := put(c); err != nil {
				return err
			}
		case '}', ']':
			if depth == 0 || (c == '}') != (open[depth-1] == 'o') {
				return fmt.Errorf("unexpected %c", c)
			}
			depth--
			expectName = false
			if err := put(c); err != nil {
				return err
			}
		case ',':
			expectName = depth > 0 && open[depth-1] == 'o'
			if err := put(c); err != nil {
				return err
			}
		case ':', ' ', '\t', '\r', '\n':
			if err := put(c); err != nil {
				return err
			}
		default:
			scalar = true
			if !inScalar {
				if err := count(); err != nil {
					return err
				}
			}
			if err := put(c); err != nil {
				return err
			}
		}
		inScalar = scalar
		if depth == 0 {
			// A scalar ends at a delimiter, which belongs to the caller.
			if scalar {
				for {
					p, err := j.br.Peek(1)
					if err != nil || bytes.IndexByte([]byte(",}] \t\r\n"), p[0]) >= 0 {
						return nil
					}
					b, _ := j.br.ReadByte()
					if err := put(b); err != nil {
						return err
					}
				}
			}
			return nil
		}
		if c, err = j.br.ReadByte(); err != nil {
			return truncated(err)
		}
	}
}

// ownEntry reads an object keeping only its member named lim.ownEntry, or
// reads past a value that is not an object, keeping an empty object.
func (j *jsonReader) ownEntry() error {
	c, err := j.br.Peek(1)
	for err == nil && bytes.IndexByte([]byte(" \t\r\n"), c[0]) >= 0 {
		j.br.ReadByte()
		c, err = j.br.Peek(1)
	}
	if err != nil {
		return truncated(err)
	}
	if c[0] != '{' {
		if err := j.value(false); err != nil {
			return err
		}
		return j.emit('{', '}')
	}
	j.br.ReadByte()
	if err := j.countValue(); err != nil {
		return err
	}
	if err := j.emit('{'); err != nil {
		return err
	}
	kept := false
	for n := 0; ; n++ {
		c, err := j.next()
		if err != nil {
			return err
		}
		if c == '}' {
			return j.emit('}')
		}
		if n > 0 {
			if c != ',' {
				return fmt.Errorf("expected , between members")
			}
			if c, err = j.next(); err != nil {
				return err
			}
		}
		key, err := j.readKey(c)
		if err != nil {
			return err
		}
		if key != j.lim.ownEntry {
			if err := j.value(false); err != nil {
				return err
			}
			continue
		}
		if kept {
			if err := j.emit(','); err != nil {
				return err
			}
		}
		kept = true
		kb, _ := json.Marshal(key)
		if err := j.emit(append(kb, ':')...); err != nil {
			return err
		}
		if err := j.value(true); err != nil {
			return err
		}
	}
}

// readAttachments reads the `_attachments` object.
func (j *jsonReader) readAttachments(onData func(string, io.Reader) error) ([]attachment, error) {
	if c, err := j.next(); err != nil || c != '{' {
		return nil, fmt.Errorf("_attachments must be an object")
	}
	var atts []attachment
	for {
		c, err := j.next()
		if err != nil {
			return nil, err
		}
		if c == '}' {
			return atts, nil
		}
		if len(atts) > 0 {
			if c != ',' {
				return nil, fmt.Errorf("expected , between attachments")
			}
			if c, err = j.next(); err != nil {
				return nil, err
			}
		}
		name, err := j.readKey(c)
		if err != nil {
			return nil, err
		}
		// The attachment is a value kept, under its name.
		if err := j.keepAside(len(name)); err != nil {
			return nil, err
		}
		if err := j.countValue(); err != nil {
			return nil, err
		}
		a, err := j.readAttachment(name, onData)
		if err != nil {
			return nil, err
		}
		atts = append(atts, a)
	}
}

func (j *jsonReader) readAttachment(name string, onData func(string, io.Reader) error) (attachment, error) {
	a := attachment{Name: name, Length: -1}
	if c, err := j.next(); err != nil || c != '{' {
		return a, fmt.Errorf("attachment %q must be an object", name)
	}
	for n := 0; ; n++ {
		c, err := j.next()
		if err != nil {
			return a, err
		}
		if c == '}' {
			return a, nil
		}
		if n > 0 {
			if c != ',' {
				return a, fmt.Errorf("expected , in attachment %q", name)
			}
			if c, err = j.next(); err != nil {
				return a, err
			}
		}
		field, err := j.readKey(c)
		if err != nil {
			return a, err
		}
		if field == "data" {
			if c, err := j.next(); err != nil || c != '"' {
				return a, fmt.Errorf("attachment %q: data must be a string", name)
			}
			if a.Received {
				return a, fmt.Errorf("attachment %q has two data fields", name)
			}
			a.Received = true
			sr := &stringReader{br: j.br}
			if err := onData(name, sr); err != nil {
				return a, err
			}
			if _, err := io.Copy(io.Discard, sr); err != nil { // the callback may stop early
				return a, err
			}
			continue
		}
		// Other fields are small: decode them through the meta buffer.
		mark := j.meta.Len()
		if err := j.value(true); err != nil {
			return a, err
		}
		raw := append([]byte(nil), j.meta.Bytes()[mark:]...)
		j.meta.Truncate(mark)
		if err := j.keepAside(len(raw)); err != nil {
			return a, err
		}
		switch field {
		case "content_type":
			json.Unmarshal(raw, &a.ContentType)
		case "length":
			if err := json.Unmarshal(raw, &a.Length); err != nil {
				return a, fmt.Errorf("attachment %q: length must be a number", name)
			}
		}
	}
}

// boundedBody fails a body once it runs past max bytes.
type boundedBody struct {
	r         io.Reader
	max, read int64
}

func (b *boundedBody) Read(p []byte) (int, error) {
	if b.read > b.max {
		return 0, &tooLargeError{b.max, "bytes of body"}
	}
	if left := b.max + 1 - b.read; int64(len(p)) > left {
		p = p[:left] // one byte past max tells a body of exactly max from a longer one
	}
	n, err := b.r.Read(p)
	b.read += int64(n)
	return n, err
}

// stringReader yields the contents of a JSON string being read (after its
// opening quote) up to the closing quote. It accepts `\/`, the one escape a
// base64 string may carry.
type stringReader struct {
	br   *bufio.Reader
	done bool
}

func (s *stringReader) Read(p []byte) (int, error) {
	if s.done {
		return 0, io.EOF
	}
	n := 0
	for n < len(p) {
		if n > 0 && s.br.Buffered() == 0 {
			break // return what we have rather than block
		}
		c, err := s.br.ReadByte()
		if err != nil {
			return n, truncated(err)
		}
		switch c {
		case '"':
			s.done = true
			if n == 0 {
				return 0, io.EOF
			}
			return n, nil
		case '\\':
			e, err := s.br.ReadByte()
			if err != nil {
				return n, truncated(err)
			}
			if e != '/' {
				return n, fmt.Errorf("unexpected escape \\%c in attachment data", e)
			}
			c = '/'
		}
		p[n] = c
		n++
	}
	return n, nil
}
