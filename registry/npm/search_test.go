package npm

import (
	"bytes"
	"compress/gzip"
	"net/http"
	"net/url"
	"reflect"
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
		{"pad", []string{"@acme/secret", "left-pad", "right-pad"}},           // sorted by name
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
	if res := hs.search("admin", url.Values{"text": {"pad"}}); !reflect.DeepEqual(res.names, []string{"@acme/secret", "right-pad"}) {
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
