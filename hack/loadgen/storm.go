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
	tag      string
	layers   []string // digests
	manifest []byte
}

// rolloutImage pushes the storm's image once per run and fetches the pull
// token, so that the storm measures the GETs and not the token flow.
func (e *env) rolloutImage(ctx context.Context) (*stormImage, error) {
	g := &e.growth
	g.mu.Lock()
	defer g.mu.Unlock()
	if g.storm != nil {
		return g.storm, nil
	}
	img := &stormImage{tag: fmt.Sprintf("rollout-%d", blobIDs.Add(1))}
	var layers []any
	for range stormLayers {
		id := blobIDs.Add(1)
		digest := blobDigest(id, stormLayerSize)
		if err := e.pushBlob(ctx, stormRepo, id, stormLayerSize, false, digest); err != nil {
			return nil, err
		}
		img.layers = append(img.layers, digest)
		layers = append(layers, map[string]any{"mediaType": "application/vnd.oci.image.layer.v1.tar+gzip", "digest": digest, "size": stormLayerSize})
	}
	config := []byte(`{"architecture":"amd64","os":"linux","rootfs":{"type":"layers","diff_ids":["` + strings.Join(img.layers, `","`) + `"]}}`)
	configDigest := fmt.Sprintf("sha256:%x", sha256.Sum256(config))
	if err := e.putBlob(ctx, stormRepo, config, configDigest); err != nil {
		return nil, err
	}
	img.manifest, _ = json.Marshal(map[string]any{
		"schemaVersion": 2, "mediaType": manifestType,
		"config": map[string]any{"mediaType": "application/vnd.oci.image.config.v1+json", "digest": configDigest, "size": len(config)},
		"layers": layers,
	})
	if err := e.putManifest(ctx, stormRepo, img.tag, img.manifest); err != nil {
		return nil, err
	}
	// One authenticated HEAD caches the pull token for every worker.
	req, _ := http.NewRequestWithContext(ctx, http.MethodHead, e.c.url("/v2/"+stormRepo+"/manifests/"+img.tag), nil)
	req.Header.Set("Accept", manifestType)
	resp, err := e.c.do(req, ociScope(stormRepo, false), nil)
	if err != nil {
		return nil, err
	}
	if err := expect(resp, http.StatusOK); err != nil {
		return nil, err
	}
	drain(resp)
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
		req, _ := http.NewRequestWithContext(ctx, http.MethodGet, e.c.url("/v2/"+stormRepo+"/manifests/"+img.tag), nil)
		req.Header.Set("Accept", manifestType)
		resp, err := e.c.do(req, ociScope(stormRepo, false), nil)
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
		req, _ := http.NewRequestWithContext(ctx, http.MethodGet, e.c.url("/v2/"+stormRepo+"/blobs/"+digest), nil)
		resp, err := e.c.do(req, ociScope(stormRepo, false), nil)
		if err != nil {
			return 0, 0, err
		}
		n, err := readVerified(resp, strings.TrimPrefix(digest, "sha256:"), stormLayerSize)
		return n, time.Since(start), err
	}, nil
}
