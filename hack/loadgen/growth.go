package main

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log"
	"net/http"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"
)

// The growth scenarios (issue 21) measure how a cost grows with the size of
// the registry. Each populates the registry through the public API first
// (so they run against any registry), from --populate-concurrency workers
// and for at most --populate-timeout; a capped population is reported with
// the count it reached, and the scenario runs on what is there.
//
//	catalog-first-page-<N>    GET /v2/_catalog?n=100 with N repositories
//	catalog-walk-<N>          the whole catalog, 100 a page, following Link
//	                          headers to the end: one operation is the walk,
//	                          one walk at a time, each failing after
//	                          --walk-timeout
//	tags-list-first-page-<N>  GET /v2/<repo>/tags/list?n=100 with N tags
//	tags-walk-<N>             the whole tag list, 100 a page
//	npm-search-<N>            GET /npm/-/v1/search?text=<word>&size=20 among
//	                          N packages, the word in 1 of every 100
//	npm-publish-at-<V>        publish one more version of a package with V
//	                          (30 publishes, whatever --duration says)
//	packument-full-at-<V>     GET the packument of a package with V versions
//	packument-abbrev-at-<V>   the same, abbreviated (npm install's Accept)
//
// N is a count with an optional k (10k is 10,000). The N repositories of
// the catalog are growth/catalog/rNNNNNNN: one image whose config and layer
// are pushed into the first and mounted into the others (pushed where the
// registry does not mount), and a manifest each. The catalog also lists
// whatever else the registry holds (the other scenarios' few repositories);
// larger N in the same run extend the smaller ones' population. Each N of
// tags has its repository, growth/tags-<N>: one manifest tagged N times.
//
// rollout-storm is one new image (a manifest and three 2 MiB layers) pulled
// by many nodes at once: rollout-storm-manifest-get, 1,000 concurrent GETs
// of its manifest by tag (each its own connection), then
// rollout-storm-blob-pull, 200 concurrent pulls of its layers; both at that
// fixed concurrency, whatever --concurrency says. The token is fetched
// once, before the storm. With --upstream-url and --cache-namespace the
// storm runs against a pull-through cache that already holds the image
// (pushed into the upstream, pulled once through the cache).

var (
	growthScenario   = regexp.MustCompile(`^(catalog-first-page|catalog-walk|tags-list-first-page|tags-walk|npm-search)-([0-9]+k?)$`)
	versionsScenario = regexp.MustCompile(`^(npm-publish|packument-full|packument-abbrev)-at-([0-9]+)$`)
)

// growthNames are the growth scenarios -list shows.
var growthNames = []string{
	"catalog-first-page-<N>, catalog-walk-<N>: N repositories (100, 10k, 100k)",
	"tags-list-first-page-<N>, tags-walk-<N>: N tags in one repository",
	"npm-search-<N>: search among N packages",
	"npm-publish-at-<V>, packument-full-at-<V>, packument-abbrev-at-<V>: a package with V versions (1, 100, 1000, 3000)",
	"rollout-storm: rollout-storm-manifest-get (1,000 concurrent) and rollout-storm-blob-pull (200 concurrent) of one new image",
}

// parseGrowthScenario returns the scenarios a growth name stands for.
func parseGrowthScenario(name string) ([]scenario, bool) {
	if name == "rollout-storm" {
		return []scenario{
			{name: "rollout-storm-manifest-get", setup: stormManifestGet, concurrency: 1000, requests: 1000},
			{name: "rollout-storm-blob-pull", bytes: true, setup: stormBlobPull, concurrency: 200, requests: 200},
		}, true
	}
	if m := growthScenario.FindStringSubmatch(name); m != nil {
		n := parseCount(m[2])
		s := scenario{name: name}
		switch m[1] {
		case "catalog-first-page":
			s.setup = catalogFirstPage(n)
		case "catalog-walk":
			s.setup, s.concurrency = catalogWalk(n), 1
		case "tags-list-first-page":
			s.setup = tagsFirstPage(m[2], n)
		case "tags-walk":
			s.setup, s.concurrency = tagsWalk(m[2], n), 1
		case "npm-search":
			s.setup = npmSearch(n)
		}
		return []scenario{s}, n > 0
	}
	if m := versionsScenario.FindStringSubmatch(name); m != nil {
		v, _ := strconv.Atoi(m[2])
		s := scenario{name: name}
		switch m[1] {
		case "npm-publish":
			s.setup, s.requests = npmPublishAt(v), publishesAt
		case "packument-full":
			s.setup = packumentAt(v, false)
		case "packument-abbrev":
			s.setup = packumentAt(v, true)
		}
		return []scenario{s}, v > 0
	}
	return nil, false
}

// parseCount reads 100, 10k or 100k.
func parseCount(s string) int {
	mult := 1
	if t, ok := strings.CutSuffix(s, "k"); ok {
		s, mult = t, 1000
	}
	n, _ := strconv.Atoi(s)
	return n * mult
}

// growth is what the growth scenarios of one run share, so that a larger N
// extends a smaller one's population instead of starting again.
type growth struct {
	mu           sync.Mutex
	catalogImage *image
	catalogDone  int               // growth/catalog/r0..r(catalogDone-1) exist
	tagsImage    map[string]*image // the manifest tagged, by repository
	tagsDone     map[string]int    // tags pushed, by repository
	pools        map[int]*versionPool
	searchDone   int
	storm        *stormImage
}

// populated is what a scenario's setup reports of its population.
type populated struct {
	Items   int
	Want    int
	Seconds float64
}

// populate runs fn for items from to n-1 from --populate-concurrency
// workers, until all are done or --populate-timeout has passed since the
// scenario's population began, and records how far it got. It returns the
// number of items below which every item is done.
func (e *env) populate(ctx context.Context, what string, from, n int, fn func(ctx context.Context, i int) error) (int, error) {
	if from >= n {
		e.notePopulated(n, n)
		return n, nil
	}
	ctx, cancel := context.WithDeadline(ctx, e.populateDeadline)
	defer cancel()
	done := make([]bool, n)
	var (
		next     atomic.Int64
		finished atomic.Int64
		errOnce  sync.Once
		firstErr error
		wg       sync.WaitGroup
	)
	next.Store(int64(from))
	stop := make(chan struct{})
	go func() { // progress, for the long ones
		t := time.NewTicker(10 * time.Second)
		defer t.Stop()
		for {
			select {
			case <-stop:
				return
			case <-t.C:
				log.Printf("populating %s: %d of %d", what, from+int(finished.Load()), n)
			}
		}
	}()
	for range max(1, e.populateConcurrency) {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for ctx.Err() == nil {
				i := int(next.Add(1) - 1)
				if i >= n {
					return
				}
				if err := fn(ctx, i); err != nil {
					if ctx.Err() == nil {
						errOnce.Do(func() { firstErr = fmt.Errorf("populating %s, item %d: %w", what, i, err); cancel() })
					}
					return
				}
				done[i] = true
				finished.Add(1)
			}
		}()
	}
	wg.Wait()
	close(stop)
	if firstErr != nil {
		return 0, firstErr
	}
	reached := from
	for reached < n && done[reached] {
		reached++
	}
	e.notePopulated(reached, n)
	if reached < n {
		log.Printf("populating %s: capped by --populate-timeout at %d of %d", what, reached, n)
	}
	return reached, nil
}

func (e *env) notePopulated(items, want int) {
	e.pop.Items, e.pop.Want = items, want
	e.pop.Seconds = time.Since(e.populateStart).Seconds()
}

func catalogRepo(i int) string { return fmt.Sprintf("growth/catalog/r%07d", i) }

// catalogRepos makes sure the first n catalog repositories exist and
// returns how many do.
func (e *env) catalogRepos(ctx context.Context, n int) (int, error) {
	g := &e.growth
	g.mu.Lock()
	defer g.mu.Unlock()
	if g.catalogImage == nil {
		img := newImage()
		if err := e.pushBlobs(ctx, catalogRepo(0), img); err != nil {
			return 0, err
		}
		g.catalogImage = img
	}
	img := g.catalogImage
	reached, err := e.populate(ctx, "repositories", g.catalogDone, n, func(ctx context.Context, i int) error {
		repo := catalogRepo(i)
		if i > 0 {
			if err := e.mountBlob(ctx, repo, catalogRepo(0), img.layerDigest, nil, img.layerID); err != nil {
				return err
			}
			if err := e.mountBlob(ctx, repo, catalogRepo(0), img.configDigest, img.config, 0); err != nil {
				return err
			}
		}
		return e.putManifest(ctx, repo, "v1", img.manifest)
	})
	if err != nil {
		return 0, err
	}
	g.catalogDone = max(g.catalogDone, reached)
	return reached, nil
}

// mountBlob mounts digest from the repository from into repo (POST
// ?mount=&from=); a registry that answers with an upload instead gets the
// blob pushed into it: data when it is given, else the 4 KiB blob id.
func (e *env) mountBlob(ctx context.Context, repo, from, digest string, data []byte, id uint64) error {
	scope := ociScope(repo, true) + " " + ociScope(from, false)
	req, _ := http.NewRequestWithContext(ctx, http.MethodPost, e.c.url("/v2/"+repo+"/blobs/uploads/?mount="+digest+"&from="+from), nil)
	resp, err := e.c.do(req, scope, nil)
	if err != nil {
		return err
	}
	if err := expect(resp, http.StatusCreated, http.StatusAccepted); err != nil {
		return err
	}
	drain(resp)
	if resp.StatusCode == http.StatusCreated {
		return nil
	}
	// An upload was started instead: finish it with the bytes.
	loc, err := e.location(resp)
	if err != nil {
		return err
	}
	q := loc.Query()
	q.Set("digest", digest)
	loc.RawQuery = q.Encode()
	var body io.Reader = newBlob(id, 4096)
	size := int64(4096)
	if data != nil {
		body, size = bytes.NewReader(data), int64(len(data))
	}
	req, _ = http.NewRequestWithContext(ctx, http.MethodPut, loc.String(), body)
	req.ContentLength = size
	req.Header.Set("Content-Type", "application/octet-stream")
	if resp, err = e.c.do(req, scope, nil); err != nil {
		return err
	}
	if err := expect(resp, http.StatusCreated); err != nil {
		return err
	}
	drain(resp)
	return nil
}

const catalogScope = "registry:catalog:*"

// catalogFirstPage GETs the first 100 repositories of the catalog.
func catalogFirstPage(n int) setupFunc {
	return func(ctx context.Context, e *env) (opFunc, error) {
		reached, err := e.catalogRepos(ctx, n)
		if err != nil {
			return nil, err
		}
		return e.getOpScope(catalogScope, "/v2/_catalog?n=100", "application/json", func(body []byte, _ string) error {
			return checkPage(body, "repositories", min(100, reached), false)
		})
	}
}

// catalogWalk walks the whole catalog, 100 repositories a page.
func catalogWalk(n int) setupFunc {
	return func(ctx context.Context, e *env) (opFunc, error) {
		reached, err := e.catalogRepos(ctx, n)
		if err != nil {
			return nil, err
		}
		return e.walkOp(catalogScope, "/v2/_catalog?n=100", "repositories", reached, false), nil
	}
}

func tagsRepo(size string) string { return "growth/tags-" + size }

// tagsRepo makes sure the repository for size holds n tags of one
// manifest and returns how many it holds.
func (e *env) tagsRepo(ctx context.Context, size string, n int) (int, error) {
	g := &e.growth
	g.mu.Lock()
	defer g.mu.Unlock()
	repo := tagsRepo(size)
	if g.tagsDone == nil {
		g.tagsDone, g.tagsImage = map[string]int{}, map[string]*image{}
	}
	img := g.tagsImage[repo]
	if img == nil {
		img = newImage()
		if err := e.pushBlobs(ctx, repo, img); err != nil {
			return 0, err
		}
		g.tagsImage[repo] = img
	}
	reached, err := e.populate(ctx, "tags", g.tagsDone[repo], n, func(ctx context.Context, i int) error {
		return e.putManifest(ctx, repo, fmt.Sprintf("t%07d", i), img.manifest)
	})
	if err != nil {
		return 0, err
	}
	g.tagsDone[repo] = max(g.tagsDone[repo], reached)
	return reached, nil
}

// tagsFirstPage GETs the first 100 tags of a repository with n.
func tagsFirstPage(size string, n int) setupFunc {
	return func(ctx context.Context, e *env) (opFunc, error) {
		reached, err := e.tagsRepo(ctx, size, n)
		if err != nil {
			return nil, err
		}
		repo := tagsRepo(size)
		return e.getOpScope(ociScope(repo, false), "/v2/"+repo+"/tags/list?n=100", "application/json", func(body []byte, _ string) error {
			return checkPage(body, "tags", min(100, reached), true)
		})
	}
}

// tagsWalk walks the whole tag list of a repository with n, 100 a page.
func tagsWalk(size string, n int) setupFunc {
	return func(ctx context.Context, e *env) (opFunc, error) {
		reached, err := e.tagsRepo(ctx, size, n)
		if err != nil {
			return nil, err
		}
		repo := tagsRepo(size)
		return e.walkOp(ociScope(repo, false), "/v2/"+repo+"/tags/list?n=100", "tags", reached, true), nil
	}
}

// checkPage checks that a page's list (repositories or tags) has want
// entries, or at least want when the registry may hold more (the catalog).
func checkPage(body []byte, field string, want int, exact bool) error {
	var doc map[string]json.RawMessage
	if err := json.Unmarshal(body, &doc); err != nil {
		return fmt.Errorf("page: %v", err)
	}
	var list []string
	if err := json.Unmarshal(doc[field], &list); err != nil {
		return fmt.Errorf("page's %s: %v", field, err)
	}
	if len(list) < want || exact && len(list) != want {
		return fmt.Errorf("page has %d %s, want %d", len(list), field, want)
	}
	return nil
}

// walkOp GETs path and every page its Link headers lead to; an operation
// is the whole walk, and it checks that the walk saw want entries (at
// least want unless exact).
func (e *env) walkOp(scope, path, field string, want int, exact bool) opFunc {
	return func(ctx context.Context, _ int) (int64, time.Duration, error) {
		if e.walkTimeout > 0 {
			var cancel context.CancelFunc
			ctx, cancel = context.WithTimeout(ctx, e.walkTimeout)
			defer cancel()
		}
		start := time.Now()
		next := e.c.url(path)
		var moved int64
		seen := 0
		for next != "" {
			req, _ := http.NewRequestWithContext(ctx, http.MethodGet, next, nil)
			req.Header.Set("Accept", "application/json")
			resp, err := e.c.do(req, scope, nil)
			if errors.Is(ctx.Err(), context.DeadlineExceeded) {
				return 0, 0, fmt.Errorf("the walk passed --walk-timeout %s after %d %s", e.walkTimeout, seen, field)
			}
			if err != nil {
				return 0, 0, err
			}
			if err := expect(resp, http.StatusOK); err != nil {
				return 0, 0, err
			}
			var doc map[string]json.RawMessage
			cr := &countingReader{r: resp.Body}
			err = json.NewDecoder(cr).Decode(&doc)
			drain(resp)
			moved += cr.n
			if err != nil {
				return 0, 0, fmt.Errorf("GET %s: %v", next, err)
			}
			var list []string
			json.Unmarshal(doc[field], &list)
			seen += len(list)
			if next, err = nextLink(resp); err != nil {
				return 0, 0, err
			}
			if len(list) == 0 && next != "" {
				return 0, 0, fmt.Errorf("GET %s: an empty page with a next link", req.URL)
			}
		}
		took := time.Since(start)
		if seen < want || exact && seen != want {
			return 0, 0, fmt.Errorf("the walk saw %d %s, want %d", seen, field, want)
		}
		return moved, took, nil
	}
}

// nextLink is the absolute URL of a response's Link rel="next", or "".
func nextLink(resp *http.Response) (string, error) {
	for _, link := range resp.Header.Values("Link") {
		for _, part := range strings.Split(link, ",") {
			target, params, ok := strings.Cut(strings.TrimSpace(part), ";")
			if !ok || !strings.Contains(strings.ReplaceAll(params, " ", ""), `rel="next"`) {
				continue
			}
			u, err := resp.Request.URL.Parse(strings.Trim(strings.TrimSpace(target), "<>"))
			if err != nil {
				return "", fmt.Errorf("Link %q: %v", link, err)
			}
			return u.String(), nil
		}
	}
	return "", nil
}

type countingReader struct {
	r io.Reader
	n int64
}

func (c *countingReader) Read(p []byte) (int, error) {
	n, err := c.r.Read(p)
	c.n += int64(n)
	return n, err
}

// searchWords is how many distinct search words the npm-search packages
// spread over: package i has the keyword searchWord(i % searchWords).
const searchWords = 100

// searchWord never is a prefix or substring of another one.
func searchWord(i int) string { return fmt.Sprintf("kw%02dz", i%searchWords) }

func searchPackage(i int) string { return fmt.Sprintf("%s-search-%06d", packagePrefix, i) }

// npmSearch publishes n small packages (one version each), then searches
// for a word 1 in 100 of them have.
func npmSearch(n int) setupFunc {
	return func(ctx context.Context, e *env) (opFunc, error) {
		g := &e.growth
		g.mu.Lock()
		reached, err := e.populate(ctx, "packages", g.searchDone, n, func(ctx context.Context, i int) error {
			return e.publish(ctx, searchPackage(i), "1.0.0", searchWord(i))
		})
		if err == nil {
			g.searchDone = max(g.searchDone, reached)
		}
		g.mu.Unlock()
		if err != nil {
			return nil, err
		}
		const word = 7
		matches := reached / searchWords
		if reached%searchWords > word {
			matches++
		}
		header := map[string]string{"Accept": "application/json"}
		if e.c.password != "" {
			header["Authorization"] = "Bearer " + e.c.password
		}
		return rawGetOp(e.concurrency, e.npmURL+"/-/v1/search?text="+searchWord(word)+"&size=20", header, func(body []byte, _ string) error {
			var doc struct {
				Objects []json.RawMessage `json:"objects"`
			}
			if err := json.Unmarshal(body, &doc); err != nil {
				return fmt.Errorf("search: %v", err)
			}
			// At least: an earlier run's packages may match too.
			if want := min(20, matches); len(doc.Objects) < want {
				return fmt.Errorf("search found %d packages, want %d", len(doc.Objects), want)
			}
			return nil
		})
	}
}

// versionPool is a set of packages with v versions each (plus those the
// npm-publish-at scenario added). A publish adds a version to the package
// with the fewest, so with a pool of P packages and R publishes each
// package grows by R/P: the pool is as large as keeps that small without
// populating more than about 1,000 versions (one package from 1,000 on,
// which grows by 3% at most).
type versionPool struct {
	mu       sync.Mutex
	names    []string
	versions []int
}

// publishesAt is how many publishes npm-publish-at-<V> measures.
const publishesAt = 30

func poolSize(v int) int { return max(1, min(publishesAt, 1000/v)) }

func versionName(i int) string { return fmt.Sprintf("1.0.%d", i) }

// versionPool returns the pool of packages with v versions, publishing
// them first (each package's versions in order, the packages in parallel).
func (e *env) versionPool(ctx context.Context, v int) (*versionPool, error) {
	g := &e.growth
	g.mu.Lock()
	defer g.mu.Unlock()
	if p := g.pools[v]; p != nil {
		e.notePopulated(v, v)
		return p, nil
	}
	p := &versionPool{}
	for i := range poolSize(v) {
		p.names = append(p.names, fmt.Sprintf("%s-at-%d-%d", packagePrefix, v, i))
	}
	p.versions = make([]int, len(p.names))
	// Items are versions; item i is version i/P of package i%P, and a
	// package's versions go in order, so one worker per package.
	saved := e.populateConcurrency
	e.populateConcurrency = min(saved, len(p.names))
	var mu sync.Mutex
	_, err := e.populate(ctx, "versions", 0, v*len(p.names), func(ctx context.Context, i int) error {
		k := i % len(p.names)
		for {
			mu.Lock()
			turn := p.versions[k] == i/len(p.names)
			mu.Unlock()
			if turn {
				break
			}
			select { // the previous version of this package is still in flight
			case <-ctx.Done():
				return ctx.Err()
			case <-time.After(time.Millisecond):
			}
		}
		if err := e.publish(ctx, p.names[k], versionName(i/len(p.names))); err != nil {
			return err
		}
		mu.Lock()
		p.versions[k]++
		mu.Unlock()
		return nil
	})
	e.populateConcurrency = saved
	if err != nil && !errors.Is(err, context.DeadlineExceeded) {
		return nil, err
	}
	e.pop.Items, e.pop.Want = p.versions[0], v // reported per package
	if g.pools == nil {
		g.pools = map[int]*versionPool{}
	}
	g.pools[v] = p
	return p, nil
}

// npmPublishAt publishes one more version of a package that has v.
func npmPublishAt(v int) setupFunc {
	return func(ctx context.Context, e *env) (opFunc, error) {
		p, err := e.versionPool(ctx, v)
		if err != nil {
			return nil, err
		}
		return func(ctx context.Context, _ int) (int64, time.Duration, error) {
			p.mu.Lock()
			k := 0
			for i := range p.versions {
				if p.versions[i] < p.versions[k] {
					k = i
				}
			}
			version := versionName(p.versions[k])
			p.versions[k]++
			p.mu.Unlock()
			start := time.Now()
			err := e.publish(ctx, p.names[k], version)
			return 0, time.Since(start), err
		}, nil
	}
}

// packumentAt GETs the packument of a package with v versions, full or
// abbreviated, asking for gzip like npm does.
func packumentAt(v int, abbreviated bool) setupFunc {
	return func(ctx context.Context, e *env) (opFunc, error) {
		p, err := e.versionPool(ctx, v)
		if err != nil {
			return nil, err
		}
		header := e.packumentHeader(abbreviated)
		p.mu.Lock()
		want := p.versions[0]
		p.mu.Unlock()
		return rawGetOp(e.concurrency, e.npmURL+"/"+p.names[0], header, func(body []byte, encoding string) error {
			return checkPackument(strings.NewReader(string(body)), encoding, want)
		})
	}
}
