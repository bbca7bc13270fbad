package main

import (
	"bytes"
	"fmt"
	"io"
	"net/http"
	"testing"

	miniogo "github.com/minio/minio-go/v7"
	"github.com/minio/minio-go/v7/pkg/credentials"
)

// BenchmarkBlob64MiB pushes (monolithic POST) and pulls 64 MiB blobs
// through the real server with token auth, on the filesystem and on S3
// (MinIO from tools/bin on the same machine). Throughput is MB/s:
//
//	go test -run '^$' -bench Blob64MiB -benchtime 10x ./cmd/registry/
func BenchmarkBlob64MiB(b *testing.B) {
	blob := make([]byte, 64<<20)
	newPatternReader(int64(len(blob))).Read(blob)
	backends := []struct {
		name  string
		start func(b *testing.B) *server
	}{
		{"filesystem", func(b *testing.B) *server { return startServer(b, "") }},
		{"s3", func(b *testing.B) *server {
			m := newMinio(b)
			return startServerEnv(b, "", []string{"AWS_ACCESS_KEY_ID=" + m.accessKey, "AWS_SECRET_ACCESS_KEY=" + m.secretKey},
				"--s3-endpoint", "http://"+m.addr, "--s3-bucket", "bench")
		}},
	}
	for _, be := range backends {
		b.Run(be.name, func(b *testing.B) {
			s := be.start(b)
			token := s.adminToken()
			var digests []string
			b.Run("push", func(b *testing.B) {
				b.SetBytes(int64(len(blob)))
				for i := 0; b.Loop(); i++ {
					blob[0], blob[1] = byte(i), byte(i>>8) // a new blob each time
					dg := fmt.Sprintf("sha256:%x", sha256Sum(blob))
					r := s.request("POST", "/v2/bench/blobs/uploads/?digest="+dg, token, bytes.NewReader(blob))
					r.Body.Close()
					if r.StatusCode != http.StatusCreated {
						b.Fatalf("push: %s", r.Status)
					}
					digests = append(digests, dg)
				}
			})
			b.Run("pull", func(b *testing.B) {
				b.SetBytes(int64(len(blob)))
				for i := 0; b.Loop(); i++ {
					r := s.request("GET", "/v2/bench/blobs/"+digests[i%len(digests)], token, nil)
					n, err := io.Copy(io.Discard, r.Body)
					r.Body.Close()
					if err != nil || n != int64(len(blob)) {
						b.Fatalf("pull: %d bytes, %v", n, err)
					}
				}
			})
		})
	}
}

// BenchmarkS3Push measures a monolithic push through unireg on S3 against
// the S3 limit: the same bytes put straight into the same MinIO with
// minio-go (multipart with its default parts and parallelism for a body of
// known size, as `mc cp` does). Throughput is MB/s:
//
//	go test -run '^$' -bench S3Push -benchtime 8x ./cmd/registry/
func BenchmarkS3Push(b *testing.B) {
	for _, size := range []int{64 << 20, 256 << 20} {
		b.Run(fmt.Sprintf("%dMiB", size>>20), func(b *testing.B) {
			blob := make([]byte, size)
			newPatternReader(int64(len(blob))).Read(blob)
			m := newMinio(b)
			b.Run("minio-go", func(b *testing.B) {
				c, err := miniogo.New(m.addr, &miniogo.Options{Creds: credentials.NewStaticV4(m.accessKey, m.secretKey, "")})
				if err != nil {
					b.Fatal(err)
				}
				if err := c.MakeBucket(b.Context(), "direct", miniogo.MakeBucketOptions{}); err != nil {
					b.Fatal(err)
				}
				b.SetBytes(int64(len(blob)))
				for i := 0; b.Loop(); i++ {
					blob[0], blob[1] = byte(i), byte(i>>8)
					if _, err := c.PutObject(b.Context(), "direct", fmt.Sprintf("blob-%d", i), bytes.NewReader(blob), int64(len(blob)), miniogo.PutObjectOptions{}); err != nil {
						b.Fatal(err)
					}
				}
			})
			b.Run("unireg", func(b *testing.B) {
				s := startServerEnv(b, "", []string{"AWS_ACCESS_KEY_ID=" + m.accessKey, "AWS_SECRET_ACCESS_KEY=" + m.secretKey},
					"--s3-endpoint", "http://"+m.addr, "--s3-bucket", "bench")
				token := s.adminToken()
				b.SetBytes(int64(len(blob)))
				for i := 0; b.Loop(); i++ {
					blob[0], blob[1] = byte(i), byte(i>>8)
					dg := fmt.Sprintf("sha256:%x", sha256Sum(blob))
					r := s.request("POST", "/v2/bench/blobs/uploads/?digest="+dg, token, bytes.NewReader(blob))
					r.Body.Close()
					if r.StatusCode != http.StatusCreated {
						b.Fatalf("push: %s", r.Status)
					}
				}
			})
		})
	}
}
