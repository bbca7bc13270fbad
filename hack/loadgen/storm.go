package main

import (
	"context"
	"crypto/sha256"
	"encoding/json"
	"fmt"
	"net/http"
	"strings"
	"time"
)

// stormRepo is where the rollout storm's image is pushed.
const stormRepo = "growth/rollout"

const (
	stormLayers    = 3
	stormLayerSize = 2 * mib
)

// stormImage is the rollout storm's image: new for each run.
type stormImage struct {
	repo     string // where the storm GETs it
	tag      string
	layers   []string // digests
	manifest []byte
}

// rolloutImage pushes the storm's image once per run and fetches the pull
// token, so that the storm measures the GETs and not the token flow.
//
// Through a pull-through cache (--upstream-url and --cache-namespace, as
// the cache-pull scenarios) the image is pushed into the upstream and
// pulled once whole through the cache, so the storm meets it cached: the
// comparison is the same storm against a registry holding it locally.
func (e *env) rolloutImage(ctx context.Context) (*stormImage, error) {
	g := &e.growth
	g.mu.Lock()
	defer g.mu.Unlock()
	if g.storm != nil {
		return g.storm, nil
	}
	pusher := e
	img := &stormImage{repo: stormRepo, tag: fmt.Sprintf("rollout-%d", blobIDs.Add(1))}
	if e.upstream != nil {
		if err := e.cacheEnv(); err != nil {
			return nil, err
		}
		pusher = e.upstreamEnv()
		img.repo = e.cacheNamespace + "/" + stormRepo
	}
	var layers []any
	for range stormLayers {
		id := blobIDs.Add(1)
		digest := blobDigest(id, stormLayerSize)
		if err := pusher.pushBlob(ctx, stormRepo, id, stormLayerSize, false, digest); err != nil {
			return nil, err
		}
		img.layers = append(img.layers, digest)
		layers = append(layers, map[string]any{"mediaType": "application/vnd.oci.image.layer.v1.tar+gzip", "digest": digest, "size": stormLayerSize})
	}
	config := []byte(`{"architecture":"amd64","os":"linux","rootfs":{"type":"layers","diff_ids":["` + strings.Join(img.layers, `","`) + `"]}}`)
	configDigest := fmt.Sprintf("sha256:%x", sha256.Sum256(config))
	if err := pusher.putBlob(ctx, stormRepo, config, configDigest); err != nil {
		return nil, err
	}
	img.manifest, _ = json.Marshal(map[string]any{
		"schemaVersion": 2, "mediaType": manifestType,
		"config": map[string]any{"mediaType": "application/vnd.oci.image.config.v1+json", "digest": configDigest, "size": len(config)},
		"layers": layers,
	})
	if err := pusher.putManifest(ctx, stormRepo, img.tag, img.manifest); err != nil {
		return nil, err
	}
	// One GET of the manifest caches the pull token for every worker (and
	// fills a cache with it).
	req, _ := http.NewRequestWithContext(ctx, http.MethodGet, e.c.url("/v2/"+img.repo+"/manifests/"+img.tag), nil)
	req.Header.Set("Accept", manifestType)
	resp, err := e.c.do(req, ociScope(img.repo, false), nil)
	if err != nil {
		return nil, err
	}
	if err := expect(resp, http.StatusOK); err != nil {
		return nil, err
	}
	drain(resp)
	if e.upstream != nil {
		for _, digest := range img.layers {
			if _, err := e.pullFrom(ctx, img.repo, digest, stormLayerSize); err != nil {
				return nil, fmt.Errorf("filling the cache: %w", err)
			}
		}
	}
	g.storm = img
	return img, nil
}

// stormManifestGet: every worker GETs the new image's manifest by tag.
func stormManifestGet(ctx context.Context, e *env) (opFunc, error) {
	img, err := e.rolloutImage(ctx)
	if err != nil {
		return nil, err
	}
	want := fmt.Sprintf("%x", sha256.Sum256(img.manifest))
	return func(ctx context.Context, _ int) (int64, time.Duration, error) {
		start := time.Now()
		req, _ := http.NewRequestWithContext(ctx, http.MethodGet, e.c.url("/v2/"+img.repo+"/manifests/"+img.tag), nil)
		req.Header.Set("Accept", manifestType)
		resp, err := e.c.do(req, ociScope(img.repo, false), nil)
		if err != nil {
			return 0, 0, err
		}
		n, err := readVerified(resp, want, int64(len(img.manifest)))
		return n, time.Since(start), err
	}, nil
}

// stormBlobPull: every worker pulls one of the image's layers, whole and
// verified.
func stormBlobPull(ctx context.Context, e *env) (opFunc, error) {
	img, err := e.rolloutImage(ctx)
	if err != nil {
		return nil, err
	}
	return func(ctx context.Context, worker int) (int64, time.Duration, error) {
		digest := img.layers[worker%len(img.layers)]
		start := time.Now()
		req, _ := http.NewRequestWithContext(ctx, http.MethodGet, e.c.url("/v2/"+img.repo+"/blobs/"+digest), nil)
		resp, err := e.c.do(req, ociScope(img.repo, false), nil)
		if err != nil {
			return 0, 0, err
		}
		n, err := readVerified(resp, strings.TrimPrefix(digest, "sha256:"), stormLayerSize)
		return n, time.Since(start), err
	}, nil
}
