package main

import (
	"bufio"
	"encoding/json"
	"fmt"
	"log"
	"os"
	"slices"
)

// targetsMain reads results (JSON lines, as --json writes them) and prints
// the targets of docs/performance.md with what was measured.
func targetsMain(args []string) {
	if len(args) != 1 {
		log.Fatal("usage: loadgen targets RESULTS.json")
	}
	f, err := os.Open(args[0])
	if err != nil {
		log.Fatal(err)
	}
	defer f.Close()
	found := map[string]result{}
	var order []string // unireg's scenarios, in the order they ran
	sc := bufio.NewScanner(f)
	sc.Buffer(nil, 1<<20)
	for sc.Scan() {
		var r result
		if err := json.Unmarshal(sc.Bytes(), &r); err != nil {
			log.Fatal(err)
		}
		if _, seen := found[r.Label+" "+r.Scenario]; !seen && r.Label == "unireg" {
			order = append(order, r.Scenario)
		}
		found[r.Label+" "+r.Scenario] = r
	}
	get := func(label, scenario string) (result, bool) {
		r, ok := found[label+" "+scenario]
		return r, ok && r.Requests > 0 && r.Errors == 0
	}
	fmt.Println("| target | measured | met |")
	fmt.Println("|---|---|---|")
	// compare prints the target "what >= want of baseName": the result of
	// label's scenario against baseLabel's baseScenario.
	compare := func(what, label, scenario, baseName, baseLabel, baseScenario string, want float64) {
		u, ok1 := get(label, scenario)
		b, ok2 := get(baseLabel, baseScenario)
		if !ok1 || !ok2 {
			fmt.Printf("| %s >= %.0f%% of %s | not measured | - |\n", what, want*100, baseName)
			return
		}
		r := u.Throughput / b.Throughput
		fmt.Printf("| %s >= %.0f%% of %s | %s vs %s %s: %.0f%% | %s |\n", what, want*100, baseName, commas(u.Throughput), commas(b.Throughput), u.Unit, r*100, yes(r >= want))
	}
	ratio := func(what, scenario string, want float64) {
		compare(what, "unireg", scenario, "the bare server", "bare", scenario, want)
	}
	ratio("blob push 256 MiB", "blob-push-256MiB", 0.90)
	// Issue 21: push against a bare server doing the same durable work
	// (loadgen bare --fsync), and chunked against monolithic.
	compare("blob push 256 MiB", "unireg", "blob-push-256MiB", "the durable bare server", "bare-fsync", "blob-push-256MiB", 0.95)
	compare("blob push 256 MiB", "unireg", "blob-push-256MiB", "durable Zot (commit)", "zot-commit", "blob-push-256MiB", 1.00)
	compare("chunked push 256 MiB", "unireg", "blob-push-chunked-256MiB", "a monolithic push", "unireg", "blob-push-256MiB", 0.90)
	ratio("blob pull 256 MiB (client verifies sha256)", "blob-pull-256MiB", 0.95)
	if u, ok := get("unireg", "manifest-get-tag"); ok {
		fmt.Printf("| manifest GET by tag, bearer token, %d connections >= 15,000 req/s | %s req/s | %s |\n", u.Concurrency, commas(u.Throughput), yes(u.Throughput >= 15000))
	}
	ratio("full packument GET, 150 versions", "packument-full", 0.75)
	// The pull-through cache (issue 21): a cold pull (the cache downloads,
	// streams and stores) against pulling the upstream directly, and a warm
	// pull (served as stored) equal to a pull of a local blob.
	for _, size := range []string{"64MiB", "256MiB"} {
		compare("pull-through cold pull "+size, "unireg-cache", "cache-pull-cold-"+size, "pulling the upstream directly", "upstream-direct", "blob-pull-"+size, 0.90)
		compare("pull-through warm pull "+size, "unireg-cache", "cache-pull-warm-"+size, "a local pull", "unireg", "blob-pull-"+size, 0.95)
	}
	memory := func(what, scenario string, limit float64) {
		if u, ok := get("unireg", scenario); ok {
			above := u.PeakRSSMiB - u.IdleRSSMiB
			fmt.Printf("| %s: resident memory < %.0f MiB above idle | %.1f MiB | %s |\n", what, limit, above, yes(above < limit))
		}
	}
	memory("one 1 GiB push", "blob-push-1024MiB", 64)
	memory("100 concurrent uploads", "blob-push-chunked-16MiB", 256)
	peerRatios(order, get)
}

// peers are the registries make bench runs beside unireg, by label.
var peers = []string{"distribution", "zot", "zot-commit"}

// peerRatios prints, for every scenario unireg and a peer both ran, their
// throughputs and the ratio unireg/peer (above 1: unireg is faster; for a
// walk, one operation is the whole walk, so it is the inverse of the
// latencies' ratio). A peer that ran nothing gets no columns.
func peerRatios(order []string, get func(label, scenario string) (result, bool)) {
	var ran []string
	for _, p := range peers {
		if slices.ContainsFunc(order, func(s string) bool { _, ok := get(p, s); return ok }) {
			ran = append(ran, p)
		}
	}
	if len(ran) == 0 {
		return
	}
	fmt.Println()
	head, rule := "| scenario | unireg |", "|---|---|"
	for _, p := range ran {
		head += fmt.Sprintf(" %s | unireg/%s |", p, p)
		rule += "---|---|"
	}
	fmt.Println(head)
	fmt.Println(rule)
	for _, s := range order {
		u, ok := get("unireg", s)
		if !ok {
			continue
		}
		row, shared := fmt.Sprintf("| %s | %s %s |", s, commas(u.Throughput), u.Unit), false
		for _, p := range ran {
			b, ok := get(p, s)
			if !ok || b.Throughput == 0 {
				row += " - | - |"
				continue
			}
			shared = true
			row += fmt.Sprintf(" %s %s | %.2fx |", commas(b.Throughput), b.Unit, u.Throughput/b.Throughput)
		}
		if shared {
			fmt.Println(row)
		}
	}
}

func yes(ok bool) string {
	if ok {
		return "yes"
	}
	return "**no**"
}
