// Command loadgen measures a registry's hot paths through the public
// protocols only (OCI Distribution and the npm registry API), so it can be
// pointed at unireg or at a peer. In the spirit of Zot's zb.
//
//	loadgen --url http://127.0.0.1:5000 --user admin --password-file data/admin-token \
//	        --scenarios blob-push-256MiB,manifest-get-tag --concurrency 32 --duration 10s --pid 1234
//
// It answers Bearer challenges through the realm with the Basic credentials
// (npm requests carry the password as their bearer token, like npm's
// _authToken). Per scenario it reports throughput, p50/p90/p99 latency,
// errors and, given --pid, the server's peak resident memory above what it
// used before the scenario; as a Markdown table on stdout, and as JSON with
// --json. `loadgen bare` is the baseline: a bare Go server that hashes a body
// into a file and renames it, and serves files; `--bare` points the
// scenarios that make sense there at it. `make bench` runs the standard set.
package main

import (
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"io"
	"log"
	"os"
	"regexp"
	"runtime/pprof"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"
)

type (
	// opFunc is one operation of a scenario: the bytes it moved, the time
	// it took (client-side preparation excluded), and its error.
	opFunc func(ctx context.Context, worker int) (int64, time.Duration, error)
	// setupFunc prepares a scenario (pushes what it reads) and returns its
	// operation.
	setupFunc func(ctx context.Context, e *env) (opFunc, error)
)

// env is what scenarios share.
type env struct {
	c           *client
	npmURL      string
	concurrency int
	requests    int // --requests, 0 when the run is timed

	// The pull-through scenarios (cache.go): the registry the cache at
	// --url fills from, and the cache's name for it.
	upstream       *client
	cacheNamespace string

	pkgOnce sync.Once
	pkgName string
	pkgErr  error

	// The growth scenarios (growth.go): their populations, shared across
	// the run, and this scenario's report of its own.
	growth              growth
	populateConcurrency int
	populateTimeout     time.Duration
	populateStart       time.Time
	populateDeadline    time.Time
	walkTimeout         time.Duration
	pop                 populated
}

type scenario struct {
	name  string
	bytes bool // throughput in MB/s rather than req/s
	setup setupFunc
	bare  setupFunc // against `loadgen bare`; nil when it has no equivalent

	// concurrency and requests, when set, fix the scenario's load whatever
	// the flags say (the rollout storm, publishes at V versions).
	concurrency int
	requests    int
}

const (
	kib = 1 << 10
	mib = 1 << 20
)

var allScenarios = func() []scenario {
	var s []scenario
	for _, size := range []int64{1 * mib, 64 * mib, 256 * mib} {
		s = append(s, scenario{name: "blob-push-" + sizeName(size), bytes: true, setup: blobPush(size, false), bare: barePush(size)})
	}
	for _, size := range []int64{1 * mib, 64 * mib, 256 * mib} {
		s = append(s, scenario{name: "blob-push-chunked-" + sizeName(size), bytes: true, setup: blobPush(size, true)})
	}
	for _, size := range []int64{1 * mib, 64 * mib, 256 * mib} {
		s = append(s, scenario{name: "blob-pull-" + sizeName(size), bytes: true, setup: blobPull(size), bare: barePull(size)})
	}
	return append(s,
		scenario{name: "manifest-get-tag", setup: manifestGet(false), bare: bareManifest},
		scenario{name: "manifest-get-digest", setup: manifestGet(true), bare: bareManifest},
		scenario{name: "tag-list", setup: tagList},
		scenario{name: "packument-full", setup: packumentGet(false), bare: barePackument},
		scenario{name: "packument-abbreviated", setup: packumentGet(true)},
		scenario{name: "tarball-get", setup: tarballGet},
		scenario{name: "npm-publish", setup: npmPublish},
	)
}()

func sizeName(n int64) string { return fmt.Sprintf("%dMiB", n/mib) }

func main() {
	if len(os.Args) > 1 {
		switch os.Args[1] {
		case "bare":
			bareMain(os.Args[2:])
			return
		case "targets":
			targetsMain(os.Args[2:])
			return
		}
	}
	var (
		baseURL      = flag.String("url", "http://127.0.0.1:5000", "the registry's base URL (OCI at /v2/)")
		npmPrefix    = flag.String("npm-prefix", "/npm", "path of the npm registry under --url")
		user         = flag.String("user", "load", "user name for Basic credentials at the token realm")
		password     = flag.String("password", "", "password or token (also UNIREG_LOAD_PASSWORD)")
		passwordFile = flag.String("password-file", "", "file holding the password or token")
		names        = flag.String("scenarios", "all", "comma-separated scenarios, or all (see -list)")
		concurrency  = flag.Int("concurrency", 1, "concurrent workers (connections)")
		duration     = flag.Duration("duration", 10*time.Second, "how long each scenario runs")
		requests     = flag.Int("requests", 0, "run each scenario for this many operations instead of --duration")
		pid          = flag.Int("pid", 0, "the server's PID, to report its peak resident memory")
		jsonOut      = flag.String("json", "", "append results as JSON lines to this file")
		label        = flag.String("label", "", "a label for the results (e.g. the server under test)")
		bare         = flag.Bool("bare", false, "the target is `loadgen bare`: run the scenarios it has")
		list         = flag.Bool("list", false, "list the scenarios and exit")
		cpuProfile   = flag.String("cpuprofile", "", "write the load generator's own CPU profile here")

		upstreamURL          = flag.String("upstream-url", "", "cache-pull-* scenarios: the upstream registry the cache at --url fills from (loadgen pushes into it)")
		upstreamUser         = flag.String("upstream-user", "admin", "cache-pull-* scenarios: user name at the upstream's token realm")
		upstreamPasswordFile = flag.String("upstream-password-file", "", "cache-pull-* scenarios: file holding the upstream's password or token")
		cacheNamespace       = flag.String("cache-namespace", "", "cache-pull-* scenarios: the NAME of the upstream in the cache (--oci-upstream NAME=URL)")

		populateConcurrency = flag.Int("populate-concurrency", 16, "growth scenarios: concurrent workers populating the registry")
		populateTimeout     = flag.Duration("populate-timeout", 10*time.Minute, "growth scenarios: the most time a scenario spends populating; a capped population is reported with the count reached")
		walkTimeout         = flag.Duration("walk-timeout", 10*time.Minute, "catalog-walk-*, tags-walk-*: a walk that takes longer fails")
	)
	flag.Parse()
	if *cpuProfile != "" {
		f, err := os.Create(*cpuProfile)
		if err != nil {
			log.Fatal(err)
		}
		pprof.StartCPUProfile(f)
		defer pprof.StopCPUProfile()
	}
	if *list {
		for _, s := range allScenarios {
			fmt.Println(s.name)
		}
		fmt.Println("blob-push-<N>MiB, blob-push-chunked-<N>MiB, blob-pull-<N>MiB: any size")
		fmt.Println("cache-pull-cold-<N>MiB, cache-pull-warm-<N>MiB: any size, through a pull-through cache (--upstream-url, --cache-namespace)")
		for _, g := range growthNames {
			fmt.Println(g)
		}
		return
	}
	if *passwordFile != "" {
		b, err := os.ReadFile(*passwordFile)
		if err != nil {
			log.Fatal(err)
		}
		*password = strings.TrimSpace(string(b))
	} else if *password == "" {
		*password = os.Getenv("UNIREG_LOAD_PASSWORD")
	}
	selected, err := selectScenarios(*names, *bare)
	if err != nil {
		log.Fatal(err)
	}
	c, err := newClient(*baseURL, *user, *password, *concurrency)
	if err != nil {
		log.Fatal(err)
	}
	e := &env{c: c, npmURL: c.url(*npmPrefix), concurrency: *concurrency, requests: *requests, cacheNamespace: *cacheNamespace,
		populateConcurrency: *populateConcurrency, populateTimeout: *populateTimeout, walkTimeout: *walkTimeout}
	if *upstreamURL != "" {
		upstreamPassword := ""
		if *upstreamPasswordFile != "" {
			b, err := os.ReadFile(*upstreamPasswordFile)
			if err != nil {
				log.Fatal(err)
			}
			upstreamPassword = strings.TrimSpace(string(b))
		}
		if e.upstream, err = newClient(*upstreamURL, *upstreamUser, upstreamPassword, *concurrency); err != nil {
			log.Fatal(err)
		}
	}
	ctx := context.Background()
	var results []result
	for _, s := range selected {
		setup := s.setup
		if *bare {
			setup = s.bare
		}
		conc, reqs := *concurrency, *requests
		if s.concurrency > 0 {
			conc = s.concurrency
		}
		if s.requests > 0 {
			reqs = s.requests
		}
		e.concurrency, e.requests = conc, reqs
		log.Printf("%s: concurrency %d", s.name, conc)
		r := runScenario(ctx, e, s, setup, conc, *duration, reqs, *pid)
		r.Label = *label
		results = append(results, r)
		if r.FirstError != "" {
			log.Printf("%s: %d errors, first: %s", s.name, r.Errors, r.FirstError)
		}
	}
	writeMarkdown(os.Stdout, results)
	if *jsonOut != "" {
		f, err := os.OpenFile(*jsonOut, os.O_CREATE|os.O_APPEND|os.O_WRONLY, 0o644)
		if err != nil {
			log.Fatal(err)
		}
		enc := json.NewEncoder(f)
		for _, r := range results {
			enc.Encode(r)
		}
		f.Close()
	}
	pprof.StopCPUProfile()
	for _, r := range results {
		if r.Errors > 0 || r.Requests == 0 {
			os.Exit(1)
		}
	}
}

// blobScenario matches blob scenarios of any size: blob-push-1024MiB.
var blobScenario = regexp.MustCompile(`^blob-(push|push-chunked|pull)-([0-9]+)MiB$`)

func selectScenarios(names string, bare bool) ([]scenario, error) {
	var out []scenario
	for _, name := range strings.Split(names, ",") {
		i := slices.IndexFunc(allScenarios, func(s scenario) bool { return s.name == name })
		switch {
		case name == "all":
			out = append(out, allScenarios...)
		case i >= 0:
			out = append(out, allScenarios[i])
		case blobScenario.MatchString(name):
			m := blobScenario.FindStringSubmatch(name)
			size, _ := strconv.ParseInt(m[2], 10, 64)
			size *= mib
			s := scenario{name: name, bytes: true}
			switch m[1] {
			case "push":
				s.setup, s.bare = blobPush(size, false), barePush(size)
			case "push-chunked":
				s.setup = blobPush(size, true)
			case "pull":
				s.setup, s.bare = blobPull(size), barePull(size)
			}
			out = append(out, s)
		case cacheScenario.MatchString(name):
			s, _ := parseCacheScenario(name)
			out = append(out, s)
		case growthScenario.MatchString(name) || versionsScenario.MatchString(name) || name == "rollout-storm":
			s, ok := parseGrowthScenario(name)
			if !ok {
				return nil, fmt.Errorf("scenario %q: want a count above 0", name)
			}
			out = append(out, s...)
		default:
			return nil, fmt.Errorf("no scenario %q (see -list)", name)
		}
	}
	if bare {
		out = slices.DeleteFunc(out, func(s scenario) bool { return s.bare == nil })
	}
	if len(out) == 0 {
		return nil, fmt.Errorf("no scenario matches %q (see -list)", names)
	}
	return out, nil
}

// result is one scenario's measurement.
type result struct {
	Label       string  `json:"label,omitempty"`
	Scenario    string  `json:"scenario"`
	Concurrency int     `json:"concurrency"`
	Requests    int     `json:"requests"`
	Errors      int     `json:"errors"`
	FirstError  string  `json:"first_error,omitempty"`
	Seconds     float64 `json:"seconds"`
	Throughput  float64 `json:"throughput"`
	Unit        string  `json:"unit"`
	P50ms       float64 `json:"p50_ms"`
	P90ms       float64 `json:"p90_ms"`
	P99ms       float64 `json:"p99_ms"`
	IdleRSSMiB  float64 `json:"idle_rss_mib,omitempty"`
	PeakRSSMiB  float64 `json:"peak_rss_mib,omitempty"`

	// The growth scenarios' population: the items it reached (repositories,
	// tags, packages, versions of a package), those it wanted (more when
	// --populate-timeout capped it), and the seconds it took.
	Populated       int     `json:"populated,omitempty"`
	PopulateWant    int     `json:"populate_want,omitempty"`
	PopulateSeconds float64 `json:"populate_seconds,omitempty"`
}

// runScenario sets up a scenario and runs its operation from concurrency
// workers for the duration (or the number of requests). Throughput is
// counted over the operations' own time (the sum of their latencies divided
// by the number of workers that ran), which leaves out client-side
// preparation such as hashing a monolithic blob before its upload.
func runScenario(ctx context.Context, e *env, s scenario, setup setupFunc, concurrency int, duration time.Duration, requests, pid int) result {
	r := result{Scenario: s.name, Concurrency: concurrency, Unit: "req/s"}
	if s.bytes {
		r.Unit = "MB/s"
	}
	e.pop = populated{}
	e.populateStart = time.Now()
	e.populateDeadline = e.populateStart.Add(e.populateTimeout)
	op, err := setup(ctx, e)
	r.Populated, r.PopulateWant, r.PopulateSeconds = e.pop.Items, e.pop.Want, e.pop.Seconds
	if r.PopulateWant > 0 {
		log.Printf("%s: populated %d of %d in %.1f s", s.name, r.Populated, r.PopulateWant, r.PopulateSeconds)
	}
	if err != nil {
		r.Errors, r.FirstError = 1, "setup: "+err.Error()
		return r
	}
	mem := startRSSSampler(pid)
	var (
		mu        sync.Mutex
		latencies []time.Duration
		moved     int64
		busy      time.Duration
		active    int // workers that completed an operation
	)
	deadline := time.Now().Add(duration)
	var issued atomic.Int64
	next := func() bool {
		if requests > 0 {
			return issued.Add(1) <= int64(requests)
		}
		return time.Now().Before(deadline)
	}
	var wg sync.WaitGroup
	for w := 0; w < concurrency; w++ {
		wg.Add(1)
		go func(worker int) {
			defer wg.Done()
			var local []time.Duration
			var localBytes int64
			var localBusy time.Duration
			for next() {
				n, took, err := op(ctx, worker)
				if err != nil {
					mu.Lock()
					if r.Errors == 0 {
						r.FirstError = err.Error()
					}
					r.Errors++
					mu.Unlock()
					continue
				}
				local = append(local, took)
				localBytes += n
				localBusy += took
			}
			mu.Lock()
			if len(local) > 0 {
				active++
			}
			latencies = append(latencies, local...)
			moved += localBytes
			busy += localBusy
			mu.Unlock()
		}(w)
	}
	wg.Wait()
	r.IdleRSSMiB, r.PeakRSSMiB = mem.stop()
	r.Requests = len(latencies)
	if r.Requests == 0 {
		return r
	}
	slices.Sort(latencies)
	pct := func(p float64) float64 {
		i := int(p * float64(len(latencies)-1))
		return float64(latencies[i].Microseconds()) / 1000
	}
	r.P50ms, r.P90ms, r.P99ms = pct(0.50), pct(0.90), pct(0.99)
	r.Seconds = busy.Seconds() / float64(active)
	if s.bytes {
		r.Throughput = float64(moved) / 1e6 / r.Seconds
	} else {
		r.Throughput = float64(r.Requests) / r.Seconds
	}
	return r
}

func writeMarkdown(w io.Writer, results []result) {
	fmt.Fprintln(w, "| target | scenario | conc | requests | errors | throughput | p50 | p90 | p99 | server RSS above idle (peak) |")
	fmt.Fprintln(w, "|---|---|---|---|---|---|---|---|---|---|")
	for _, r := range results {
		mem := "-"
		if r.PeakRSSMiB > 0 {
			mem = fmt.Sprintf("%.1f MiB (%.1f MiB)", r.PeakRSSMiB-r.IdleRSSMiB, r.PeakRSSMiB)
		}
		name := r.Scenario
		if r.Populated < r.PopulateWant {
			name += fmt.Sprintf(" (populating capped at %d)", r.Populated)
		}
		fmt.Fprintf(w, "| %s | %s | %d | %d | %d | %s %s | %.2f ms | %.2f ms | %.2f ms | %s |\n",
			r.Label, name, r.Concurrency, r.Requests, r.Errors, commas(r.Throughput), r.Unit, r.P50ms, r.P90ms, r.P99ms, mem)
	}
}

// commas formats a throughput: 12,345 or 123.4.
func commas(v float64) string {
	if v < 100 {
		return fmt.Sprintf("%.1f", v)
	}
	s := fmt.Sprintf("%.0f", v)
	for i := len(s) - 3; i > 0; i -= 3 {
		s = s[:i] + "," + s[i:]
	}
	return s
}
