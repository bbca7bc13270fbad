package gc

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"time"

	"github.com/unireg/unireg/registry/storage"
)

// DefaultLeaseKey is where the collector's lease lives in storage.
const DefaultLeaseKey = "gc/lease"

// A Lease is held by at most one holder at a time among the processes on
// one storage: an object naming its holder and when it expires, taken and
// renewed with conditional writes (create-if-absent, compare-and-swap on
// the version it read), so two replicas racing for it cannot both win. A
// holder that dies stops renewing, and another takes the lease once it
// has expired. Expiry compares the writer's clock with the reader's, so
// replicas' clocks must agree to well within TTL (NTP does).
type Lease struct {
	Store  storage.Driver
	Key    string // default DefaultLeaseKey
	Holder string // unique per process, e.g. hostname and a random suffix
	TTL    time.Duration
	now    func() time.Time

	version string // of the lease object this holder last wrote
}

type leaseRecord struct {
	Holder  string    `json:"holder"`
	Expires time.Time `json:"expires"`
}

func (l *Lease) key() string {
	if l.Key == "" {
		return DefaultLeaseKey
	}
	return l.Key
}

func (l *Lease) clock() time.Time {
	if l.now != nil {
		return l.now()
	}
	return time.Now()
}

// Acquire takes the lease, or renews it when this holder has it. held is
// false, with no error, when another holder has an unexpired lease or won
// the race for it.
func (l *Lease) Acquire(ctx context.Context) (held bool, err error) {
	if l.Holder == "" || l.TTL <= 0 {
		return false, errors.New("gc: a lease needs a Holder and a TTL")
	}
	b, info, err := storage.ReadAll(ctx, l.Store, l.key())
	cond := storage.Condition{IfNoneMatch: true}
	switch {
	case errors.Is(err, storage.ErrNotFound):
	case err != nil:
		return false, err
	default:
		var cur leaseRecord
		if json.Unmarshal(b, &cur) == nil && cur.Holder != l.Holder && l.clock().Before(cur.Expires) {
			return false, nil
		}
		// Ours, expired, or unreadable: replace exactly the version read.
		cond = storage.Condition{IfMatch: info.Version}
	}
	return l.write(ctx, cond)
}

func (l *Lease) write(ctx context.Context, cond storage.Condition) (bool, error) {
	rec, _ := json.Marshal(leaseRecord{Holder: l.Holder, Expires: l.clock().Add(l.TTL)})
	info, err := l.Store.Put(ctx, l.key(), bytes.NewReader(rec), cond)
	if errors.Is(err, storage.ErrPreconditionFailed) {
		return false, nil // another holder wrote in between
	}
	if err != nil {
		return false, fmt.Errorf("gc lease: %w", err)
	}
	l.version = info.Version
	return true, nil
}

// Renew extends a lease this holder has; false when it lost it (it expired
// and another holder took it), after which the holder must stop.
func (l *Lease) Renew(ctx context.Context) (bool, error) {
	if l.version == "" {
		return false, nil
	}
	return l.write(ctx, storage.Condition{IfMatch: l.version})
}

// Release gives the lease up early by letting it expire at once, if this
// holder still has it; storage has no conditional delete, so it is a
// compare-and-swap write of an expired record rather than a delete.
func (l *Lease) Release(ctx context.Context) error {
	if l.version == "" {
		return nil
	}
	rec, _ := json.Marshal(leaseRecord{Holder: l.Holder, Expires: time.Time{}})
	_, err := l.Store.Put(ctx, l.key(), bytes.NewReader(rec), storage.Condition{IfMatch: l.version})
	l.version = ""
	if errors.Is(err, storage.ErrPreconditionFailed) {
		return nil // already someone else's
	}
	return err
}
