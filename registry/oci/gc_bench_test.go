package oci

import (
	"bytes"
	"fmt"
	"os"
	"strconv"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/opencontainers/go-digest"

	"github.com/unireg/unireg/registry/gc"
	"github.com/unireg/unireg/registry/storage"
	"github.com/unireg/unireg/registry/storage/filesystem"
	"github.com/unireg/unireg/registry/storage/s3"
	"github.com/unireg/unireg/registry/storage/storagetest"
)

// BenchmarkGCCollect times one collection over a store of N blobs (make
// bench-gc; docs/performance.md "Garbage collection"): images of a config,
// eight layers and the manifest (ten blobs each, tagged, in repositories of
// ten images), and a tenth of N unreferenced blobs, each with its content,
// ref and a layer link, that the collection must delete. Each iteration
// adds the garbage again (untimed) and waits until it is older than the
// grace. N is UNIREG_GC_BENCH_BLOBS (a comma list; default 10000); the
// MinIO half runs when storagetest.MinIO finds one.
func BenchmarkGCCollect(b *testing.B) {
	sizes := []int{10000}
	if v := os.Getenv("UNIREG_GC_BENCH_BLOBS"); v != "" {
		sizes = nil
		for _, f := range strings.Split(v, ",") {
			n, err := strconv.Atoi(strings.TrimSpace(f))
			if err != nil || n < 100 {
				b.Fatalf("UNIREG_GC_BENCH_BLOBS=%q: want a comma list of counts of at least 100", v)
			}
			sizes = append(sizes, n)
		}
	}
	backends := []struct {
		name string
		open func(b *testing.B) storage.Driver
	}{
		{"fs", func(b *testing.B) storage.Driver {
			d, err := filesystem.New(b.TempDir())
			if err != nil {
				b.Fatal(err)
			}
			return d
		}},
		{"minio", func(b *testing.B) storage.Driver {
			endpoint, access, secret := storagetest.MinIO(b)
			d, err := s3.New(b.Context(), s3.Options{Endpoint: endpoint, Bucket: fmt.Sprintf("gc-bench-%d", time.Now().UnixNano()),
				AccessKey: access, SecretKey: secret, CreateBucket: true})
			if err != nil {
				b.Fatal(err)
			}
			return d
		}},
	}
	for _, be := range backends {
		for _, n := range sizes {
			b.Run(fmt.Sprintf("%s/blobs=%d", be.name, n), func(b *testing.B) {
				benchGCCollect(b, be.open(b), n)
			})
		}
	}
}

func benchGCCollect(b *testing.B, store storage.Driver, n int) {
	ctx := b.Context()
	garbage := n / 10
	images := (n - garbage) / 10
	var seq atomic.Int64
	newBlob := func() ([]byte, digest.Digest) {
		body := fmt.Appendf(nil, "gc-bench blob %d %d", time.Now().UnixNano(), seq.Add(1))
		return body, digest.FromBytes(body)
	}
	put := func(key string, v []byte) error {
		_, err := store.Put(ctx, key, bytes.NewReader(v), storage.Condition{})
		return err
	}
	// putBlob writes what an upload leaves: the content, its ref and the
	// repository's link.
	putBlob := func(repo string, body []byte, d digest.Digest) error {
		for key, v := range map[string][]byte{blobKey(d): body, blobRefKey(d): nil, layerLinkKey(repo, d): []byte(d.String())} {
			if err := put(key, v); err != nil {
				return err
			}
		}
		return nil
	}
	repoOf := func(image int) string { return fmt.Sprintf("bench/app%d", image/10) }
	start := time.Now()
	err := parallel(ctx, images, func(i int) error {
		repo := repoOf(i)
		var descs []string
		for range 9 {
			body, d := newBlob()
			if err := putBlob(repo, body, d); err != nil {
				return err
			}
			descs = append(descs, fmt.Sprintf(`{"mediaType":"application/vnd.oci.image.layer.v1.tar","digest":%q,"size":%d}`, d, len(body)))
		}
		manifest := fmt.Appendf(nil, `{"schemaVersion":2,"mediaType":"application/vnd.oci.image.manifest.v1+json","config":%s,"layers":[%s]}`,
			strings.Replace(descs[0], "layer.v1.tar", "config.v1+json", 1), strings.Join(descs[1:], ","))
		d := digest.FromBytes(manifest)
		if err := put(blobKey(d), manifest); err != nil {
			return err
		}
		if err := put(blobRefKey(d), nil); err != nil {
			return err
		}
		if err := put(revisionKey(repo, d), []byte(d.String())); err != nil {
			return err
		}
		return put(tagKey(repo, fmt.Sprintf("v%d", i%10)), []byte(d.String()))
	})
	if err != nil {
		b.Fatal(err)
	}
	b.Logf("populated %d images (%d blobs) in %s", images, images*10, time.Since(start).Round(time.Millisecond))

	h, err := New(Options{Storage: store})
	if err != nil {
		b.Fatal(err)
	}
	const grace = time.Millisecond
	collector := &gc.Collector{Store: store, Parts: []gc.Part{h.GC()}, Options: gc.Options{Grace: grace}}
	b.ResetTimer()
	for range b.N {
		b.StopTimer()
		err := parallel(ctx, garbage, func(i int) error {
			body, d := newBlob()
			return putBlob(repoOf(i%max(images, 1)), body, d)
		})
		if err != nil {
			b.Fatal(err)
		}
		time.Sleep(grace + gc.TimeSpare + time.Second) // S3 times are whole seconds
		b.StartTimer()
		rep, err := collector.Collect(ctx, false)
		if err != nil {
			b.Fatal(err)
		}
		b.StopTimer()
		if got := rep.ByKind["blob"].Objects; got != garbage {
			b.Fatalf("deleted %d blobs, want the %d unreferenced ones (%+v)", got, garbage, rep.ByKind)
		}
		b.StartTimer()
	}
	b.ReportMetric(float64(n)*float64(b.N)/b.Elapsed().Seconds(), "blobs/s")
}
