package config

import (
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
