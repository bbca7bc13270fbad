package config

import (
	"fmt"
	"regexp"
	"strconv"
	"strings"
	"time"

	"github.com/unireg/unireg/registry/oci"
)

// days is a duration flag that also takes a whole number of days ("30d"),
// which retention and cache ages are usually written in. Negative values
// are refused; with positive, so is zero.
type days struct {
	dst      *time.Duration
	positive bool
}

func (d days) String() string {
	if d.dst == nil {
		return ""
	}
	if *d.dst != 0 && *d.dst%(24*time.Hour) == 0 {
		return strconv.FormatInt(int64(*d.dst/(24*time.Hour)), 10) + "d"
	}
	return d.dst.String()
}

func (d days) Set(s string) error {
	v, err := parseDays(s)
	if err != nil {
		return err
	}
	if d.positive && v == 0 {
		return fmt.Errorf("%q: must be positive", s)
	}
	*d.dst = v
	return nil
}

// byteCount is a size flag in bytes (as --cache-spool-bytes), refusing
// negative values; its errors quote the value, whichever layer gave it.
type byteCount struct{ dst *int64 }

func (b byteCount) String() string {
	if b.dst == nil {
		return "0"
	}
	return strconv.FormatInt(*b.dst, 10)
}

func (b byteCount) Set(s string) error {
	v, err := strconv.ParseInt(s, 10, 64)
	if err != nil || v < 0 {
		return fmt.Errorf("%q: want a number of bytes, 0 or more", s)
	}
	*b.dst = v
	return nil
}

// parseDays reads a Go duration or a whole number of days ("7d").
func parseDays(s string) (time.Duration, error) {
	if n, ok := strings.CutSuffix(s, "d"); ok {
		v, err := strconv.ParseUint(n, 10, 32)
		if err != nil {
			return 0, fmt.Errorf("%q: want a duration such as 90m, 168h or 7d", s)
		}
		return time.Duration(v) * 24 * time.Hour, nil
	}
	v, err := time.ParseDuration(s)
	if err != nil || v < 0 {
		return 0, fmt.Errorf("%q: want a duration such as 90m, 168h or 7d", s)
	}
	return v, nil
}

// retentionRules are the rule names of a --retention value, by which its
// comma list is split: a keep-tags regular expression may hold commas.
var retentionRules = []string{"keep-last=", "keep-tags=", "untagged-after="}

// parseRetention reads one --retention value, PATTERN=RULES (docs/gc.md).
func parseRetention(s string) (oci.Retention, error) {
	pattern, rules, ok := strings.Cut(s, "=")
	if !ok || pattern == "" || rules == "" {
		return oci.Retention{}, fmt.Errorf("%q: want PATTERN=RULES, e.g. 'ci/*=keep-last=10,keep-tags=^v,untagged-after=7d'", s)
	}
	if !validRepositoryGlob(pattern) {
		return oci.Retention{}, fmt.Errorf("%q: %q is not a repository pattern (lowercase names, / between components, * for any run)", s, pattern)
	}
	r := oci.Retention{Repositories: pattern}
	given := map[string]bool{}
	for _, rule := range splitRules(rules) {
		name, value, _ := strings.Cut(rule, "=")
		if given[name] {
			return oci.Retention{}, fmt.Errorf("%q: %s is given twice", s, name)
		}
		given[name] = true
		switch name {
		case "keep-last":
			n, err := strconv.Atoi(value)
			if err != nil || n < 1 {
				return oci.Retention{}, fmt.Errorf("%q: keep-last=%s: want a whole number of at least 1", s, value)
			}
			r.KeepLast = n
		case "keep-tags":
			if value == "" {
				return oci.Retention{}, fmt.Errorf("%q: keep-tags is empty (an empty expression would keep every tag: write .* for that)", s)
			}
			re, err := regexp.Compile(value)
			if err != nil {
				return oci.Retention{}, fmt.Errorf("%q: keep-tags=%s: not a regular expression: %v", s, value, err)
			}
			r.KeepTags = re
		case "untagged-after":
			d, err := parseDays(value)
			if err != nil || d <= 0 {
				return oci.Retention{}, fmt.Errorf("%q: untagged-after=%s: want a positive duration such as 168h or 7d", s, value)
			}
			r.UntaggedAfter = d
		default:
			return oci.Retention{}, fmt.Errorf("%q: unknown rule %q (rules: keep-last=N, keep-tags=REGEX, untagged-after=DURATION)", s, rule)
		}
	}
	return r, nil
}

// splitRules splits RULES at the commas that start a known rule.
func splitRules(rules string) []string {
	var out []string
	start := 0
	for i := 0; i < len(rules); i++ {
		if rules[i] != ',' {
			continue
		}
		for _, name := range retentionRules {
			if strings.HasPrefix(rules[i+1:], name) {
				out = append(out, rules[start:i])
				start = i + 1
				break
			}
		}
	}
	return append(out, rules[start:])
}

func formatRetention(r oci.Retention) string {
	var rules []string
	if r.KeepLast > 0 {
		rules = append(rules, "keep-last="+strconv.Itoa(r.KeepLast))
	}
	if r.KeepTags != nil {
		rules = append(rules, "keep-tags="+r.KeepTags.String())
	}
	if r.UntaggedAfter > 0 {
		rules = append(rules, "untagged-after="+days{dst: &r.UntaggedAfter}.String())
	}
	return r.Repositories + "=" + strings.Join(rules, ",")
}

// validRepositoryGlob reports whether p is a repository name in which `*`
// may stand for any run of characters.
func validRepositoryGlob(p string) bool {
	if p == "*" {
		return true
	}
	return oci.ValidName(strings.ReplaceAll(p, "*", "x"))
}
