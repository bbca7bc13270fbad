package npm

import (
	"cmp"
	"context"
	"errors"
	"net/http"
	"slices"
	"strconv"
	"strings"
	"unicode/utf8"

	"github.com/unireg/unireg/registry/auth"
	"github.com/unireg/unireg/registry/storage"
)

// packageNames lists every package in storage.
func (h *Handler) packageNames(ctx context.Context) ([]string, error) {
	top, err := h.store.List(ctx, packagesKey)
	if errors.Is(err, storage.ErrNotFound) {
		return nil, nil
	}
	if err != nil {
		return nil, err
	}
	var names []string
	for _, n := range top {
		if !strings.HasPrefix(n, "@") {
			names = append(names, n)
			continue
		}
		scoped, err := h.store.List(ctx, packagesKey+"/"+n)
		if err != nil && !errors.Is(err, storage.ErrNotFound) {
			return nil, err
		}
		for _, s := range scoped {
			names = append(names, n+"/"+s)
		}
	}
	return names, nil
}

// maxSearchText bounds the text of a search: every term is matched against
// every package, so the text's length multiplies the cost of a search.
const maxSearchText = 1024

// search answers /-/v1/search among the packages the caller may read: the
// terms and qualifiers of the text (see searchQuery) select the packages,
// every match is ranked (see rank), and only then is the page (from, size)
// cut. It reads no document but the search index's (searchindex.go), and
// a caller who could see nothing gets the empty answer without even that.
func (h *Handler) search(q *request) error {
	if h.opts.DisableSearch {
		return newError(http.StatusNotFound, "search is disabled on this registry")
	}
	if err := q.Identify(); err != nil {
		return err
	}
	query := q.R.URL.Query()
	text := query.Get("text")
	if len(text) > maxSearchText {
		return newError(http.StatusBadRequest, "search text is longer than %d characters", maxSearchText)
	}
	sq := parseSearchQuery(text)
	size := boundedInt(query.Get("size"), 20, 1, 250)
	from := boundedInt(query.Get("from"), 0, 0, 1<<20)
	var entries []*searchEntry
	if q.MaySeeSome(auth.ActionRead) {
		var err error
		if entries, err = h.searchIndex.docs(q.R.Context()); err != nil {
			return err
		}
	}
	var matches []searchMatch
	for _, e := range entries {
		if !sq.inScopes(e.name) || !q.Allowed(e.name, auth.ActionRead) {
			continue
		}
		if m, ok := sq.match(e.doc); ok {
			matches = append(matches, m)
		}
	}
	rank(matches)
	total := len(matches)
	page := matches[min(from, total):]
	page = page[:min(size, len(page))]
	hits := make([]map[string]any, 0, len(page))
	maxStars := 0
	for _, m := range matches {
		maxStars = max(maxStars, m.doc.stars)
	}
	for i, m := range page {
		hits = append(hits, m.hit(from+i, total, maxStars))
	}
	writeJSON(q.W, q.R, http.StatusOK, map[string]any{"objects": hits, "total": total, "time": now()})
	return nil
}

func boundedInt(s string, def, lo, hi int) int {
	n, err := strconv.Atoi(s)
	if err != nil {
		return def
	}
	return min(max(n, lo), hi)
}

// searchQuery is the text of a search as the public registry reads it:
// terms, every one of which must match a package's name, description or
// keywords, and qualifiers, each of which filters:
//
//	keywords:a,b+c,-d   a keyword a, or both b and c, and never d
//	author:NAME         the latest version's author, by name or email
//	maintainer:NAME     a maintainer, by name or email
//	scope:NAME          packages of @NAME
//	is:X, not:X         X among deprecated, unstable, insecure (comma lists)
//	boost-exact:false   an exact name ranks as a name prefix
//
// Matching ignores case; a value or a term may be quoted ("two words").
// A word with any other prefix before a colon is a term.
type searchQuery struct {
	terms       []string
	keywords    []keywordFilter
	authors     []string
	maintainers []string
	scopes      []string
	is, not     []string
	boostExact  bool
}

// keywordFilter is one keywords: qualifier: a package matches when it has
// every keyword of one of anyOf (or anyOf is empty) and none of noneOf.
type keywordFilter struct {
	anyOf  [][]string
	noneOf []string
}

func parseSearchQuery(text string) searchQuery {
	sq := searchQuery{boostExact: true}
	for _, w := range searchWords(strings.ToLower(text)) {
		key, value, found := strings.Cut(w.text, ":")
		if w.quoted || !found {
			sq.terms = append(sq.terms, w.text)
			continue
		}
		if value == "" && key != "" {
			continue // a qualifier without a value filters nothing
		}
		switch key {
		case "keywords":
			sq.keywords = append(sq.keywords, parseKeywordFilter(value))
		case "author":
			sq.authors = append(sq.authors, value)
		case "maintainer":
			sq.maintainers = append(sq.maintainers, value)
		case "scope":
			sq.scopes = append(sq.scopes, strings.TrimSuffix(strings.TrimPrefix(value, "@"), "/"))
		case "is":
			sq.is = append(sq.is, splitList(value, ",")...)
		case "not":
			sq.not = append(sq.not, splitList(value, ",")...)
		case "boost-exact":
			sq.boostExact = value != "false" && value != "0" && value != "no"
		default:
			sq.terms = append(sq.terms, w.text)
		}
	}
	return sq
}

// searchWord is a word of the text, without its quotes; quoted when it
// started with one (so "a:b" is a term, not a qualifier).
type searchWord struct {
	text   string
	quoted bool
}

// searchWords splits text at spaces outside double quotes.
func searchWords(text string) []searchWord {
	var words []searchWord
	var cur strings.Builder
	inQuote, started, quoted := false, false, false
	flush := func() {
		if started && cur.Len() > 0 {
			words = append(words, searchWord{text: cur.String(), quoted: quoted})
		}
		cur.Reset()
		started, quoted = false, false
	}
	for _, r := range text {
		switch {
		case r == '"':
			if !started {
				quoted = true
			}
			started = true
			inQuote = !inQuote
		case !inQuote && (r == ' ' || r == '\t' || r == '\n' || r == '\r'):
			flush()
		default:
			started = true
			cur.WriteRune(r)
		}
	}
	flush()
	return words
}

// parseKeywordFilter reads keywords:'s list: `,` separates alternatives,
// `+` joins keywords that must all be there, and a leading `-` excludes.
func parseKeywordFilter(value string) keywordFilter {
	var f keywordFilter
	for _, part := range splitList(value, ",") {
		if neg, ok := strings.CutPrefix(part, "-"); ok {
			f.noneOf = append(f.noneOf, splitList(neg, "+")...)
			continue
		}
		if group := splitList(part, "+"); len(group) > 0 {
			f.anyOf = append(f.anyOf, group)
		}
	}
	return f
}

func splitList(s, sep string) []string {
	var out []string
	for _, p := range strings.Split(s, sep) {
		if p = strings.TrimSpace(p); p != "" {
			out = append(out, p)
		}
	}
	return out
}

// inScopes reports whether a package name passes the scope: qualifiers,
// which needs no read of its document.
func (sq searchQuery) inScopes(name string) bool {
	for _, s := range sq.scopes {
		if !strings.HasPrefix(strings.ToLower(name), "@"+s+"/") {
			return false
		}
	}
	return true
}

// The bounds of what the search index keeps of a package, so that one
// takes under 20 KiB however large its document (a typical one,
// well under 1 KiB): its description's first maxIndexedText bytes, its
// first maxIndexedKeywords keywords and maxIndexedPeople maintainers, each
// keyword, name and email cut at maxIndexedWord bytes. Search matches and
// answers with what is kept. Names and versions are bounded when written.
const (
	maxIndexedText     = 1024
	maxIndexedKeywords = 20
	maxIndexedPeople   = 16
	maxIndexedWord     = 100
)

// searchDoc is what search looks at in a package: the latest version's
// fields, lowercased for matching, and what a hit answers with.
type searchDoc struct {
	name, bare, description string
	keywords                []string
	authors, maintainers    []string // names and emails
	deprecated, unstable    bool
	stars                   int
	hit                     searchHit
}

// searchHit is the part of a hit that depends on the package alone.
type searchHit struct {
	name, version, description string
	keywords                   []any
	date                       any
	maintainers                []map[string]string
	quality                    float64
}

// newSearchDoc makes the search document of p, which it only reads (p may
// be a document other requests hold).
func newSearchDoc(p packument) *searchDoc {
	d := &searchDoc{name: strings.ToLower(p.name())}
	d.bare = d.name
	if _, bare, ok := strings.Cut(d.name, "/"); ok && strings.HasPrefix(d.name, "@") {
		d.bare = bare
	}
	latestVersion := str(obj(p["dist-tags"])["latest"])
	latest := obj(obj(p["versions"])[latestVersion])
	d.hit = searchHit{
		name: p.name(), version: latestVersion, description: clip(searchDescription(p, latest), maxIndexedText),
		keywords: []any{}, date: scalar(obj(p["time"])["modified"]), maintainers: []map[string]string{},
		quality: quality(p, latest),
	}
	d.description = strings.ToLower(d.hit.description)
	for _, k := range searchKeywords(p, latest) {
		if len(d.hit.keywords) == maxIndexedKeywords {
			break
		}
		if k = scalar(k); k == nil {
			continue
		}
		if s, ok := k.(string); ok {
			k = clip(s, maxIndexedWord)
		}
		d.hit.keywords = append(d.hit.keywords, k)
		d.keywords = append(d.keywords, strings.ToLower(str(k)))
	}
	author := p["author"]
	if a, ok := latest["author"]; ok {
		author = a
	}
	name, email := personOf(author)
	d.authors = nonEmpty(strings.ToLower(clip(name, maxIndexedWord)), strings.ToLower(clip(email, maxIndexedWord)))
	for _, m := range asSlice(p["maintainers"]) {
		if len(d.hit.maintainers) == maxIndexedPeople {
			break
		}
		mm := obj(m)
		name, email := clip(str(mm["name"]), maxIndexedWord), clip(str(mm["email"]), maxIndexedWord)
		d.hit.maintainers = append(d.hit.maintainers, map[string]string{"username": name, "email": email})
		d.maintainers = append(d.maintainers, nonEmpty(strings.ToLower(name), strings.ToLower(email))...)
	}
	d.deprecated = str(latest["deprecated"]) != ""
	d.unstable = unstableVersion(latestVersion)
	for _, starred := range obj(p["users"]) {
		if starred == true {
			d.stars++
		}
	}
	return d
}

// clip cuts s to at most n bytes, at a character boundary.
func clip(s string, n int) string {
	if len(s) <= n {
		return s
	}
	for n > 0 && !utf8.RuneStart(s[n]) {
		n--
	}
	return s[:n]
}

// scalar is v when it is a JSON scalar (a keyword or a date written as a
// number, say), nil for an object or an array, which the index does not keep.
func scalar(v any) any {
	switch v.(type) {
	case map[string]any, []any:
		return nil
	}
	return v
}

func searchDescription(p packument, latest map[string]any) string {
	if d := str(p["description"]); d != "" {
		return d
	}
	return str(latest["description"])
}

func searchKeywords(p packument, latest map[string]any) []any {
	if k, ok := latest["keywords"].([]any); ok {
		return k
	}
	k, _ := p["keywords"].([]any)
	return k
}

// personOf reads a package.json person: {name, email, url} or the string
// form "Name <email> (url)".
func personOf(v any) (name, email string) {
	if m, ok := v.(map[string]any); ok {
		return strings.TrimSpace(str(m["name"])), strings.TrimSpace(str(m["email"]))
	}
	s := str(v)
	if i := strings.IndexByte(s, '<'); i >= 0 {
		if j := strings.IndexByte(s[i:], '>'); j > 0 {
			email = strings.TrimSpace(s[i+1 : i+j])
		}
		s = s[:i]
	}
	if i := strings.IndexByte(s, '('); i >= 0 {
		s = s[:i]
	}
	return strings.TrimSpace(s), email
}

func nonEmpty(ss ...string) []string {
	var out []string
	for _, s := range ss {
		if s != "" {
			out = append(out, s)
		}
	}
	return out
}

// unstableVersion is the public registry's "unstable": below 1.0.0, or a
// prerelease.
func unstableVersion(v string) bool {
	v, _, _ = strings.Cut(v, "+")
	core, _, pre := strings.Cut(v, "-")
	major, _, _ := strings.Cut(core, ".")
	return pre || major == "0" || major == ""
}

// has reports whether the package has a property named by is: and not:.
// unireg knows no advisories, so no package is insecure; a property it does
// not know no package has (is:other matches nothing, not:other everything).
func (d *searchDoc) has(property string) bool {
	switch property {
	case "deprecated":
		return d.deprecated
	case "unstable":
		return d.unstable
	}
	return false
}

// The tiers of a term's match, best first: what ranks a package.
const (
	matchNone = iota
	matchDescription
	matchKeyword
	matchNameContains
	matchNamePrefix
	matchExactName
)

// searchMatch is a package that matched, with the sum of its terms' tiers.
type searchMatch struct {
	doc       *searchDoc
	relevance int
	terms     int
}

// match applies the query to a package.
func (sq *searchQuery) match(d *searchDoc) (searchMatch, bool) {
	m := searchMatch{doc: d, terms: len(sq.terms)}
	for _, f := range sq.keywords {
		if !f.matches(d.keywords) {
			return m, false
		}
	}
	if !anyEqual(sq.authors, d.authors) || !anyEqual(sq.maintainers, d.maintainers) {
		return m, false
	}
	for _, p := range sq.is {
		if !d.has(p) {
			return m, false
		}
	}
	for _, p := range sq.not {
		if d.has(p) {
			return m, false
		}
	}
	for _, t := range sq.terms {
		tier := sq.termTier(d, t)
		if tier == matchNone {
			return m, false
		}
		m.relevance += tier
	}
	return m, true
}

// anyEqual reports whether every wanted value is one of have.
func anyEqual(want, have []string) bool {
	for _, w := range want {
		found := false
		for _, h := range have {
			found = found || h == w
		}
		if !found {
			return false
		}
	}
	return true
}

func (f keywordFilter) matches(keywords []string) bool {
	has := func(k string) bool {
		for _, x := range keywords {
			if x == k {
				return true
			}
		}
		return false
	}
	for _, k := range f.noneOf {
		if has(k) {
			return false
		}
	}
	if len(f.anyOf) == 0 {
		return true
	}
	for _, group := range f.anyOf {
		all := true
		for _, k := range group {
			all = all && has(k)
		}
		if all {
			return true
		}
	}
	return false
}

// termTier is the best way a term matches a package.
func (sq *searchQuery) termTier(d *searchDoc, t string) int {
	switch {
	case d.name == t && sq.boostExact:
		return matchExactName
	case strings.HasPrefix(d.name, t) || strings.HasPrefix(d.bare, t):
		return matchNamePrefix
	case strings.Contains(d.name, t):
		return matchNameContains
	}
	for _, k := range d.keywords {
		if strings.Contains(k, t) {
			return matchKeyword
		}
	}
	if strings.Contains(d.description, t) {
		return matchDescription
	}
	return matchNone
}

// rank orders the matches best first: by the sum of their terms' tiers
// (an exact name beats a prefix, which beats a name containing the term,
// then a keyword, then the description), then by name.
func rank(matches []searchMatch) {
	slices.SortFunc(matches, func(a, b searchMatch) int {
		if c := cmp.Compare(b.relevance, a.relevance); c != 0 {
			return c
		}
		return strings.Compare(a.doc.hit.name, b.doc.hit.name)
	})
}

// hit is the search result for the match at place i of total. score.final
// falls with the place, from 1 for the first to 1/total for the last, so a
// client that orders by it keeps the ranking; searchScore is how well the
// terms matched (1: every term is the exact name, or no terms). The detail
// is what unireg knows: quality, the share of description, keywords, readme,
// license and repository the package has; popularity, its stars against the
// most starred match; maintenance, 0 when the latest version is deprecated.
func (m searchMatch) hit(i, total, maxStars int) map[string]any {
	h := m.doc.hit
	publisher := map[string]string{"username": "", "email": ""}
	if len(h.maintainers) > 0 {
		publisher = h.maintainers[0]
	}
	searchScore := 1.0
	if m.terms > 0 {
		searchScore = float64(m.relevance) / float64(m.terms*matchExactName)
	}
	popularity := 0.0
	if maxStars > 0 {
		popularity = float64(m.doc.stars) / float64(maxStars)
	}
	maintenance := 1.0
	if m.doc.deprecated {
		maintenance = 0
	}
	return map[string]any{
		"package": map[string]any{
			"name": h.name, "version": h.version, "description": h.description,
			"keywords": h.keywords, "date": h.date, "links": map[string]any{},
			"publisher": publisher, "maintainers": h.maintainers,
		},
		"score": map[string]any{"final": float64(total-i) / float64(total), "detail": map[string]any{
			"quality": h.quality, "popularity": popularity, "maintenance": maintenance,
		}},
		"searchScore": searchScore,
	}
}

// quality is the share of the fields a user looks for that a package has.
func quality(p packument, latest map[string]any) float64 {
	fields := []string{"description", "keywords", "readme", "license", "repository"}
	n := 0
	for _, f := range fields {
		v, ok := latest[f]
		if !ok {
			v = p[f]
		}
		switch v := v.(type) {
		case nil:
		case string:
			n += min(len(v), 1)
		case []any:
			n += min(len(v), 1)
		default:
			n++
		}
	}
	return float64(n) / float64(len(fields))
}

func asSlice(v any) []any {
	s, _ := v.([]any)
	return s
}
