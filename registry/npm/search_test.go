package npm

import (
	"bytes"
	"compress/gzip"
	"net/http"
	"net/url"
	"reflect"
	"strconv"
	"strings"
	"testing"
)

// searchHarness publishes a few packages with descriptions and keywords.
func searchHarness(t *testing.T) *harness {
	t.Helper()
	hs := newHarness(t, map[string][]string{
		"admin":     {"*"},
		"padreader": {"npm:package:*-pad:read"},
	})
	for _, pkg := range []struct {
		name, description string
		keywords          []any
	}{
		{"left-pad", "Pad strings on the LEFT", []any{"string", "padding"}},
		{"right-pad", "pad strings on the right", []any{"string"}},
		{"@acme/secret", "internal pad helper", []any{"Internal"}},
		{"unrelated", "nothing to see", nil},
	} {
		p := newPublish(pkg.name, "1.0.0", tarballOf(pkg.name, "1.0.0"))
		p.doc["description"] = pkg.description
		p.manifest()["description"] = pkg.description
		if pkg.keywords != nil {
			p.manifest()["keywords"] = pkg.keywords
		}
		p.doc["maintainers"] = []any{map[string]any{"name": "alice", "email": "alice@example.com"}}
		expectStatus(t, hs.publishAs("admin", "", p), http.StatusCreated)
	}
	return hs
}

type searchResult struct {
	names   []string
	total   float64
	objects []map[string]any
}

func (hs *harness) search(user string, query url.Values) searchResult {
	hs.t.Helper()
	w := hs.get(user, "/-/v1/search?"+query.Encode())
	expectStatus(hs.t, w, http.StatusOK)
	body := decodeBody(hs.t, w)
	var res searchResult
	res.total, _ = body["total"].(float64)
	if body["time"] == nil {
		hs.t.Fatalf("search answer has no time: %v", body)
	}
	objs, ok := body["objects"].([]any)
	if !ok {
		hs.t.Fatalf("objects = %v, want an array", body["objects"])
	}
	for _, o := range objs {
		m := o.(map[string]any)
		res.objects = append(res.objects, m)
		res.names = append(res.names, m["package"].(map[string]any)["name"].(string))
	}
	return res
}

func TestSearchMatchesNamesDescriptionsKeywords(t *testing.T) {
	hs := searchHarness(t)
	tests := []struct {
		text string
		want []string
	}{
		{"left", []string{"left-pad"}},                                       // name (and description)
		{"right-pad", []string{"right-pad"}},                                 // full name
		{"padding", []string{"left-pad"}},                                    // keyword only
		{"internal", []string{"@acme/secret"}},                               // description and keyword, case folded
		{"pad", []string{"left-pad", "right-pad", "@acme/secret"}},           // names before descriptions, ties by name
		{"strings pad", []string{"left-pad", "right-pad"}},                   // every term must match
		{"STRING LEFT", []string{"left-pad"}},                                // case-insensitive
		{"acme", []string{"@acme/secret"}},                                   // scope is part of the name
		{"", []string{"@acme/secret", "left-pad", "right-pad", "unrelated"}}, // everything
		{"nomatch", nil},
	}
	for _, tt := range tests {
		t.Run(tt.text, func(t *testing.T) {
			res := hs.search("admin", url.Values{"text": {tt.text}})
			if !reflect.DeepEqual(res.names, tt.want) {
				t.Fatalf("search %q = %v, want %v", tt.text, res.names, tt.want)
			}
			if int(res.total) != len(tt.want) {
				t.Fatalf("total = %v, want %d", res.total, len(tt.want))
			}
		})
	}
}

func TestSearchResultsHaveTheShapeNpmPrints(t *testing.T) {
	hs := searchHarness(t)
	// A package published without maintainers gets its publisher.
	expectStatus(t, hs.publishAs("admin", "", newPublish("bare", "1.0.0", tarballOf("bare", "1.0.0"))), http.StatusCreated)
	res := hs.search("admin", url.Values{"text": {""}})
	if len(res.objects) != 5 {
		t.Fatalf("got %v", res.names)
	}
	for _, o := range res.objects {
		pkg := o["package"].(map[string]any)
		maint, ok := pkg["maintainers"].([]any)
		if !ok || len(maint) == 0 {
			t.Fatalf("%s: maintainers = %v, want a non-empty array", pkg["name"], pkg["maintainers"])
		}
		for _, m := range maint {
			mm, _ := m.(map[string]any)
			if _, ok := mm["username"].(string); !ok {
				t.Fatalf("%s: maintainer %v has no username", pkg["name"], m)
			}
			if _, ok := mm["email"].(string); !ok {
				t.Fatalf("%s: maintainer %v has no email", pkg["name"], m)
			}
		}
		if pkg["version"] != "1.0.0" || pkg["date"] == nil || pkg["links"] == nil {
			t.Fatalf("package = %v", pkg)
		}
		if _, ok := pkg["keywords"].([]any); !ok {
			t.Fatalf("%s: keywords = %v, want an array", pkg["name"], pkg["keywords"])
		}
		if _, ok := pkg["publisher"].(map[string]any); !ok {
			t.Fatalf("%s: publisher = %v", pkg["name"], pkg["publisher"])
		}
		score, _ := o["score"].(map[string]any)
		if score["final"] == nil || score["detail"] == nil || o["searchScore"] == nil {
			t.Fatalf("%s: score = %v, searchScore = %v", pkg["name"], o["score"], o["searchScore"])
		}
	}
	pkg := res.objects[indexOf(res.names, "left-pad")]["package"].(map[string]any)
	if want := []any{map[string]any{"username": "alice", "email": "alice@example.com"}}; !reflect.DeepEqual(pkg["maintainers"], want) {
		t.Fatalf("maintainers = %v, want %v", pkg["maintainers"], want)
	}
	if pkg["description"] != "Pad strings on the LEFT" || !reflect.DeepEqual(pkg["keywords"], []any{"string", "padding"}) {
		t.Fatalf("left-pad = %v", pkg)
	}
	pkg = res.objects[indexOf(res.names, "bare")]["package"].(map[string]any)
	if want := []any{map[string]any{"username": "admin", "email": ""}}; !reflect.DeepEqual(pkg["maintainers"], want) {
		t.Fatalf("bare maintainers = %v, want %v", pkg["maintainers"], want)
	}
}

func indexOf(s []string, v string) int {
	for i, x := range s {
		if x == v {
			return i
		}
	}
	return -1
}

func TestSearchOnlyShowsReadablePackages(t *testing.T) {
	hs := searchHarness(t)
	res := hs.search("padreader", url.Values{"text": {"pad"}})
	if want := []string{"left-pad", "right-pad"}; !reflect.DeepEqual(res.names, want) || res.total != 2 {
		t.Fatalf("padreader sees %v (total %v), want %v", res.names, res.total, want)
	}
	if res := hs.search("", url.Values{"text": {""}}); len(res.names) != 0 || res.total != 0 {
		t.Fatalf("anonymous sees %v (total %v)", res.names, res.total)
	}
}

func TestSearchPages(t *testing.T) {
	hs := searchHarness(t)
	all := []string{"@acme/secret", "left-pad", "right-pad", "unrelated"}
	tests := []struct {
		size, from string
		want       []string
	}{
		{"1", "0", all[:1]},
		{"2", "1", all[1:3]},
		{"2", "3", all[3:]},
		{"10", "4", nil},
		{"10", "100", nil},
		{"0", "0", all[:1]},   // size at least 1
		{"-5", "-5", all[:1]}, // both clamped
		{"junk", "junk", all}, // defaults
		{"", "2", all[2:]},
	}
	for _, tt := range tests {
		t.Run("size="+tt.size+",from="+tt.from, func(t *testing.T) {
			res := hs.search("admin", url.Values{"text": {""}, "size": {tt.size}, "from": {tt.from}})
			if !reflect.DeepEqual(res.names, tt.want) {
				t.Fatalf("page = %v, want %v", res.names, tt.want)
			}
			if res.total != 4 {
				t.Fatalf("total = %v, want every match (4)", res.total)
			}
		})
	}
}

func TestSearchDefaultsToTwentyResults(t *testing.T) {
	hs := newHarness(t, defaultUsers())
	for i := range 25 {
		hs.mustPublish("pkg-"+string(rune('a'+i)), "1.0.0")
	}
	res := hs.search("reader", url.Values{"text": {"pkg"}})
	if len(res.names) != 20 || res.total != 25 {
		t.Fatalf("%d results, total %v: want 20 of 25", len(res.names), res.total)
	}
}

func TestSearchForgetsDeletedPackages(t *testing.T) {
	hs := searchHarness(t)
	rev := hs.writeDoc("left-pad")["_rev"].(string)
	expectStatus(t, hs.do(call{method: http.MethodDelete, path: "/left-pad/-rev/" + rev, user: "admin"}), http.StatusOK)
	if res := hs.search("admin", url.Values{"text": {"pad"}}); !reflect.DeepEqual(res.names, []string{"right-pad", "@acme/secret"}) {
		t.Fatalf("search = %v", res.names)
	}
}

func TestSearchDisabled(t *testing.T) {
	hs := newHarnessWith(t, harnessConfig{users: defaultUsers(), options: func(o *Options) { o.DisableSearch = true }})
	expectError(t, hs.get("admin", "/-/v1/search?text=x"), http.StatusNotFound, "disabled")
}

func TestSearchOnEmptyRegistry(t *testing.T) {
	hs := newHarness(t, defaultUsers())
	if res := hs.search("admin", url.Values{"text": {"x"}}); len(res.names) != 0 || res.total != 0 {
		t.Fatalf("search = %v", res.names)
	}
}

func TestAuditAnswersNoAdvisories(t *testing.T) {
	hs := newHarness(t, defaultUsers())
	var gz bytes.Buffer
	zw := gzip.NewWriter(&gz)
	zw.Write([]byte(`{"left-pad":["1.0.0"],"@acme/x":["2.0.0"]}`))
	zw.Close()

	for _, user := range []string{"", "reader"} {
		w := hs.do(call{method: http.MethodPost, path: "/-/npm/v1/security/advisories/bulk", body: gz.Bytes(), user: user,
			header: map[string]string{"Content-Encoding": "gzip", "Content-Type": "application/json"}})
		expectStatus(t, w, http.StatusOK)
		if got := decodeBody(t, w); len(got) != 0 {
			t.Fatalf("bulk advisories = %v, want {}", got)
		}
	}
	for _, path := range []string{"/-/npm/v1/security/audits/quick", "/-/npm/v1/security/audits"} {
		t.Run(path, func(t *testing.T) {
			w := hs.do(call{method: http.MethodPost, path: path, body: []byte(`{"name":"app","version":"1.0.0","requires":{},"dependencies":{}}`)})
			expectStatus(t, w, http.StatusOK)
			got := decodeBody(t, w)
			meta, _ := got["metadata"].(map[string]any)
			vulns, _ := meta["vulnerabilities"].(map[string]any)
			want := map[string]any{"info": 0.0, "low": 0.0, "moderate": 0.0, "high": 0.0, "critical": 0.0}
			if !reflect.DeepEqual(vulns, want) {
				t.Fatalf("metadata.vulnerabilities = %v, want %v", vulns, want)
			}
			if adv, ok := got["advisories"].(map[string]any); !ok || len(adv) != 0 {
				t.Fatalf("advisories = %v", got["advisories"])
			}
			if _, ok := got["actions"].([]any); !ok {
				t.Fatalf("actions = %v", got["actions"])
			}
		})
	}
	expectError(t, hs.do(call{method: http.MethodPost, path: "/-/npm/v1/security/other", body: []byte(`{}`)}), http.StatusNotFound, "not found")
}

// rankHarness publishes packages that a search for express ranks in every
// tier, and a few tagged acme-kw that differ in stability and deprecation.
func rankHarness(t *testing.T) *harness {
	t.Helper()
	hs := newHarness(t, map[string][]string{
		"admin":   {"*"},
		"express": {"npm:package:express*:read"},
	})
	for _, pkg := range []struct {
		name, version, description string
		keywords                   []any
		author                     any
		maintainer                 string
	}{
		{"express", "4.21.0", "Fast web framework", []any{"web", "framework"}, "TJ Holowaychuk <tj@example.com> (http://tj.example)", "alice"},
		{"express-session", "1.18.0", "Session middleware", []any{"express", "session"}, map[string]any{"name": "Doug", "email": "doug@example.com"}, "alice"},
		{"@acme/express-utils", "1.0.0", "Helpers", nil, nil, "alice"},
		{"body-express", "1.0.0", "Parse bodies", nil, nil, "alice"},
		{"router", "1.3.0", "A router", []any{"Express"}, nil, "alice"},
		{"serve", "14.0.0", "Serve files, works with express", nil, nil, "alice"},
		{"old-thing", "1.0.0", "Old", []any{"acme-kw"}, nil, "alice"},
		{"beta-thing", "0.3.0", "Beta", []any{"acme-kw", "beta"}, nil, "alice"},
		{"pre-thing", "2.0.0-rc.1", "Prerelease", []any{"acme-kw"}, nil, "alice"},
		{"@acme/tool", "3.0.0", "A tool", []any{"acme-kw", "cli"}, nil, "bob"},
	} {
		p := newPublish(pkg.name, pkg.version, tarballOf(pkg.name, pkg.version))
		p.doc["description"] = pkg.description
		p.manifest()["description"] = pkg.description
		if pkg.keywords != nil {
			p.manifest()["keywords"] = pkg.keywords
		}
		if pkg.author != nil {
			p.manifest()["author"] = pkg.author
		}
		p.doc["maintainers"] = []any{map[string]any{"name": pkg.maintainer, "email": pkg.maintainer + "@example.com"}}
		expectStatus(t, hs.publishAs("admin", "", p), http.StatusCreated)
	}
	doc := hs.writeDoc("old-thing")
	versionOf(doc, "1.0.0")["deprecated"] = "use @acme/tool"
	expectStatus(t, hs.putDoc("admin", "old-thing", doc), http.StatusOK)
	return hs
}

func TestSearchQualifiers(t *testing.T) {
	hs := rankHarness(t)
	tagged := []string{"@acme/tool", "beta-thing", "old-thing", "pre-thing"}
	tests := []struct {
		text string
		want []string
	}{
		{"keywords:acme-kw", tagged},
		{"keywords:ACME-KW", tagged},                                                 // case folded
		{"keywords:acme", nil},                                                       // a keyword matches whole
		{"keywords:beta,cli", []string{"@acme/tool", "beta-thing"}},                  // , is or
		{"keywords:acme-kw+cli", []string{"@acme/tool"}},                             // + is and
		{"keywords:acme-kw,-beta", []string{"@acme/tool", "old-thing", "pre-thing"}}, // ,- is not
		{"keywords:acme-kw keywords:beta", []string{"beta-thing"}},                   // qualifiers are anded
		{"author:doug", []string{"express-session"}},                                 // object form, by name
		{"author:tj@example.com", []string{"express"}},                               // string form, by email
		{`author:"tj holowaychuk"`, []string{"express"}},                             // a quoted value
		{"author:tj", nil},                                                           // names match whole
		{"maintainer:bob", []string{"@acme/tool"}},
		{"maintainer:bob@example.com", []string{"@acme/tool"}},
		{"maintainer:carol", nil},
		{"scope:acme", []string{"@acme/express-utils", "@acme/tool"}},
		{"scope:@acme", []string{"@acme/express-utils", "@acme/tool"}},
		{"scope:other", nil},
		{"is:deprecated", []string{"old-thing"}},
		{"not:deprecated keywords:acme-kw", []string{"@acme/tool", "beta-thing", "pre-thing"}},
		{"is:unstable", []string{"beta-thing", "pre-thing"}}, // below 1.0.0, or a prerelease
		{"not:unstable keywords:acme-kw", []string{"@acme/tool", "old-thing"}},
		{"not:deprecated,unstable keywords:acme-kw", []string{"@acme/tool"}},
		{"is:insecure", nil},                      // no advisories here: nothing is insecure
		{"not:insecure keywords:acme-kw", tagged}, // so nothing is left out
		{"is:popular", nil},                       // a property unireg does not know no package has
		{"not:popular keywords:acme-kw", tagged},
		{"express scope:acme", []string{"@acme/express-utils"}},
		{"express keywords:session", []string{"express-session"}},
		{"web framework", []string{"express"}},
		{`"web framework"`, []string{"express"}}, // a quoted phrase is one term
		{`"framework web"`, nil},
		{"express serve", []string{"serve"}},
		{"foo:bar", nil}, // an unknown prefix is a term
		{"keywords:acme-kw tool", []string{"@acme/tool"}},
	}
	for _, tt := range tests {
		t.Run(tt.text, func(t *testing.T) {
			res := hs.search("admin", url.Values{"text": {tt.text}})
			if !reflect.DeepEqual(res.names, tt.want) {
				t.Fatalf("search %q = %v, want %v", tt.text, res.names, tt.want)
			}
			if int(res.total) != len(tt.want) {
				t.Fatalf("total = %v, want %d", res.total, len(tt.want))
			}
		})
	}
}

func TestSearchRanksExactNameThenPrefixThenContainsThenKeywordThenDescription(t *testing.T) {
	hs := rankHarness(t)
	res := hs.search("admin", url.Values{"text": {"express"}})
	want := []string{
		"express",                                // exact name
		"@acme/express-utils", "express-session", // name prefix (of the name after the scope too), by name
		"body-express", // name contains
		"router",       // keyword
		"serve",        // description
	}
	if !reflect.DeepEqual(res.names, want) || res.total != float64(len(want)) {
		t.Fatalf("search express = %v (total %v), want %v", res.names, res.total, want)
	}
	last := 2.0
	for i, o := range res.objects {
		score := o["score"].(map[string]any)
		final := score["final"].(float64)
		if final <= 0 || final > 1 || final >= last {
			t.Fatalf("%s (place %d): final %v after %v, want strictly decreasing within (0,1]", res.names[i], i, final, last)
		}
		last = final
		for k, v := range score["detail"].(map[string]any) {
			if f, ok := v.(float64); !ok || f < 0 || f > 1 {
				t.Fatalf("%s: detail.%s = %v, want a number in [0,1]", res.names[i], k, v)
			}
		}
	}
	if res.objects[0]["score"].(map[string]any)["final"] != 1.0 || res.objects[0]["searchScore"] != 1.0 {
		t.Fatalf("express: score %v, searchScore %v; want 1 and 1", res.objects[0]["score"], res.objects[0]["searchScore"])
	}
	for i := 1; i < len(res.objects); i++ {
		if a, b := res.objects[i-1]["searchScore"].(float64), res.objects[i]["searchScore"].(float64); b > a {
			t.Fatalf("searchScore rises from %v (%s) to %v (%s)", a, res.names[i-1], b, res.names[i])
		}
	}

	// boost-exact:false ranks the exact name among the prefixes.
	res = hs.search("admin", url.Values{"text": {"express boost-exact:false"}})
	if want := []string{"@acme/express-utils", "express", "express-session", "body-express", "router", "serve"}; !reflect.DeepEqual(res.names, want) {
		t.Fatalf("boost-exact:false = %v, want %v", res.names, want)
	}
}

func TestSearchDetailSaysDeprecatedAndStarred(t *testing.T) {
	hs := rankHarness(t)
	doc := hs.writeDoc("pre-thing")
	star := map[string]any{"_id": "pre-thing", "_rev": doc["_rev"], "users": map[string]any{"admin": true}}
	expectStatus(t, hs.putDoc("admin", "pre-thing", star), http.StatusOK)
	res := hs.search("admin", url.Values{"text": {"keywords:acme-kw"}})
	detail := func(name string) map[string]any {
		return res.objects[indexOf(res.names, name)]["score"].(map[string]any)["detail"].(map[string]any)
	}
	if d := detail("old-thing"); d["maintenance"] != 0.0 {
		t.Fatalf("deprecated old-thing: detail %v, want maintenance 0", d)
	}
	if d := detail("@acme/tool"); d["maintenance"] != 1.0 || d["popularity"] != 0.0 {
		t.Fatalf("@acme/tool: detail %v, want maintenance 1, popularity 0", d)
	}
	if d := detail("pre-thing"); d["popularity"] != 1.0 {
		t.Fatalf("starred pre-thing: detail %v, want popularity 1", d)
	}
}

func TestSearchPagesAfterRanking(t *testing.T) {
	hs := rankHarness(t)
	full := hs.search("admin", url.Values{"text": {"express"}})
	var paged []string
	var finals []any
	for from := 0; from < 6; from += 2 {
		res := hs.search("admin", url.Values{"text": {"express"}, "size": {"2"}, "from": {strconv.Itoa(from)}})
		if res.total != 6 || len(res.names) != 2 {
			t.Fatalf("from %d: %v, total %v; want 2 of 6", from, res.names, res.total)
		}
		if from == 0 && !reflect.DeepEqual(res.names, []string{"express", "@acme/express-utils"}) {
			t.Fatalf("first page = %v, want the two best ranked", res.names)
		}
		paged = append(paged, res.names...)
		for _, o := range res.objects {
			finals = append(finals, o["score"].(map[string]any)["final"])
		}
	}
	if !reflect.DeepEqual(paged, full.names) {
		t.Fatalf("pages = %v, want the ranking %v cut in pages", paged, full.names)
	}
	for i, o := range full.objects {
		if f := o["score"].(map[string]any)["final"]; f != finals[i] {
			t.Fatalf("%s: final %v on its page, %v in the whole ranking", full.names[i], finals[i], f)
		}
	}
}

func TestSearchQualifiersOnlyShowReadablePackages(t *testing.T) {
	hs := rankHarness(t)
	tests := []struct {
		text string
		want []string
	}{
		{"express", []string{"express", "express-session"}},
		{"keywords:express", []string{"express-session"}}, // router is tagged too, but not readable
		{"maintainer:alice", []string{"express", "express-session"}},
		{"scope:acme", nil},
		{"is:deprecated", nil},
	}
	for _, tt := range tests {
		t.Run(tt.text, func(t *testing.T) {
			res := hs.search("express", url.Values{"text": {tt.text}})
			if !reflect.DeepEqual(res.names, tt.want) || int(res.total) != len(tt.want) {
				t.Fatalf("search %q as express = %v (total %v), want %v", tt.text, res.names, res.total, tt.want)
			}
		})
	}
}

func TestSearchRefusesOverlongText(t *testing.T) {
	hs := newHarness(t, defaultUsers())
	expectError(t, hs.get("admin", "/-/v1/search?text="+strings.Repeat("a", maxSearchText+1)), http.StatusBadRequest, "longer than")
}

func TestParseSearchQuery(t *testing.T) {
	tests := []struct {
		text string
		want searchQuery
	}{
		{"", searchQuery{boostExact: true}},
		{"  A   b ", searchQuery{terms: []string{"a", "b"}, boostExact: true}},
		{`"a b" c`, searchQuery{terms: []string{"a b", "c"}, boostExact: true}},
		{`"a:b"`, searchQuery{terms: []string{"a:b"}, boostExact: true}},
		{`author:"Jane Doe" x`, searchQuery{terms: []string{"x"}, authors: []string{"jane doe"}, boostExact: true}},
		{"keywords:a,b+c,-d+e", searchQuery{keywords: []keywordFilter{{anyOf: [][]string{{"a"}, {"b", "c"}}, noneOf: []string{"d", "e"}}}, boostExact: true}},
		{"scope:@acme/ is:deprecated,unstable not:insecure", searchQuery{scopes: []string{"acme"}, is: []string{"deprecated", "unstable"}, not: []string{"insecure"}, boostExact: true}},
		{"boost-exact:false", searchQuery{}},
		{"keywords: x", searchQuery{terms: []string{"x"}, boostExact: true}}, // no value, no filter
		{`"unterminated phrase`, searchQuery{terms: []string{"unterminated phrase"}, boostExact: true}},
	}
	for _, tt := range tests {
		if got := parseSearchQuery(tt.text); !reflect.DeepEqual(got, tt.want) {
			t.Errorf("parseSearchQuery(%q) = %+v, want %+v", tt.text, got, tt.want)
		}
	}
}
