package main

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"io/fs"
	"os"
	"os/signal"
	"path/filepath"
	"strings"
	"syscall"
	"time"

	"sigs.k8s.io/controller-runtime/pkg/log"
	"sigs.k8s.io/controller-runtime/pkg/log/zap"

	"github.com/unireg/unireg/controllers/nodemirror"
)

// runSubcommand runs the node mirror's subcommands (args[0] names one) and
// reports false for anything else, which is the manager's own command line.
func runSubcommand(args []string, stdout, stderr io.Writer) (code int, ok bool) {
	if len(args) == 0 {
		return 0, false
	}
	switch args[0] {
	case "node-mirror":
		return nodeMirrorMain(args[1:], stderr), true
	case "node-mirror-probe":
		return runNodeMirrorProbe(args[1:], stdout, stderr), true
	}
	return 0, false
}

// nodeMirrorSettings are the command line of `manager node-mirror`, the
// agent a Registry's node-mirror DaemonSet runs on every node
// (controllers/nodemirror has the contract).
type nodeMirrorSettings struct {
	config, writeDir, readyFile string
	interval                    time.Duration
	cleanup                     bool
	zap                         zap.Options
}

func parseNodeMirrorFlags(args []string, stderr io.Writer) (*nodeMirrorSettings, error) {
	s := &nodeMirrorSettings{}
	fs := flag.NewFlagSet("node-mirror", flag.ContinueOnError)
	fs.SetOutput(stderr)
	fs.StringVar(&s.config, "config", "/etc/unireg/node-mirror/"+nodemirror.ConfigFile, "the agent's config (JSON, from the operator's ConfigMap), read again before every apply")
	fs.StringVar(&s.writeDir, "write-dir", "/host/certs.d", "where the node's containerd hosts directory is mounted")
	fs.StringVar(&s.readyFile, "ready-file", "/run/unireg/ready", `holds "ok" after an apply without error or conflict; the reason otherwise is in <ready-file>.why`)
	fs.DurationVar(&s.interval, "interval", 30*time.Second, "time between applies, which repair drift on the node")
	fs.BoolVar(&s.cleanup, "cleanup", false, "remove the config owner's files instead of writing them, then report ready")
	s.zap.BindFlags(fs)
	if err := fs.Parse(args); err != nil {
		return nil, err
	}
	if fs.NArg() > 0 {
		return nil, fmt.Errorf("unexpected arguments: %q", fs.Args())
	}
	switch {
	case s.config == "" || s.writeDir == "" || s.readyFile == "":
		return nil, errors.New("--config, --write-dir and --ready-file must not be empty")
	case s.interval <= 0:
		return nil, errors.New("--interval must be positive")
	}
	return s, nil
}

func nodeMirrorMain(args []string, stderr io.Writer) int {
	s, err := parseNodeMirrorFlags(args, stderr)
	if errors.Is(err, flag.ErrHelp) {
		return 0
	}
	if err != nil {
		fmt.Fprintln(stderr, err)
		return 2
	}
	// SIGTERM ends the loop and nothing else: a rolling update must not
	// unconfigure the node (cleanup is a mode the operator rolls to).
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGTERM, os.Interrupt)
	defer stop()
	ctx = log.IntoContext(ctx, zap.New(zap.UseFlagOptions(&s.zap)).WithName("node-mirror"))
	runNodeMirror(ctx, s)
	return 0
}

// runNodeMirror applies at once and then every interval until ctx ends.
// Failures are not fatal: they are the readiness probe's message, and the
// next apply tries again (a ConfigMap that appears late, a node that
// comes back).
func runNodeMirror(ctx context.Context, s *nodeMirrorSettings) {
	logger := log.FromContext(ctx)
	logger.Info("starting", "version", version, "writeDir", s.writeDir, "cleanup", s.cleanup, "interval", s.interval)
	ticker := time.NewTicker(s.interval)
	defer ticker.Stop()
	last := "starting"
	for {
		last = applyOnce(ctx, s, last)
		select {
		case <-ctx.Done():
			logger.Info("stopping; the node's files stay as they are")
			return
		case <-ticker.C:
		}
	}
}

// applyOnce applies the config once, logs each change and records
// readiness; it returns the reason the node is not ready ("" when it is),
// and logs that reason only when it differs from the last one.
func applyOnce(ctx context.Context, s *nodeMirrorSettings, last string) string {
	logger := log.FromContext(ctx)
	res, hostsDir, err := applyConfig(s)
	for _, p := range res.Written {
		logger.Info("wrote", "path", p)
	}
	for _, p := range res.Removed {
		logger.Info("removed", "path", p)
	}
	why := notReadyReason(res, hostsDir, err)
	if why != last {
		if why == "" {
			logger.Info("ready")
		} else {
			logger.Info("not ready", "reason", why)
		}
	}
	if err := recordReadiness(s.readyFile, why); err != nil {
		logger.Error(err, "record readiness")
	}
	return why
}

func applyConfig(s *nodeMirrorSettings) (nodemirror.Result, string, error) {
	b, err := os.ReadFile(s.config)
	if err != nil {
		return nodemirror.Result{}, "", fmt.Errorf("read config: %w", err)
	}
	var cfg nodemirror.Config
	if err := json.Unmarshal(b, &cfg); err != nil {
		return nodemirror.Result{}, "", fmt.Errorf("read config %s: %w", s.config, err)
	}
	if s.cleanup {
		res, err := nodemirror.Cleanup(s.writeDir, cfg.Owner)
		return res, cfg.HostsDir, err
	}
	res, err := nodemirror.Apply(s.writeDir, cfg)
	return res, cfg.HostsDir, err
}

func notReadyReason(res nodemirror.Result, hostsDir string, err error) string {
	var why []string
	if err != nil {
		why = append(why, err.Error())
	}
	if len(res.Conflicts) > 0 {
		where := "the node's hosts directory"
		if hostsDir != "" {
			where = hostsDir
		}
		why = append(why, fmt.Sprintf("files in %s that this Registry did not write are in the way, left untouched: %s",
			where, strings.Join(res.Conflicts, "; ")))
	}
	return strings.Join(why, "; ")
}

// recordReadiness writes "ok" to readyFile when why is empty; otherwise it
// writes why to readyFile.why and removes readyFile. Each file is written
// before the other is removed, so a probe in between finds one of them
// (both read as ready: the state it is leaving), never neither.
func recordReadiness(readyFile, why string) error {
	if err := os.MkdirAll(filepath.Dir(readyFile), 0o755); err != nil {
		return err
	}
	whyFile := readyFile + ".why"
	if why == "" {
		if err := writeFileAtomic(readyFile, []byte("ok\n")); err != nil {
			return err
		}
		return removeIfThere(whyFile)
	}
	if err := writeFileAtomic(whyFile, []byte(why+"\n")); err != nil {
		return err
	}
	return removeIfThere(readyFile)
}

func writeFileAtomic(name string, data []byte) error {
	tmp := name + ".tmp"
	if err := os.WriteFile(tmp, data, 0o644); err != nil {
		return err
	}
	return os.Rename(tmp, name)
}

func removeIfThere(name string) error {
	if err := os.Remove(name); err != nil && !errors.Is(err, fs.ErrNotExist) {
		return err
	}
	return nil
}

// runNodeMirrorProbe is the DaemonSet's readiness probe: 0 when the ready
// file says ok, else 1 with the reason on stdout, which kubelet puts into
// the pod's events.
func runNodeMirrorProbe(args []string, stdout, stderr io.Writer) int {
	fs := flag.NewFlagSet("node-mirror-probe", flag.ContinueOnError)
	fs.SetOutput(stderr)
	readyFile := fs.String("ready-file", "/run/unireg/ready", "the node-mirror agent's ready file")
	if err := fs.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return 0
		}
		return 2
	}
	if b, err := os.ReadFile(*readyFile); err == nil && string(bytes.TrimSpace(b)) == "ok" {
		return 0
	}
	why, err := os.ReadFile(*readyFile + ".why")
	if err != nil {
		why = []byte("node mirror: no apply has finished yet")
	}
	fmt.Fprintln(stdout, strings.TrimSpace(string(why)))
	return 1
}
