// Command registry runs unireg: an OCI Distribution registry (and npm
// registry) over local or S3 storage. `registry --help` lists its settings;
// docs/config.md describes them.
package main

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"net/http/pprof"
	"os"
	"os/signal"
	"syscall"
	"time"

	"github.com/unireg/unireg/registry"
	"github.com/unireg/unireg/registry/config"
)

// version is set at link time (make images: -X main.version=...).
var version = "dev"

func main() {
	if err := run(os.Args[1:]); err != nil {
		if errors.Is(err, config.ErrHelp) {
			os.Exit(0)
		}
		fmt.Fprintln(os.Stderr, "registry:", err)
		os.Exit(1)
	}
}

func run(args []string) error {
	if len(args) > 0 && args[0] == "gc" {
		return runGC(args[1:], os.Stdout)
	}
	opts, err := config.Load(args, os.Getenv, os.Stderr)
	if err != nil {
		return err
	}
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGTERM, os.Interrupt)
	defer stop()
	reg, log, closeAll, err := openRegistry(ctx, opts)
	if err != nil {
		return err
	}
	defer closeAll()
	certs, err := newServingCert(opts.TLSCertFile, opts.TLSKeyFile, log)
	if err != nil {
		return err
	}

	ln, err := net.Listen("tcp", opts.Listen)
	if err != nil {
		return err
	}
	srv := &http.Server{
		Handler:           reg,
		ReadHeaderTimeout: opts.ReadHeaderTimeout,
		IdleTimeout:       2 * time.Minute,
		MaxHeaderBytes:    opts.MaxHeaderBytes,
		ErrorLog:          slog.NewLogLogger(log.Handler(), slog.LevelWarn),
	}
	if opts.PprofListen != "" {
		go servePprof(opts.PprofListen, log)
	}
	log.Info("listening", "address", ln.Addr().String(), "data_dir", opts.DataDir, "version", version, "tls", certs != nil)
	serveErr := make(chan error, 1)
	go func() { serveErr <- serve(srv, ln, certs) }()

	select {
	case err := <-serveErr:
		return err
	case <-ctx.Done():
	}
	log.Info("shutting down", "timeout", opts.ShutdownTimeout.String())
	shutdownCtx, cancel := context.WithTimeout(context.Background(), opts.ShutdownTimeout)
	defer cancel()
	if err := srv.Shutdown(shutdownCtx); err != nil {
		log.Warn("in-flight requests cut at shutdown timeout", "error", err)
		srv.Close()
	}
	log.Info("stopped")
	return nil
}

// openRegistry builds the registry opts describe, with its logger; close
// stops the registry and what Build started (watchers).
func openRegistry(ctx context.Context, opts *config.Options) (reg *registry.Registry, log *slog.Logger, close func(), err error) {
	if log, err = opts.NewLogger(os.Stderr); err != nil {
		return nil, nil, nil, err
	}
	built, err := opts.Build(ctx, log)
	if err != nil {
		return nil, nil, nil, err
	}
	if reg, err = built.NewRegistry(ctx); err != nil {
		built.Close()
		return nil, nil, nil, err
	}
	return reg, log, func() { reg.Close(); built.Close() }, nil
}

// servePprof serves the Go profiles on their own listener, apart from the
// registry's routes.
func servePprof(addr string, log *slog.Logger) {
	mux := http.NewServeMux()
	mux.HandleFunc("/debug/pprof/", pprof.Index)
	mux.HandleFunc("/debug/pprof/profile", pprof.Profile)
	mux.HandleFunc("/debug/pprof/symbol", pprof.Symbol)
	mux.HandleFunc("/debug/pprof/trace", pprof.Trace)
	log.Info("profiles on", "address", addr)
	if err := http.ListenAndServe(addr, mux); err != nil {
		log.Error("pprof listener", "error", err)
	}
}
