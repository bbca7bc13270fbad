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

var errBodyTooLarge = errors.New("document too large")

// jsonReader is a byte reader over the body that keeps a bounded copy of
// what it copies into meta.
type jsonReader struct {
	br   *bufio.Reader
	meta bytes.Buffer
	max  int
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
	if j.meta.Len()+len(b) > j.max {
		return errBodyTooLarge
	}
	j.meta.Write(b)
	return nil
}

// splitPublishBody returns the body without `_attachments`, and the
// attachments; onData receives each attachment's decoded data.
func splitPublishBody(r io.Reader, maxMeta int, onData func(name string, data io.Reader) error) ([]byte, []attachment, error) {
	j := &jsonReader{br: bufio.NewReaderSize(r, 64<<10), max: maxMeta}
	var atts []attachment
	c, err := j.next()
	if err != nil || c != '{' {
		return nil, nil, fmt.Errorf("body is not a JSON object")
	}
	j.emit('{')
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
		if err := j.copyValue(); err != nil {
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
		if len(out) > j.max {
			return nil, errBodyTooLarge
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

// copyValue copies one JSON value verbatim into meta.
func (j *jsonReader) copyValue() error {
	c, err := j.next()
	if err != nil {
		return err
	}
	depth := 0
	for {
		switch c {
		case '"':
			s, err := j.rawString()
			if err != nil {
				return err
			}
			if err := j.emit(s...); err != nil {
				return err
			}
		case '{', '[':
			depth++
			if depth > limit.DefaultJSONDepth {
				return fmt.Errorf("%w: more than %d levels", limit.ErrTooDeep, limit.DefaultJSONDepth)
			}
			if err := j.emit(c); err != nil {
				return err
			}
		case '}', ']':
			depth--
			if err := j.emit(c); err != nil {
				return err
			}
		default:
			if err := j.emit(c); err != nil {
				return err
			}
		}
		if depth == 0 {
			// A scalar ends at a delimiter, which belongs to the caller.
			if c != '"' && c != '}' && c != ']' {
				for {
					p, err := j.br.Peek(1)
					if err != nil || bytes.IndexByte([]byte(",}] \t\r\n"), p[0]) >= 0 {
						return nil
					}
					b, _ := j.br.ReadByte()
					if err := j.emit(b); err != nil {
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
		if err := j.copyValue(); err != nil {
			return a, err
		}
		raw := append([]byte(nil), j.meta.Bytes()[mark:]...)
		j.meta.Truncate(mark)
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
