package main

import (
	"encoding/json"
	"reflect"
	"testing"
)

// TestNPMSearchQualifiersAndRanking: the real `npm search` sends its words
// as text=; the registry reads the public registry's qualifiers in it and
// answers best first, which is the order npm prints.
func TestNPMSearchQualifiersAndRanking(t *testing.T) {
	npm := npmClient(t, "npm")
	s := startServer(t, "")
	w := newNPMWorld(t, s, s.adminToken())
	for _, p := range []struct {
		name  string
		extra map[string]any
	}{
		{"serve", map[string]any{"description": "static files, works with express"}},
		{"router", map[string]any{"description": "a router", "keywords": []string{"express", "acme-kw"}}},
		{"body-express", map[string]any{"description": "parses bodies"}},
		{"express-session", map[string]any{"description": "sessions", "keywords": []string{"acme-kw", "session"}}},
		{"@acme/express-utils", map[string]any{"description": "helpers"}},
		{"express", map[string]any{"description": "fast web framework", "keywords": []string{"web"}, "author": "TJ <tj@example.com>"}},
		{"old-kw", map[string]any{"description": "old", "keywords": []string{"acme-kw"}}},
	} {
		w.run(w.pkg("src/"+p.name, p.name, "1.0.0", p.extra), npm, "publish")
	}
	app := w.project("app")
	w.run(app, npm, "deprecate", "old-kw", "use router")

	search := func(words ...string) []string {
		t.Helper()
		out := w.run(app, npm, append(append([]string{"search"}, words...), "--json")...)
		var found []struct{ Name string }
		if err := json.Unmarshal([]byte(out), &found); err != nil {
			t.Fatalf("npm search %v --json: %v\n%s", words, err, out)
		}
		names := []string{}
		for _, f := range found {
			names = append(names, f.Name)
		}
		return names
	}
	tests := []struct {
		words []string
		want  []string
	}{
		{[]string{"keywords:acme-kw"}, []string{"express-session", "old-kw", "router"}},
		{[]string{"express"}, []string{"express", "@acme/express-utils", "express-session", "body-express", "router", "serve"}},
		{[]string{"not:deprecated", "keywords:acme-kw"}, []string{"express-session", "router"}},
		{[]string{"is:deprecated"}, []string{"old-kw"}},
		{[]string{"keywords:session,web"}, []string{"express", "express-session"}},
		{[]string{"author:tj@example.com"}, []string{"express"}},
		{[]string{"scope:acme"}, []string{"@acme/express-utils"}},
		{[]string{"express", "keywords:acme-kw"}, []string{"express-session", "router"}},
	}
	for _, tt := range tests {
		if got := search(tt.words...); !reflect.DeepEqual(got, tt.want) {
			t.Errorf("npm search %v = %v, want %v", tt.words, got, tt.want)
		}
	}
}
