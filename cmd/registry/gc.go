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
	"syscall"

	"github.com/unireg/unireg/registry/config"
	"github.com/unireg/unireg/registry/gc"
)

// runGC is `registry gc [--dry-run] [--json] [server flags]`: one garbage
// collection on the storage the same flags and config file give the
// server, without serving. It takes the storage lease as a server's
// collector does, so it is safe beside running replicas.
func runGC(args []string, out io.Writer) error {
	var dryRun, asJSON bool
	var rest []string
	for _, a := range args {
		switch a {
		case "--dry-run", "-dry-run":
			dryRun = true
		case "--json", "-json":
			asJSON = true
		default:
			rest = append(rest, a)
		}
	}
	opts, err := config.Load(rest, os.Getenv, os.Stderr)
	if err != nil {
		return err
	}
	log, err := opts.NewLogger(os.Stderr)
	if err != nil {
		return err
	}
	// No background work: this process collects once and exits.
	opts.Registry.GC.Interval = 0
	opts.Registry.OCI.UploadPurgeInterval = -1
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGTERM, os.Interrupt)
	defer stop()
	built, err := opts.Build(ctx, log)
	if err != nil {
		return err
	}
	defer built.Close()
	reg, err := built.NewRegistry(ctx)
	if err != nil {
		return err
	}
	defer reg.Close()
	rep, err := reg.Collect(ctx, dryRun)
	if errors.Is(err, gc.ErrLeaseHeld) {
		return errors.New("gc: another replica is collecting on this storage now; try again later")
	}
	if err != nil {
		return fmt.Errorf("gc: %w", err)
	}
	if asJSON {
		enc := json.NewEncoder(out)
		enc.SetIndent("", "  ")
		return enc.Encode(rep)
	}
	printReport(out, rep)
	return nil
}

func printReport(out io.Writer, rep gc.Report) {
	verb := "deleted"
	if rep.DryRun {
		verb = "would delete"
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
