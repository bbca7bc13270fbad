package nodemirror

import (
	"bytes"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path"
	"strings"
	"syscall"
	"time"
)

// Result says what an Apply did, as paths relative to the write directory
// ("docker.io/hosts.toml"; a removed directory ends in "/"). A conflict is
// "<path>: <why>".
type Result struct {
	Written, Removed, Unchanged, Conflicts []string
}

// maxRead bounds what is read of a hosts.toml: ours are a few hundred
// bytes, and a larger one is rewritten (when ours) or left alone.
const maxRead = 64 << 10

// tmpPrefix starts the names of files being written; a crash can leave
// one behind, which a later removal of the directory clears.
const tmpPrefix = ".unireg-node-mirror-"

// Apply makes writeDir (where the node's hosts directory is mounted) hold
// exactly cfg's files among those cfg.Owner wrote; see the package doc for
// the rules. A Config that fails Validate is refused before anything is
// touched. Errors of one host do not stop the others; they are joined.
func Apply(writeDir string, cfg Config) (Result, error) {
	if err := cfg.Validate(); err != nil {
		return Result{}, fmt.Errorf("refused config: %w", err)
	}
	return apply(writeDir, cfg)
}

// Cleanup removes every file Apply wrote for owner under writeDir (Apply
// with no hosts).
func Cleanup(writeDir, owner string) (Result, error) {
	if !ownerRE.MatchString(owner) {
		return Result{}, fmt.Errorf("refused config: owner %q is not <namespace>/<registry>", owner)
	}
	return apply(writeDir, Config{Owner: owner})
}

func apply(writeDir string, cfg Config) (Result, error) {
	// The mount point itself must be a real directory: were the hostPath
	// not mounted, writing into the container's own filesystem would look
	// like success.
	fi, err := os.Lstat(writeDir)
	if err != nil {
		return Result{}, fmt.Errorf("write dir: %w", err)
	}
	if !fi.IsDir() {
		return Result{}, fmt.Errorf("write dir %s is not a directory", writeDir)
	}
	root, err := os.OpenRoot(writeDir)
	if err != nil {
		return Result{}, fmt.Errorf("write dir: %w", err)
	}
	defer root.Close()

	var res Result
	var errs []error
	want := map[string]bool{}
	for _, h := range cfg.Hosts {
		want[h.Name] = true
		if err := applyHost(root, cfg, h, &res); err != nil {
			errs = append(errs, fmt.Errorf("%s: %w", h.Name, err))
		}
	}
	if err := removeStale(root, cfg.Owner, want, &res); err != nil {
		errs = append(errs, err)
	}
	return res, errors.Join(errs...)
}

// applyHost writes h's directory: the CA first, so that a hosts.toml never
// names a CA that is not there yet, then hosts.toml.
func applyHost(root *os.Root, cfg Config, h Host, res *Result) error {
	dir := h.Name
	fi, err := root.Lstat(dir)
	switch {
	case errors.Is(err, fs.ErrNotExist):
		if err := root.Mkdir(dir, 0o755); err != nil {
			return err
		}
	case err != nil:
		return err
	case !fi.IsDir():
		res.Conflicts = append(res.Conflicts, dir+": not a directory ("+fi.Mode().Type().String()+")")
		return nil
	}

	hostsPath := dir + "/" + hostsFile
	_, why, err := readOwned(root, hostsPath, cfg.Owner)
	if err != nil {
		return err
	}
	if why != "" {
		res.Conflicts = append(res.Conflicts, hostsPath+": "+why)
		return nil
	}
	caPath := dir + "/" + CAFile
	caInfo, err := root.Lstat(caPath)
	caExists := err == nil
	if err != nil && !errors.Is(err, fs.ErrNotExist) {
		return err
	}
	if caExists && !caInfo.Mode().IsRegular() {
		res.Conflicts = append(res.Conflicts, caPath+": not a regular file")
		return nil
	}

	if len(h.CA) > 0 {
		if err := writeIfChanged(root, caPath, h.CA, res); err != nil {
			return err
		}
	}
	if err := writeIfChanged(root, hostsPath, Render(cfg, h), res); err != nil {
		return err
	}
	if len(h.CA) == 0 && caExists {
		// TLS was turned off: hosts.toml (just written) no longer names it.
		if err := root.Remove(caPath); err != nil && !errors.Is(err, fs.ErrNotExist) {
			return err
		}
		res.Removed = append(res.Removed, caPath)
	}
	return nil
}

// readOwned reads the hosts.toml at name when it is owner's. It returns
// nil content when there is none, and a reason when the file there is not
// owner's (then it must not be touched). A symbolic link is never
// followed: it is a reason.
func readOwned(root *os.Root, name, owner string) (content []byte, why string, err error) {
	fi, err := root.Lstat(name)
	if errors.Is(err, fs.ErrNotExist) {
		return nil, "", nil
	}
	if err != nil {
		return nil, "", err
	}
	if !fi.Mode().IsRegular() {
		return nil, "not a regular file (" + fi.Mode().Type().String() + ")", nil
	}
	f, err := root.OpenFile(name, os.O_RDONLY|syscall.O_NOFOLLOW, 0)
	if err != nil {
		return nil, "", err
	}
	defer f.Close()
	// Checked again on the open file: what was Lstat'ed may have changed.
	if fi, err := f.Stat(); err != nil || !fi.Mode().IsRegular() {
		return nil, "not a regular file", err
	}
	b, err := io.ReadAll(io.LimitReader(f, maxRead))
	if err != nil {
		return nil, "", err
	}
	first, _, _ := bytes.Cut(b, []byte("\n"))
	switch got, ok := ownerOf(string(first)); {
	case !ok:
		return nil, "not written by unireg node-mirror", nil
	case got != owner:
		return nil, "written by unireg node-mirror for " + got, nil
	}
	return b, "", nil
}

// writeIfChanged writes data to name unless it is there already.
func writeIfChanged(root *os.Root, name string, data []byte, res *Result) error {
	if cur, err := readRegular(root, name); err == nil && bytes.Equal(cur, data) {
		res.Unchanged = append(res.Unchanged, name)
		return nil
	}
	if err := writeAtomic(root, name, data); err != nil {
		return err
	}
	res.Written = append(res.Written, name)
	return nil
}

func readRegular(root *os.Root, name string) ([]byte, error) {
	f, err := root.OpenFile(name, os.O_RDONLY|syscall.O_NOFOLLOW, 0)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	if fi, err := f.Stat(); err != nil || !fi.Mode().IsRegular() {
		return nil, fmt.Errorf("%s: not a regular file", name)
	}
	return io.ReadAll(io.LimitReader(f, maxRead+1))
}

// writeAtomic writes a temporary file beside name, syncs it and renames it
// over name, so containerd reads either the old file or the new one whole.
// The rename replaces a symbolic link itself, never its target.
func writeAtomic(root *os.Root, name string, data []byte) error {
	dir := path.Dir(name)
	suffix := make([]byte, 8)
	if _, err := rand.Read(suffix); err != nil {
		return err
	}
	tmp := dir + "/" + tmpPrefix + hex.EncodeToString(suffix)
	f, err := root.OpenFile(tmp, os.O_WRONLY|os.O_CREATE|os.O_EXCL|syscall.O_NOFOLLOW, 0o644)
	if err != nil {
		return fmt.Errorf("write %s: %w", name, err)
	}
	err = writeSync(f, data)
	if err == nil {
		err = root.Rename(tmp, name)
	}
	if err != nil {
		root.Remove(tmp)
		return fmt.Errorf("write %s: %w", name, err)
	}
	return syncDir(root, dir)
}

func writeSync(f *os.File, data []byte) error {
	// The umask must not make a file containerd cannot read.
	err := f.Chmod(0o644)
	if err == nil {
		_, err = f.Write(data)
	}
	if err == nil {
		err = f.Sync()
	}
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	return err
}

func syncDir(root *os.Root, dir string) error {
	d, err := root.Open(dir)
	if err != nil {
		return err
	}
	defer d.Close()
	return d.Sync()
}

// removeStale removes owner's files from every directory directly under
// the root that is not wanted, then the directory when nothing else is in
// it.
func removeStale(root *os.Root, owner string, want map[string]bool, res *Result) error {
	d, err := root.Open(".")
	if err != nil {
		return err
	}
	entries, err := d.ReadDir(-1)
	d.Close()
	if err != nil {
		return fmt.Errorf("list write dir: %w", err)
	}
	var errs []error
	for _, e := range entries {
		// A symbolic link to a directory is not one of ours to enter.
		if want[e.Name()] || e.Type() != fs.ModeDir {
			continue
		}
		if err := removeOwned(root, e.Name(), owner, res); err != nil {
			errs = append(errs, fmt.Errorf("%s: %w", e.Name(), err))
		}
	}
	return errors.Join(errs...)
}

func removeOwned(root *os.Root, dir, owner string, res *Result) error {
	hostsPath := dir + "/" + hostsFile
	cur, why, err := readOwned(root, hostsPath, owner)
	if err != nil || why != "" || cur == nil {
		return err
	}
	if err := root.Remove(hostsPath); err != nil {
		return err
	}
	res.Removed = append(res.Removed, hostsPath)
	caPath := dir + "/" + CAFile
	if fi, err := root.Lstat(caPath); err == nil && fi.Mode().IsRegular() {
		if err := root.Remove(caPath); err != nil {
			return err
		}
		res.Removed = append(res.Removed, caPath)
	}
	removeLeftovers(root, dir)
	// Remove refuses a directory that is not empty: one that holds
	// anything else (an administrator's certificates) stays.
	if err := root.Remove(dir); err == nil {
		res.Removed = append(res.Removed, dir+"/")
	}
	return nil
}

// removeLeftovers removes temporary files an interrupted write left in dir
// (older than a minute, so never one being written now).
func removeLeftovers(root *os.Root, dir string) {
	d, err := root.Open(dir)
	if err != nil {
		return
	}
	entries, _ := d.ReadDir(-1)
	d.Close()
	for _, e := range entries {
		if !strings.HasPrefix(e.Name(), tmpPrefix) || !e.Type().IsRegular() {
			continue
		}
		if fi, err := e.Info(); err == nil && time.Since(fi.ModTime()) > time.Minute {
			root.Remove(dir + "/" + e.Name())
		}
	}
}
