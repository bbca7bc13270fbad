package pullthrough

import (
	"bytes"
	"context"
	"errors"
	"sync/atomic"
	"testing"
	"time"
)

// Admit is asked only by the caller that starts a download, its refusal
// refuses the Join, and its release comes when the download ends: joining a
// download under way is free, so a rollout of many anonymous nodes pulling
// one new layer never hits the per-identity bound.
func TestFillsAdmitOnlyTheStarterAndReleaseAtTheEnd(t *testing.T) {
	fs := &Fills{Dir: t.TempDir()}
	content := randomBytes(t, 1<<20)
	u := &upstream{size: int64(len(content))}
	c := &committer{}
	var admitted, released atomic.Int32
	refuse := errors.New("too many")
	d := download(u, content, c)
	d.Admit = func() (func(), error) {
		if admitted.Load() == 1 && released.Load() == 0 {
			return nil, refuse
		}
		admitted.Add(1)
		return func() { released.Add(1) }, nil
	}
	first, _, err := fs.Join(context.Background(), "k", d)
	if err != nil {
		t.Fatal(err)
	}
	defer first.Close()
	var joiners []*Reader
	for range 5 {
		r, _, err := fs.Join(context.Background(), "k", d)
		if err != nil {
			t.Fatalf("joining a download under way: %v", err)
		}
		joiners = append(joiners, r)
	}
	if n := admitted.Load(); n != 1 {
		t.Fatalf("Admit asked %d times for one download and five joiners", n)
	}
	// Another key while the first download runs: the starter's bound.
	if _, _, err := fs.Join(context.Background(), "other", d); !errors.Is(err, refuse) {
		t.Fatalf("a second download beyond the bound: %v", err)
	}
	res := readAll(first, c)
	await(t, "body", u.send(t, 0, content))
	u.body(t, 0).Close()
	if got := await(t, "first reader", res); got.err != nil || !bytes.Equal(got.data, content) {
		t.Fatalf("first reader: %d bytes, %v", len(got.data), got.err)
	}
	for _, r := range joiners {
		r.Close()
	}
	first.Close()
	deadline := time.Now().Add(10 * time.Second)
	for released.Load() != 1 {
		if time.Now().After(deadline) {
			t.Fatal("the admission was not released when the download ended")
		}
		time.Sleep(5 * time.Millisecond)
	}
}
