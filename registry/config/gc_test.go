package config

import (
	"io"
	"strings"
	"testing"
	"time"

	"github.com/unireg/unireg/registry"
	"github.com/unireg/unireg/registry/gc"
)

func TestRetentionRulesSplitOnlyBeforeARuleName(t *testing.T) {
	r, err := parseRetention(`ci/*=keep-last=3,keep-tags=^(v[0-9]+|release-a,b)$,untagged-after=7d`)
	if err != nil {
		t.Fatal(err)
	}
	if r.Repositories != "ci/*" || r.KeepLast != 3 || r.UntaggedAfter != 7*24*time.Hour {
		t.Fatalf("parsed %+v", r)
	}
	if !r.KeepTags.MatchString("release-a,b") || r.KeepTags.MatchString("latest") {
		t.Fatalf("keep-tags %q lost its comma", r.KeepTags)
	}
	if got := formatRetention(r); got != `ci/*=keep-last=3,keep-tags=^(v[0-9]+|release-a,b)$,untagged-after=7d` {
		t.Fatalf("formatted %q", got)
	}
}

func TestBadRetentionRulesNameTheBadPart(t *testing.T) {
	for value, want := range map[string]string{
		"ci/*":                        "PATTERN=RULES",
		"=keep-last=1":                "PATTERN=RULES",
		"CI/*=keep-last=1":            "not a repository pattern",
		"ci/*=keep-last=0":            "keep-last=0",
		"ci/*=keep-last=x":            "keep-last=x",
		"ci/*=keep-tags=(":            "keep-tags=(",
		"ci/*=untagged-after=soon":    "untagged-after=soon",
		"ci/*=keep-first=2":           "unknown rule",
		"ci/*=keep-last=1,keep-all=1": "keep-last=1,keep-all=1", // an unknown name is no split point
	} {
		if _, err := parseRetention(value); err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("%q: %v, want an error about %s", value, err, want)
		}
	}
}

func TestGCFlagsDefaultsAndEnvironment(t *testing.T) {
	o, err := Load(nil, func(string) string { return "" }, nil)
	if err != nil {
		t.Fatal(err)
	}
	if o.Registry.GC.Interval != gc.DefaultInterval || o.Registry.GC.Grace != gc.DefaultGrace || o.Registry.Cache.MaxIdle != registry.DefaultCacheMaxIdle {
		t.Fatalf("defaults: %+v, cache max idle %v", o.Registry.GC, o.Registry.Cache.MaxIdle)
	}
	env := map[string]string{
		"UNIREG_GC_INTERVAL":    "0",
		"UNIREG_CACHE_MAX_IDLE": "7d",
		"UNIREG_RETENTION":      "ci/*=keep-last=2\nteam/*=untagged-after=24h",
	}
	o, err = Load(nil, func(k string) string { return env[k] }, nil)
	if err != nil {
		t.Fatal(err)
	}
	if o.Registry.GC.Interval != 0 || o.Registry.Cache.MaxIdle != 7*24*time.Hour || len(o.Registry.OCI.Retention) != 2 {
		t.Fatalf("from the environment: %+v, %v, %d rules", o.Registry.GC, o.Registry.Cache.MaxIdle, len(o.Registry.OCI.Retention))
	}
}

func TestRetentionRefusesARuleGivenTwice(t *testing.T) {
	// The second keep-last silently replacing the first would keep fewer
	// tags than one of the two says.
	for _, value := range []string{"ci/*=keep-last=5,keep-last=1", "ci/*=untagged-after=7d,keep-tags=^v,untagged-after=1h"} {
		if _, err := parseRetention(value); err == nil || !strings.Contains(err.Error(), "given twice") {
			t.Errorf("%q: %v, want an error saying a rule is given twice", value, err)
		}
	}
	if _, err := parseRetention("ci/*=keep-tags="); err == nil || strings.Contains(err.Error(), "<nil>") || !strings.Contains(err.Error(), "empty") {
		t.Errorf("an empty keep-tags: %v, want an error saying it is empty", err)
	}
}

// The collector's settings come from every layer, as the other flags do:
// the config file's keys are the flag names, retention a YAML list.
func TestGCSettingsFromTheConfigFile(t *testing.T) {
	file := writeConfig(t, "gc-interval: 15m\ngc-grace: 2h\ncache-max-idle: 14d\ncache-max-bytes: 1073741824\n"+
		"retention:\n  - 'ci/*=keep-last=10,keep-tags=^(v|rc-[0-9]{1,3})$,untagged-after=7d'\n  - '*=untagged-after=30d'\n")
	o, err := Load([]string{"--config", file}, env(nil), io.Discard)
	if err != nil {
		t.Fatal(err)
	}
	g, c, r := o.Registry.GC, o.Registry.Cache, o.Registry.OCI.Retention
	if g.Interval != 15*time.Minute || g.Grace != 2*time.Hour || c.MaxIdle != 14*24*time.Hour || c.MaxBytes != 1<<30 {
		t.Fatalf("from the file: gc %+v, cache max idle %v, max bytes %d", g, c.MaxIdle, c.MaxBytes)
	}
	if len(r) != 2 || r[0].KeepLast != 10 || !r[0].KeepTags.MatchString("rc-12") || r[0].UntaggedAfter != 7*24*time.Hour ||
		r[1].Repositories != "*" || r[1].KeepLast != 0 || r[1].KeepTags != nil || r[1].UntaggedAfter != 30*24*time.Hour {
		t.Fatalf("retention from the file: %+v", r)
	}
}

// A bad value is an error naming the setting where it was given and the
// part at fault, from the flag, the variable and the file alike.
func TestBadGCSettingsNameTheSettingAndThePart(t *testing.T) {
	cases := []struct {
		name string
		args []string
		env  map[string]string
		want []string
	}{
		{"bad regex flag", []string{"--retention", "ci/*=keep-tags=(v"}, nil, []string{"-retention", "keep-tags=(v"}},
		{"keep-last 0 in env", nil, map[string]string{"UNIREG_RETENTION": "ci/*=keep-last=1\nteam/*=keep-last=0"}, []string{"UNIREG_RETENTION", "keep-last=0"}},
		{"unknown rule in file", []string{"--config", writeConfig(t, "retention: ['ci/*=keep-first=3']\n")}, nil, []string{"retention", `unknown rule "keep-first=3"`}},
		{"empty pattern", []string{"--retention", "=keep-last=3"}, nil, []string{"-retention", "PATTERN=RULES"}},
		{"pattern not a repository glob", []string{"--retention", "CI//*=keep-last=3"}, nil, []string{"-retention", `"CI//*" is not a repository pattern`}},
		{"negative interval", []string{"--gc-interval", "-1h"}, nil, []string{"-gc-interval", "-1h"}},
		{"zero grace", []string{"--gc-grace", "0"}, nil, []string{"-gc-grace", "positive"}},
		{"days with a fraction", nil, map[string]string{"UNIREG_CACHE_MAX_IDLE": "1.5d"}, []string{"UNIREG_CACHE_MAX_IDLE", "1.5d"}},
		{"negative byte bound", []string{"--cache-max-bytes", "-1"}, nil, []string{"-cache-max-bytes", "-1"}},
		{"byte bound not a number", []string{"--config", writeConfig(t, "cache-max-bytes: 10GB\n")}, nil, []string{"cache-max-bytes", "10GB"}},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			_, err := Load(c.args, env(c.env), io.Discard)
			if err == nil {
				t.Fatal("accepted")
			}
			for _, w := range c.want {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("error %q does not mention %q", err, w)
				}
			}
		})
	}
}

func TestNPMAllowCaseVariantsFlag(t *testing.T) {
	for args, want := range map[string]bool{"": false, "--npm-allow-case-variants": true} {
		o, err := Load(strings.Fields(args), func(string) string { return "" }, nil)
		if err != nil {
			t.Fatal(err)
		}
		if o.Registry.NPM.AllowCaseVariants != want {
			t.Errorf("%q: AllowCaseVariants %v, want %v", args, o.Registry.NPM.AllowCaseVariants, want)
		}
	}
}

// --cache-memory-bytes: its default is the library's, a value is taken as
// given, and 0 (no shared window) reaches the library as its "none", not
// as its zero (which would mean the default again).
func TestCacheMemoryBytes(t *testing.T) {
	for _, c := range []struct {
		args []string
		want int64
	}{
		{nil, registry.DefaultCacheMemoryBytes},
		{[]string{"--cache-memory-bytes", "1073741824"}, 1 << 30},
		{[]string{"--cache-memory-bytes", "0"}, -1},
	} {
		o, err := Load(c.args, env(nil), io.Discard)
		if err != nil {
			t.Fatalf("%v: %v", c.args, err)
		}
		if got := o.Registry.Cache.MemoryBytes; got != c.want {
			t.Errorf("%v: MemoryBytes %d, want %d", c.args, got, c.want)
		}
	}
	if _, err := Load([]string{"--cache-memory-bytes", "-5"}, env(nil), io.Discard); err == nil || !strings.Contains(err.Error(), "-5") {
		t.Errorf("a negative --cache-memory-bytes: %v, want an error quoting it", err)
	}
}
