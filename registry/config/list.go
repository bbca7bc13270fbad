package config

import (
	"errors"
	"flag"
	"fmt"
	"strings"
)

// Every list-valued setting is a list: one flag type, one rule per layer
// (docs/config.md, "List-valued settings"):
//
//   - command line: each occurrence of the flag adds values;
//   - UNIREG_* variable: one value per line (a Kubernetes env value can hold
//     newlines, `value: |` in YAML; commas and regular expressions pass as
//     they are); surrounding whitespace and blank lines are ignored;
//   - config file: a YAML list, one element per value (a scalar is one value).
//
// A comma list (commaList) also splits each of those values on commas, the
// form --anonymous and --trusted-proxies always accepted; a repeatable flag
// (repeatable) never splits, so its values may contain commas. The layers
// do not merge: the first layer that sets a list (flag, then environment,
// then file) gives all of it, replacing the default.
type list[T any] struct {
	dst    *[]T
	parse  func(string) (T, error)
	format func(T) string // nil: fmt.Sprint
	// comma splits every value on commas (and trims the parts).
	comma bool
	// none, when set, is the word for the explicit empty list (a non-nil,
	// empty slice, which the library reads differently from nil); with it an
	// empty value is an error instead of no values.
	none string
	// given is true once a value replaced the default; saidNone once the
	// none word was one of the values.
	given, saidNone bool
}

// listFlag is what Load needs of a list flag to apply the environment and
// the file layer, which hold several values at once.
type listFlag interface {
	flag.Value
	setList(values []string) error
	splitsOnCommas() bool
}

// commaList is a list flag whose values split on commas.
func commaList[T any](dst *[]T, parse func(string) (T, error), format func(T) string) *list[T] {
	return &list[T]{dst: dst, parse: parse, format: format, comma: true}
}

// repeatable is a list flag taking one value per occurrence, never split.
func repeatable[T any](dst *[]T, parse func(string) (T, error), format func(T) string) *list[T] {
	return &list[T]{dst: dst, parse: parse, format: format}
}

// stringValue is the parse function of a list of plain strings.
func stringValue(s string) (string, error) { return s, nil }

// String joins the values with commas (help and flag.Value); for display only.
func (l *list[T]) String() string {
	if l == nil || l.dst == nil || *l.dst == nil {
		return ""
	}
	if len(*l.dst) == 0 && l.none != "" {
		return l.none
	}
	parts := make([]string, len(*l.dst))
	for i, v := range *l.dst {
		if l.format != nil {
			parts[i] = l.format(v)
		} else {
			parts[i] = fmt.Sprint(v)
		}
	}
	return strings.Join(parts, ",")
}

// Set adds one occurrence's values; the first replaces the default.
func (l *list[T]) Set(s string) error {
	if !l.given {
		*l.dst = []T{}
		l.given = true
	}
	parts := []string{s}
	if l.comma {
		parts = strings.Split(s, ",")
		for i := range parts {
			parts[i] = strings.TrimSpace(parts[i])
		}
	}
	added := 0
	for _, p := range parts {
		if l.comma && p == "" {
			continue
		}
		if l.none != "" && (strings.TrimSpace(p) == l.none || l.saidNone) {
			if l.saidNone || len(*l.dst) > 0 || len(parts) > 1 {
				return fmt.Errorf("%q means the empty list: it cannot be given with other values", l.none)
			}
			l.saidNone = true
			return nil
		}
		v, err := l.parse(p)
		if err != nil {
			return err
		}
		*l.dst = append(*l.dst, v)
		added++
	}
	if added == 0 && l.none != "" {
		return fmt.Errorf("empty: give values, or %q for none", l.none)
	}
	return nil
}

// setList replaces the list with values (an empty slice: the empty list).
func (l *list[T]) setList(values []string) error {
	*l.dst = []T{}
	l.given, l.saidNone = true, false
	for _, v := range values {
		if err := l.Set(v); err != nil {
			return err
		}
	}
	return nil
}

func (l *list[T]) splitsOnCommas() bool { return l.comma }

// envValues splits an environment value of a list into its lines.
func envValues(v string) []string {
	var out []string
	for _, line := range strings.Split(v, "\n") {
		if line = strings.TrimSpace(line); line != "" {
			out = append(out, line)
		}
	}
	return out
}

var errNotAList = errors.New("is not a list setting: give one value, not a YAML list")
