// Command images builds container images from static binaries as OCI image
// archives (see hack/imagebuild), for `make images`:
//
//	go run ./hack/images -version v1 -out bin/images docker.io/unireg/registry:v1=bin/static/registry ...
//
// Each REF=BINARY argument becomes OUT/<binary name>.tar holding image REF.
package main

import (
	"flag"
	"fmt"
	"log"
	"os"
	"path/filepath"
	"strings"

	"github.com/unireg/unireg/hack/imagebuild"
)

func main() {
	version := flag.String("version", "dev", "value of the org.opencontainers.image.version label")
	out := flag.String("out", "bin/images", "folder the archives are written to")
	flag.Parse()
	if flag.NArg() == 0 {
		log.Fatal("usage: images [-version V] [-out DIR] REF=BINARY...")
	}
	if err := os.MkdirAll(*out, 0o755); err != nil {
		log.Fatal(err)
	}
	for _, arg := range flag.Args() {
		ref, bin, ok := strings.Cut(arg, "=")
		if !ok {
			log.Fatalf("%q: want REF=BINARY", arg)
		}
		img, err := imagebuild.FromBinary(bin, *version)
		if err != nil {
			log.Fatal(err)
		}
		file := filepath.Join(*out, filepath.Base(bin)+".tar")
		if err := imagebuild.WriteArchive(file, ref, img); err != nil {
			log.Fatal(err)
		}
		d, _ := img.Digest()
		fmt.Printf("%s %s %s\n", file, ref, d)
	}
}
