// Command imagecheck checks, without Docker, that docker build of each Dockerfile given would
// find what it needs: `make image-check` runs it on Dockerfile and bundle.Dockerfile.
//
//	imagecheck [-context DIR] [-platform os/arch] [-list] DOCKERFILE...
//
// For each Dockerfile it assembles the build context as BuildKit does: the ignore file
// `<Dockerfile>.dockerignore` next to the Dockerfile, else the context's .dockerignore, read
// with patternmatcher's ignorefile and applied by fsutil's filter, Docker's own code. It parses
// the Dockerfile with BuildKit's parser and replays the stages the last one depends on: ARG
// (with BuildKit's automatic platform ARGs), ENV, WORKDIR and COPY (with fsutil's copy, as
// BuildKit's backend) into a folder per stage, and the go commands of RUN in golang stages
// with the local Go, which must be the image's Go release. A stage on another image (distroless)
// cannot run anything here: only what it copies is checked, and COPY --from must find what an
// earlier stage produced. Anything it cannot replay faithfully (ADD, SHELL, RUN of anything but
// go) is an error, not a guess.
package main

import (
	"context"
	"flag"
	"fmt"
	"os"
)

func main() {
	contextDir := flag.String("context", ".", "The build context folder, as the last argument of docker build.")
	platformFlag := flag.String("platform", defaultPlatform().String(), "The target platform, as docker build --platform.")
	list := flag.Bool("list", false, "Also print the files of each build context.")
	flag.Usage = func() {
		fmt.Fprintln(os.Stderr, "usage: imagecheck [-context DIR] [-platform os/arch] [-list] DOCKERFILE...")
		flag.PrintDefaults()
	}
	flag.Parse()
	if flag.NArg() == 0 {
		flag.Usage()
		os.Exit(2)
	}
	p, err := parsePlatform(*platformFlag)
	if err != nil {
		fmt.Fprintln(os.Stderr, "imagecheck:", err)
		os.Exit(2)
	}
	ctx := context.Background()
	tc, err := findToolchain(ctx)
	if err != nil {
		fmt.Fprintln(os.Stderr, "imagecheck: the local Go:", err)
		os.Exit(1)
	}
	failed := false
	for _, dockerfile := range flag.Args() {
		err := check(ctx, options{
			contextDir: *contextDir, dockerfile: dockerfile, platform: p, toolchain: tc, log: os.Stdout, list: *list,
		})
		if err != nil {
			fmt.Printf("FAIL %s: docker build would fail:\n%v\n", dockerfile, err)
			failed = true
			continue
		}
		fmt.Printf("ok   %s\n", dockerfile)
	}
	if failed {
		os.Exit(1)
	}
}
