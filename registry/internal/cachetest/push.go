package cachetest

import (
	"bytes"
	"context"
	crand "crypto/rand"
	"encoding/json"
	"fmt"
	"io"
	"math/rand/v2"
	"net/http"
	"net/url"
	"strings"
	"testing"

	"github.com/opencontainers/go-digest"
	specs "github.com/opencontainers/image-spec/specs-go"
	ocispec "github.com/opencontainers/image-spec/specs-go/v1"
)

// Option changes how the push and fetch helpers talk to a registry.
type Option func(*client)

// WithAuthorization sets the Authorization header of every request for
// repository repo to what authorization returns ("" sends none). It lets
// the helpers push into a unireg that requires a token.
func WithAuthorization(authorization func(repo string) string) Option {
	return func(c *client) { c.authorization = authorization }
}

// WithBearer sends "Authorization: Bearer token" with every request (unireg
// takes its static tokens this way, as well as as a Basic password).
func WithBearer(token string) Option {
	return WithAuthorization(func(string) string { return "Bearer " + token })
}

// WithHTTPClient makes the helpers use hc instead of http.DefaultClient.
func WithHTTPClient(hc *http.Client) Option {
	return func(c *client) { c.http = hc }
}

type client struct {
	base          string
	http          *http.Client
	authorization func(repo string) string
}

func newClient(baseURL string, opts []Option) *client {
	c := &client{base: strings.TrimSuffix(baseURL, "/"), http: http.DefaultClient}
	for _, o := range opts {
		o(c)
	}
	return c
}

func (c *client) do(ctx context.Context, repo, method, target string, body []byte, header http.Header) (*http.Response, error) {
	var r io.Reader
	if body != nil {
		r = bytes.NewReader(body)
	}
	req, err := http.NewRequestWithContext(ctx, method, target, r)
	if err != nil {
		return nil, err
	}
	for k, vs := range header {
		req.Header[k] = vs
	}
	if c.authorization != nil {
		if a := c.authorization(repo); a != "" {
			req.Header.Set("Authorization", a)
		}
	}
	return c.http.Do(req)
}

// Image is an OCI image pushed by PushImage (or one platform of an Index):
// the descriptors say each part's digest, size and media type.
type Image struct {
	Repo string
	// Tag is the tag the manifest was pushed under; "" when it was pushed
	// by digest only (as the platforms of an index are).
	Tag           string
	Manifest      ocispec.Descriptor
	ManifestBytes []byte
	Config        ocispec.Descriptor
	ConfigBytes   []byte
	Layers        []ocispec.Descriptor
}

// Size is the number of bytes a client pulling the image by manifest digest
// fetches: the manifest, the config and every layer.
func (img Image) Size() int64 {
	n := img.Manifest.Size + img.Config.Size
	for _, l := range img.Layers {
		n += l.Size
	}
	return n
}

// Index is an OCI image index pushed by PushIndex, with the image each of
// its manifests describes, in the index's order.
type Index struct {
	Repo       string
	Tag        string
	Index      ocispec.Descriptor
	IndexBytes []byte
	Platforms  []Image
}

// RandomBytes returns n bytes no other call returns (a fresh random seed
// each time), quickly enough to make blobs of hundreds of MiB.
func RandomBytes(n int) []byte {
	var seed [32]byte
	_, _ = crand.Read(seed[:])
	b := make([]byte, n)
	_, _ = rand.NewChaCha8(seed).Read(b)
	return b
}

// PushBlob uploads data as a blob of repo (a monolithic upload: POST, then
// PUT with the digest) and returns its descriptor, of media type
// application/octet-stream.
func PushBlob(t testing.TB, baseURL, repo string, data []byte, opts ...Option) ocispec.Descriptor {
	t.Helper()
	desc, err := newClient(baseURL, opts).pushBlob(context.Background(), repo, data)
	if err != nil {
		t.Fatal(err)
	}
	return desc
}

func (c *client) pushBlob(ctx context.Context, repo string, data []byte) (ocispec.Descriptor, error) {
	desc := ocispec.Descriptor{MediaType: "application/octet-stream", Digest: digest.FromBytes(data), Size: int64(len(data))}
	start := c.base + "/v2/" + repo + "/blobs/uploads/"
	resp, err := c.do(ctx, repo, http.MethodPost, start, nil, nil)
	if err != nil {
		return desc, fmt.Errorf("start upload of %s to %s: %w", desc.Digest, repo, err)
	}
	drain(resp)
	if resp.StatusCode != http.StatusAccepted {
		return desc, fmt.Errorf("POST %s: %s", start, resp.Status)
	}
	loc, err := resp.Request.URL.Parse(resp.Header.Get("Location"))
	if err != nil {
		return desc, fmt.Errorf("upload location %q: %w", resp.Header.Get("Location"), err)
	}
	q := loc.Query()
	q.Set("digest", desc.Digest.String())
	loc.RawQuery = q.Encode()
	resp, err = c.do(ctx, repo, http.MethodPut, loc.String(), data, http.Header{"Content-Type": {"application/octet-stream"}})
	if err != nil {
		return desc, fmt.Errorf("upload %s to %s: %w", desc.Digest, repo, err)
	}
	msg := drain(resp)
	if resp.StatusCode != http.StatusCreated {
		return desc, fmt.Errorf("PUT blob %s to %s: %s %s", desc.Digest, repo, resp.Status, msg)
	}
	return desc, nil
}

// PushManifest puts body as a manifest of media type mediaType under
// reference (a tag, or the body's digest) and returns its descriptor. It
// fails the test when the registry names another digest than the body's.
func PushManifest(t testing.TB, baseURL, repo, reference, mediaType string, body []byte, opts ...Option) ocispec.Descriptor {
	t.Helper()
	desc, err := newClient(baseURL, opts).pushManifest(context.Background(), repo, reference, mediaType, body)
	if err != nil {
		t.Fatal(err)
	}
	return desc
}

func (c *client) pushManifest(ctx context.Context, repo, reference, mediaType string, body []byte) (ocispec.Descriptor, error) {
	desc := ocispec.Descriptor{MediaType: mediaType, Digest: digest.FromBytes(body), Size: int64(len(body))}
	target := c.base + "/v2/" + repo + "/manifests/" + url.PathEscape(reference)
	resp, err := c.do(ctx, repo, http.MethodPut, target, body, http.Header{"Content-Type": {mediaType}})
	if err != nil {
		return desc, fmt.Errorf("put manifest %s:%s: %w", repo, reference, err)
	}
	msg := drain(resp)
	if resp.StatusCode != http.StatusCreated {
		return desc, fmt.Errorf("PUT %s: %s %s", target, resp.Status, msg)
	}
	if got := resp.Header.Get("Docker-Content-Digest"); got != "" && got != desc.Digest.String() {
		return desc, fmt.Errorf("PUT %s: registry says digest %s, the body's is %s", target, got, desc.Digest)
	}
	return desc, nil
}

// PushImage pushes an OCI image of the given layers (media type
// application/vnd.oci.image.layer.v1.tar) with a linux/amd64 config under
// tag ("" pushes the manifest by digest only), and returns what it pushed.
func PushImage(t testing.TB, baseURL, repo, tag string, layers [][]byte, opts ...Option) Image {
	t.Helper()
	img, err := newClient(baseURL, opts).pushImage(context.Background(), repo, tag,
		ocispec.Platform{OS: "linux", Architecture: "amd64"}, layers)
	if err != nil {
		t.Fatal(err)
	}
	return img
}

func (c *client) pushImage(ctx context.Context, repo, tag string, platform ocispec.Platform, layers [][]byte) (Image, error) {
	img := Image{Repo: repo, Tag: tag}
	config := ocispec.Image{Platform: platform, RootFS: ocispec.RootFS{Type: "layers"}}
	for _, data := range layers {
		desc, err := c.pushBlob(ctx, repo, data)
		if err != nil {
			return img, err
		}
		desc.MediaType = ocispec.MediaTypeImageLayer
		img.Layers = append(img.Layers, desc)
		// The layers are uncompressed, so each diff ID is the layer's digest.
		config.RootFS.DiffIDs = append(config.RootFS.DiffIDs, desc.Digest)
	}
	var err error
	if img.ConfigBytes, err = json.Marshal(config); err != nil {
		return img, err
	}
	if img.Config, err = c.pushBlob(ctx, repo, img.ConfigBytes); err != nil {
		return img, err
	}
	img.Config.MediaType = ocispec.MediaTypeImageConfig
	manifest := ocispec.Manifest{
		Versioned: specs.Versioned{SchemaVersion: 2},
		MediaType: ocispec.MediaTypeImageManifest,
		Config:    img.Config,
		Layers:    img.Layers,
	}
	if manifest.Layers == nil {
		manifest.Layers = []ocispec.Descriptor{}
	}
	if img.ManifestBytes, err = json.Marshal(manifest); err != nil {
		return img, err
	}
	reference := tag
	if reference == "" {
		reference = digest.FromBytes(img.ManifestBytes).String()
	}
	if img.Manifest, err = c.pushManifest(ctx, repo, reference, ocispec.MediaTypeImageManifest, img.ManifestBytes); err != nil {
		return img, err
	}
	return img, nil
}

// indexPlatforms are the platforms PushIndex gives its images, in order.
var indexPlatforms = []ocispec.Platform{
	{OS: "linux", Architecture: "amd64"},
	{OS: "linux", Architecture: "arm64", Variant: "v8"},
	{OS: "linux", Architecture: "arm", Variant: "v7"},
	{OS: "linux", Architecture: "s390x"},
	{OS: "linux", Architecture: "ppc64le"},
	{OS: "linux", Architecture: "riscv64"},
	{OS: "linux", Architecture: "386"},
	{OS: "windows", Architecture: "amd64"},
}

// PushIndex pushes an OCI image index of n platforms (linux/amd64,
// linux/arm64/v8, linux/arm/v7, linux/s390x, ... up to 8) under tag. Each
// platform is its own image, pushed by digest: its own config and one layer
// of layerSize random bytes, so no two platforms share a blob.
func PushIndex(t testing.TB, baseURL, repo, tag string, n, layerSize int, opts ...Option) Index {
	t.Helper()
	if n < 1 || n > len(indexPlatforms) {
		t.Fatalf("PushIndex: %d platforms, want 1 to %d", n, len(indexPlatforms))
	}
	c := newClient(baseURL, opts)
	ctx := context.Background()
	ix := Index{Repo: repo, Tag: tag}
	index := ocispec.Index{Versioned: specs.Versioned{SchemaVersion: 2}, MediaType: ocispec.MediaTypeImageIndex}
	for _, platform := range indexPlatforms[:n] {
		img, err := c.pushImage(ctx, repo, "", platform, [][]byte{RandomBytes(layerSize)})
		if err != nil {
			t.Fatal(err)
		}
		img.Manifest.Platform = &platform
		ix.Platforms = append(ix.Platforms, img)
		index.Manifests = append(index.Manifests, img.Manifest)
	}
	var err error
	if ix.IndexBytes, err = json.Marshal(index); err != nil {
		t.Fatal(err)
	}
	if ix.Index, err = c.pushManifest(ctx, repo, tag, ocispec.MediaTypeImageIndex, ix.IndexBytes); err != nil {
		t.Fatal(err)
	}
	return ix
}

// manifestAccept is what FetchManifest accepts: OCI and Docker manifests
// and indexes.
var manifestAccept = strings.Join([]string{
	ocispec.MediaTypeImageManifest,
	ocispec.MediaTypeImageIndex,
	"application/vnd.docker.distribution.manifest.v2+json",
	"application/vnd.docker.distribution.manifest.list.v2+json",
}, ", ")

// FetchManifest GETs the manifest repo:reference and returns its body and
// descriptor (media type from Content-Type, digest of the body). It checks
// the body against reference when reference is a digest, and against the
// Docker-Content-Digest header when there is one. It returns errors rather
// than failing the test, so that goroutines of the test can call it.
func FetchManifest(ctx context.Context, baseURL, repo, reference string, opts ...Option) ([]byte, ocispec.Descriptor, error) {
	c := newClient(baseURL, opts)
	target := c.base + "/v2/" + repo + "/manifests/" + url.PathEscape(reference)
	resp, err := c.do(ctx, repo, http.MethodGet, target, nil, http.Header{"Accept": {manifestAccept}})
	if err != nil {
		return nil, ocispec.Descriptor{}, err
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	if err != nil {
		return nil, ocispec.Descriptor{}, fmt.Errorf("GET %s: read body: %w", target, err)
	}
	if resp.StatusCode != http.StatusOK {
		return nil, ocispec.Descriptor{}, fmt.Errorf("GET %s: %s %s", target, resp.Status, bytes.TrimSpace(body))
	}
	desc := ocispec.Descriptor{MediaType: resp.Header.Get("Content-Type"), Digest: digest.FromBytes(body), Size: int64(len(body))}
	if want, err := digest.Parse(reference); err == nil && want != desc.Digest {
		return nil, desc, fmt.Errorf("GET %s: body has digest %s", target, desc.Digest)
	}
	if got := resp.Header.Get("Docker-Content-Digest"); got != "" && got != desc.Digest.String() {
		return nil, desc, fmt.Errorf("GET %s: Docker-Content-Digest %s, the body's is %s", target, got, desc.Digest)
	}
	return body, desc, nil
}

// FetchBlob GETs blob dg of repo, following redirects, and returns its body
// once it has checked it against dg. Like FetchManifest it returns errors.
func FetchBlob(ctx context.Context, baseURL, repo string, dg digest.Digest, opts ...Option) ([]byte, error) {
	c := newClient(baseURL, opts)
	target := c.base + "/v2/" + repo + "/blobs/" + dg.String()
	resp, err := c.do(ctx, repo, http.MethodGet, target, nil, nil)
	if err != nil {
		return nil, err
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return nil, fmt.Errorf("GET %s: %s %s", target, resp.Status, drain(resp))
	}
	verifier := dg.Verifier()
	body, err := io.ReadAll(io.TeeReader(resp.Body, verifier))
	if err != nil {
		return nil, fmt.Errorf("GET %s: read body: %w", target, err)
	}
	if !verifier.Verified() {
		return nil, fmt.Errorf("GET %s: %d bytes that do not match the digest", target, len(body))
	}
	return body, nil
}

// drain reads and closes a response body, returning its start for error
// messages (a registry's {"errors":[...]}).
func drain(resp *http.Response) string {
	defer resp.Body.Close()
	head, _ := io.ReadAll(io.LimitReader(resp.Body, 4<<10))
	_, _ = io.Copy(io.Discard, resp.Body)
	return string(bytes.TrimSpace(head))
}
