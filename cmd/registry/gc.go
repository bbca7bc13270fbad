package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"os/signal"
	"sort"
	"strconv"
	"strings"
	"syscall"

	"github.com/unireg/unireg/registry/config"
	"github.com/unireg/unireg/registry/gc"
)

// runGC is `registry gc [--dry-run] [--json] [server flags]`: one garbage
// collection on the storage the same flags and config file give the
// server, without serving. It takes the storage lease as a server's
// collector does, so it is safe beside running replicas.
func runGC(args []string, out io.Writer) error {
	dryRun, asJSON, rest, err := gcFlags(args)
	if err != nil {
		return err
	}
	opts, err := config.Load(rest, os.Getenv, os.Stderr)
	if err != nil {
		return err
	}
	// No background work: this process collects once and exits.
	opts.Registry.GC.Interval = 0
	opts.Registry.OCI.UploadPurgeInterval = -1
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGTERM, os.Interrupt)
	defer stop()
	reg, _, closeAll, err := openRegistry(ctx, opts)
	if err != nil {
		return err
	}
	defer closeAll()
	rep, err := reg.Collect(ctx, dryRun)
	if errors.Is(err, gc.ErrLeaseHeld) {
		return errors.New("gc: another replica is collecting on this storage now; try again later")
	}
	// A run that failed part way reports what it deleted before failing.
	if err == nil || len(rep.Deleted) > 0 {
		if perr := printReport(out, rep, asJSON); perr != nil && err == nil {
			err = perr
		}
	}
	if err != nil {
		return fmt.Errorf("gc: %w", err)
	}
	return nil
}

// gcFlags takes the command's own flags (--dry-run, --json, also as
// --flag=BOOL) out of args; the rest are the server's. They are not read
// from the environment or the config file: they say what this run does,
// not how the registry is set up.
func gcFlags(args []string) (dryRun, asJSON bool, rest []string, err error) {
	for _, a := range args {
		name, value, hasValue := strings.Cut(strings.TrimLeft(a, "-"), "=")
		var dst *bool
		switch {
		case !strings.HasPrefix(a, "-"):
		case name == "dry-run":
			dst = &dryRun
		case name == "json":
			dst = &asJSON
		case name == "h" || name == "help":
			fmt.Fprint(os.Stderr, "Usage: registry gc [--dry-run] [--json] [flags]\n\n"+
				"Runs one garbage collection on the storage the flags and config file name (the\n"+
				"server's own), prints what it deleted, or with --dry-run would delete; --json prints\n"+
				"the whole report. The server's flags follow.\n\n")
		}
		if dst == nil {
			rest = append(rest, a)
			continue
		}
		*dst = true
		if hasValue {
			if *dst, err = strconv.ParseBool(value); err != nil {
				return false, false, nil, fmt.Errorf("gc: %s: want true or false", a)
			}
		}
	}
	return dryRun, asJSON, rest, nil
}

func printReport(out io.Writer, rep gc.Report, asJSON bool) error {
	if asJSON {
		enc := json.NewEncoder(out)
		enc.SetIndent("", "  ")
		return enc.Encode(rep)
	}
	printSummary(out, rep)
	return nil
}

// printSummary prints the counts and bytes by kind, the total, and every
// tag deleted (a tag is what a user misses; blobs are only bytes).
func printSummary(out io.Writer, rep gc.Report) {
	verb := "deleted"
	if rep.DryRun {
		verb = "would delete"
	}
	for _, d := range rep.Deleted {
		if d.Kind == "tag" {
			fmt.Fprintf(out, "%s tag %s:%s (%s)\n", verb, d.Repository, d.Tag, d.Reason)
		}
	}
	kinds := make([]string, 0, len(rep.ByKind))
	for k := range rep.ByKind {
		kinds = append(kinds, k)
	}
	sort.Strings(kinds)
	for _, k := range kinds {
		c := rep.ByKind[k]
		fmt.Fprintf(out, "%-16s %8d objects %14d bytes\n", k, c.Objects, c.Bytes)
	}
	fmt.Fprintf(out, "%s %d objects, %d bytes, in %s\n", verb, rep.Total.Objects, rep.Total.Bytes, rep.Duration.Round(1e6))
	if rep.DryRun {
		fmt.Fprintln(out, "dry run: nothing deleted")
	}
}
