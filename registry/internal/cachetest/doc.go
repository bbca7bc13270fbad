// Package cachetest is what the pull-through cache tests stand on: a real
// upstream registry (CNCF Distribution, built by `make distribution`), a
// client that pushes images and indexes into any OCI registry (Distribution
// or a second unireg behind a token), and a counting, pacing proxy the test
// puts between the cache and its upstream to see what the cache asks for
// and to make the upstream hang, refuse or trickle.
//
// It is test support: only _test.go files import it, never production code.
//
//	up := cachetest.StartDistribution(t)
//	img := cachetest.PushImage(t, up.URL, "library/nginx", "1.27", [][]byte{layer})
//	proxy := cachetest.NewProxy(t, up.URL)
//	// configure the cache with the upstream proxy.URL(), pull img through it, then
//	proxy.Count("GET", `/blobs/`+img.Layers[0].Digest.String()) // upstream blob GETs
package cachetest
