package filesystem_test

import (
	"context"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"testing"
	"testing/iotest"
	"time"

	"github.com/unireg/unireg/registry/storage"
	"github.com/unireg/unireg/registry/storage/filesystem"
	"github.com/unireg/unireg/registry/storage/storagetest"
)

func newDriver(t *testing.T, dir string) *filesystem.Driver {
	t.Helper()
	d, err := filesystem.New(dir)
	if err != nil {
		t.Fatalf("New(%s): %v", dir, err)
	}
	return d
}

func TestDriverMeetsStorageContract(t *testing.T) {
	storagetest.Run(t, func(t *testing.T) storage.Driver { return newDriver(t, t.TempDir()) })
}

// files returns every path under root, relative to it and slash-separated.
func files(t *testing.T, root string) []string {
	t.Helper()
	var paths []string
	err := filepath.WalkDir(root, func(p string, _ fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		rel, err := filepath.Rel(root, p)
		if err != nil {
			return err
		}
		if rel != "." {
			paths = append(paths, filepath.ToSlash(rel))
		}
		return nil
	})
	if err != nil {
		t.Fatalf("walk %s: %v", root, err)
	}
	return paths
}

func TestPutLeavesNoTemporaryFiles(t *testing.T) {
	failing := func() io.Reader {
		return io.MultiReader(strings.NewReader(strings.Repeat("n", 4096)), iotest.ErrReader(errors.New("client went away")))
	}
	tests := []struct {
		name string
		put  func(ctx context.Context, d *filesystem.Driver, old storage.Info) error
		key  string
		want string // content of key afterwards; "" means absent
	}{
		{
			name: "Successful",
			put: func(ctx context.Context, d *filesystem.Driver, _ storage.Info) error {
				_, err := d.Put(ctx, "dir/k", strings.NewReader("new"), storage.Condition{})
				return err
			},
			key: "dir/k", want: "new",
		},
		{
			name: "ReaderFailsOverExistingObject",
			put: func(ctx context.Context, d *filesystem.Driver, _ storage.Info) error {
				_, err := d.Put(ctx, "dir/k", failing(), storage.Condition{})
				return err
			},
			key: "dir/k", want: "old",
		},
		{
			name: "ReaderFailsOnNewKey",
			put: func(ctx context.Context, d *filesystem.Driver, _ storage.Info) error {
				_, err := d.Put(ctx, "dir/new", failing(), storage.Condition{})
				return err
			},
			key: "dir/new",
		},
		{
			name: "ReaderFailsUnderCondition",
			put: func(ctx context.Context, d *filesystem.Driver, old storage.Info) error {
				_, err := d.Put(ctx, "dir/k", failing(), storage.Condition{IfMatch: old.Version})
				return err
			},
			key: "dir/k", want: "old",
		},
		{
			name: "IfNoneMatchRefused",
			put: func(ctx context.Context, d *filesystem.Driver, _ storage.Info) error {
				_, err := d.Put(ctx, "dir/k", strings.NewReader("new"), storage.Condition{IfNoneMatch: true})
				return err
			},
			key: "dir/k", want: "old",
		},
		{
			name: "IfMatchRefused",
			put: func(ctx context.Context, d *filesystem.Driver, _ storage.Info) error {
				_, err := d.Put(ctx, "dir/k", strings.NewReader("new"), storage.Condition{IfMatch: "stale"})
				return err
			},
			key: "dir/k", want: "old",
		},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			d := newDriver(t, t.TempDir())
			old, err := d.Put(t.Context(), "dir/k", strings.NewReader("old"), storage.Condition{})
			if err != nil {
				t.Fatalf("Put: %v", err)
			}
			err = tc.put(t.Context(), d, old)
			if (err == nil) != (tc.want == "new") {
				t.Fatalf("Put = %v", err)
			}
			for _, p := range files(t, d.Root()) {
				if strings.HasPrefix(filepath.Base(p), ".tmp-") {
					t.Errorf("temporary file %s left behind", p)
				}
			}
			b, _, err := storage.ReadAll(t.Context(), d, tc.key)
			if tc.want == "" {
				if !errors.Is(err, storage.ErrNotFound) {
					t.Fatalf("%s = %q, %v; want ErrNotFound", tc.key, b, err)
				}
				return
			}
			if err != nil || string(b) != tc.want {
				t.Fatalf("%s = %q, %v; want %q", tc.key, b, err, tc.want)
			}
		})
	}
}

func TestHostileKeysCannotEscapeRoot(t *testing.T) {
	base := t.TempDir()
	root := filepath.Join(base, "root")
	for _, p := range []string{"victim", "outside/victim"} {
		if err := os.MkdirAll(filepath.Dir(filepath.Join(base, p)), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(filepath.Join(base, p), []byte("precious"), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	d := newDriver(t, root)
	ctx := t.Context()
	if _, err := d.Put(ctx, "valid", strings.NewReader("x"), storage.Condition{}); err != nil {
		t.Fatalf("Put: %v", err)
	}
	keys := []string{
		"..", "../victim", "../outside", "../outside/victim", "../outside/new", "a/../../victim",
		filepath.Join(base, "victim"), filepath.Join(base, "outside", "new"),
		"..\\victim", "a/..\\..\\victim", "..\x00/victim", ".locks", ".locks/00",
	}
	calls := map[string]func(key string) error{
		"Put": func(k string) error {
			_, err := d.Put(ctx, k, strings.NewReader("pwned"), storage.Condition{})
			return err
		},
		"Append": func(k string) error {
			_, err := d.Append(ctx, k, 0, strings.NewReader("pwned"))
			return err
		},
		"MoveSource":      func(k string) error { return d.Move(ctx, k, "moved") },
		"MoveDestination": func(k string) error { return d.Move(ctx, "valid", k) },
		"Delete":          func(k string) error { return d.Delete(ctx, k) },
		"DeleteAll":       func(k string) error { return d.DeleteAll(ctx, k) },
	}
	for name, call := range calls {
		for _, k := range keys {
			if err := call(k); !errors.Is(err, storage.ErrInvalidKey) {
				t.Errorf("%s(%q) = %v, want ErrInvalidKey", name, k, err)
			}
		}
	}

	allowed := []string{"outside", "outside/victim", "root", "root/.locks", "root/valid", "victim"}
	for _, p := range files(t, base) {
		if !slices.Contains(allowed, p) && !strings.HasPrefix(p, "root/.locks/") {
			t.Errorf("%s created by a refused call", p)
		}
	}
	for _, p := range []string{"victim", "outside/victim"} {
		if b, err := os.ReadFile(filepath.Join(base, p)); err != nil || string(b) != "precious" {
			t.Errorf("%s = %q, %v; want it untouched", p, b, err)
		}
	}
}

// Environment of TestHelperProcess when it runs as a child process.
const (
	envHelperRoot       = "STORAGE_TEST_HELPER_ROOT"
	envHelperIncrements = "STORAGE_TEST_HELPER_INCREMENTS"
	envHelperStart      = "STORAGE_TEST_HELPER_START"
)

func TestConditionalPutIsSafeAcrossProcesses(t *testing.T) {
	const processes, increments = 2, 100
	root := t.TempDir()
	d := newDriver(t, root)
	if _, err := d.Put(t.Context(), "counter", strings.NewReader("0"), storage.Condition{IfNoneMatch: true}); err != nil {
		t.Fatalf("create counter: %v", err)
	}
	start := filepath.Join(t.TempDir(), "start")
	cmds := make([]*exec.Cmd, processes)
	outputs := make([]strings.Builder, processes)
	for i := range cmds {
		cmd := exec.CommandContext(t.Context(), os.Args[0], "-test.run=^TestHelperProcess$", "-test.count=1")
		cmd.Env = append(os.Environ(),
			envHelperRoot+"="+root,
			envHelperIncrements+"="+strconv.Itoa(increments),
			envHelperStart+"="+start)
		cmd.Stdout, cmd.Stderr = &outputs[i], &outputs[i]
		if err := cmd.Start(); err != nil {
			t.Fatalf("start helper: %v", err)
		}
		cmds[i] = cmd
	}
	// Both children are running: release them together so their writes overlap.
	if err := os.WriteFile(start, nil, 0o644); err != nil {
		t.Fatal(err)
	}
	retries := 0
	for i, cmd := range cmds {
		err := cmd.Wait()
		out := outputs[i].String()
		if err != nil {
			t.Fatalf("helper %d: %v\n%s", i, err, out)
		}
		var r int
		if _, err := fmt.Sscanf(out[max(strings.LastIndex(out, "retries "), 0):], "retries %d", &r); err != nil {
			t.Fatalf("helper %d output %q: %v", i, out, err)
		}
		retries += r
	}
	t.Logf("%d retries on ErrPreconditionFailed across processes", retries)
	b, _, err := storage.ReadAll(t.Context(), d, "counter")
	if err != nil {
		t.Fatalf("read counter: %v", err)
	}
	if got, want := string(b), strconv.Itoa(processes*increments); got != want {
		t.Fatalf("counter = %s, want %s: updates were lost between processes", got, want)
	}
}

// TestHelperProcess is not a test: TestConditionalPutIsSafeAcrossProcesses
// runs it in child processes that increment a shared counter.
func TestHelperProcess(t *testing.T) {
	root := os.Getenv(envHelperRoot)
	if root == "" {
		return
	}
	n, err := strconv.Atoi(os.Getenv(envHelperIncrements))
	if err != nil {
		t.Fatalf("%s: %v", envHelperIncrements, err)
	}
	for deadline := time.Now().Add(time.Minute); ; time.Sleep(time.Millisecond) {
		if _, err := os.Stat(os.Getenv(envHelperStart)); err == nil {
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("never told to start")
		}
	}
	d := newDriver(t, root)
	retries := 0
	for range n {
		r, err := increment(t.Context(), d, "counter")
		retries += r
		if err != nil {
			t.Fatalf("increment: %v", err)
		}
	}
	fmt.Printf("retries %d\n", retries)
}

// increment adds one to the decimal counter at key by compare-and-swap,
// retrying when another writer got in first. It returns how many retries it took.
func increment(ctx context.Context, d storage.Driver, key string) (int, error) {
	for retries := 0; ; retries++ {
		b, info, err := storage.ReadAll(ctx, d, key)
		if err != nil {
			return retries, err
		}
		n, err := strconv.Atoi(string(b))
		if err != nil {
			return retries, fmt.Errorf("counter %q: %w", b, err)
		}
		_, err = d.Put(ctx, key, strings.NewReader(strconv.Itoa(n+1)), storage.Condition{IfMatch: info.Version})
		if !errors.Is(err, storage.ErrPreconditionFailed) {
			return retries, err
		}
	}
}
