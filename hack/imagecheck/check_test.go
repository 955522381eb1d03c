package main

import (
	"bytes"
	"context"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
)

var (
	localGo    toolchain
	localGoErr error
	findGo     sync.Once
)

// testToolchain is the local Go; the trees below use the golang image tag of its release, as a
// project's Dockerfile would.
func testToolchain(t *testing.T) toolchain {
	t.Helper()
	findGo.Do(func() { localGo, localGoErr = findToolchain(context.Background()) })
	if localGoErr != nil {
		t.Fatalf("the local Go: %v", localGoErr)
	}
	return localGo
}

func golangTagFor(tc toolchain) string {
	parts := strings.SplitN(strings.TrimPrefix(tc.version, "go"), ".", 3)
	return "golang:" + parts[0] + "." + parts[1]
}

// writeTree writes files (slash paths -> content) under a new temporary folder; {{GOLANG}} in
// a content is the golang image of the local Go.
func writeTree(t *testing.T, files map[string]string) string {
	t.Helper()
	dir := t.TempDir()
	golang := golangTagFor(testToolchain(t))
	for name, content := range files {
		p := filepath.Join(dir, filepath.FromSlash(name))
		if err := os.MkdirAll(filepath.Dir(p), 0o750); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(p, []byte(strings.ReplaceAll(content, "{{GOLANG}}", golang)), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	return dir
}

// runCheck checks dockerfile (relative to dir) with dir as the build context.
func runCheck(t *testing.T, dir, dockerfile string) (string, error) {
	t.Helper()
	var log bytes.Buffer
	err := check(context.Background(), options{
		contextDir: dir,
		dockerfile: filepath.Join(dir, dockerfile),
		platform:   defaultPlatform(),
		toolchain:  testToolchain(t),
		log:        &log,
		list:       true,
	})
	return log.String(), err
}

// program is a package main of two files: main.go needs greeting.go to compile.
var program = map[string]string{
	"go.mod":      "module example.com/hello\n\ngo 1.26\n",
	"main.go":     "package main\n\nfunc main() { println(greeting()) }\n",
	"greeting.go": "package main\n\nfunc greeting() string { return \"hello\" }\n",
	"README.md":   "not needed by the build\n",
}

// builder is the shape of whisperer's Dockerfile: a golang stage builds the binary, a
// distroless stage copies it.
const builder = `FROM {{GOLANG}} AS builder
ARG TARGETOS
ARG TARGETARCH
WORKDIR /workspace
COPY go.mod ./
RUN go mod download
COPY *.go ./
RUN CGO_ENABLED=0 GOOS=${TARGETOS:-linux} GOARCH=${TARGETARCH} go build -trimpath -ldflags="-s -w" -o hello .

FROM gcr.io/distroless/static:nonroot
WORKDIR /
COPY --from=builder /workspace/hello .
USER 65532:65532
ENTRYPOINT ["/hello"]
`

func with(base map[string]string, extra map[string]string) map[string]string {
	out := map[string]string{}
	for _, m := range []map[string]string{base, extra} {
		for k, v := range m {
			out[k] = v
		}
	}
	return out
}

func TestGoodTreePasses(t *testing.T) {
	dir := writeTree(t, with(program, map[string]string{
		"Dockerfile":    builder,
		".dockerignore": "*\n!go.mod\n!*.go\n",
	}))
	log, err := runCheck(t, dir, "Dockerfile")
	if err != nil {
		t.Fatalf("check failed:\n%v\nlog:\n%s", err, log)
	}
	// The context is what the ignore file admits: README.md and the Dockerfile stay out.
	for _, want := range []string{"3 files, filtered by " + filepath.Join(dir, ".dockerignore"), "\n  go.mod\n  greeting.go\n  main.go\n"} {
		if !strings.Contains(log, want) {
			t.Errorf("log lacks %q:\n%s", want, log)
		}
	}
}

// A stage built on another continues from its files, WORKDIR and ENV.
func TestStageBuiltOnStage(t *testing.T) {
	dir := writeTree(t, with(program, map[string]string{"Dockerfile": `FROM {{GOLANG}} AS base
WORKDIR /src
ENV CGO_ENABLED=0
COPY go.mod ./

FROM base AS builder
COPY *.go ./
RUN go build -trimpath -o hello .

FROM scratch
COPY --from=builder /src/hello /hello
`}))
	log, err := runCheck(t, dir, "Dockerfile")
	if err != nil {
		t.Fatalf("check failed:\n%v\nlog:\n%s", err, log)
	}
}

func TestExcludedGoFileFailsTheBuildAndIsNamed(t *testing.T) {
	dir := writeTree(t, with(program, map[string]string{
		"Dockerfile":    builder,
		".dockerignore": "*\n!go.mod\n!main.go\n",
	}))
	log, err := runCheck(t, dir, "Dockerfile")
	if err == nil {
		t.Fatalf("check passed, want the build to fail:\n%s", log)
	}
	for _, want := range []string{
		"Dockerfile:8: RUN CGO_ENABLED=0",
		"go build failed: exit status 1",
		"undefined: greeting",
		"greeting.go: excluded from the build context by " + filepath.Join(dir, ".dockerignore"),
	} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("error lacks %q:\n%v", want, err)
		}
	}
}

func TestGoFileLeftOutByCopyIsNamed(t *testing.T) {
	dir := writeTree(t, with(program, map[string]string{
		"Dockerfile":    strings.Replace(builder, "COPY *.go ./", "COPY main.go ./", 1),
		".dockerignore": "*\n!go.mod\n!*.go\n",
	}))
	_, err := runCheck(t, dir, "Dockerfile")
	if err == nil || !strings.Contains(err.Error(), "greeting.go: in the build context, but no COPY puts it in /workspace") {
		t.Fatalf("got %v, want the build to fail naming greeting.go", err)
	}
}

func TestCopyFailures(t *testing.T) {
	for _, tc := range []struct {
		name, copy, ignore, want string
	}{
		{"excluded by the ignore file", "COPY greeting.go ./", "*\n!go.mod\n!main.go\n",
			`Dockerfile:2: COPY greeting.go ./: "greeting.go": not found in the build context: `},
		{"not in the folder", "COPY missing.go ./", "",
			`Dockerfile:2: COPY missing.go ./: "missing.go": not found in the build context: there is no such file`},
		{"not produced by the stage", "COPY --from=builder /workspace/hello /hello", "",
			`Dockerfile:3: COPY --from=builder /workspace/hello /hello: "/workspace/hello": not found in stage builder (it may come from its image golang:`},
		{"from an image", "COPY --from=busybox /bin/sh /sh", "",
			`--from=busybox names an image, not an earlier stage`},
	} {
		t.Run(tc.name, func(t *testing.T) {
			files := with(program, map[string]string{"Dockerfile": "FROM {{GOLANG}} AS builder\n" + tc.copy + "\n"})
			if strings.Contains(tc.copy, "--from") {
				files["Dockerfile"] = "FROM {{GOLANG}} AS builder\nFROM scratch\n" + tc.copy + "\n"
			}
			if tc.ignore != "" {
				files[".dockerignore"] = tc.ignore
			}
			dir := writeTree(t, files)
			log, err := runCheck(t, dir, "Dockerfile")
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("got %v, want an error containing %q\nlog:\n%s", err, tc.want, log)
			}
		})
	}
}

// BuildKit reads <Dockerfile>.dockerignore instead of .dockerignore when it exists, and a
// wildcard that matches nothing copies nothing.
func TestDockerfileIgnoreFileWins(t *testing.T) {
	files := map[string]string{
		".dockerignore":                    "*\n!go.mod\n",
		"bundle.Dockerfile":                "FROM scratch\nCOPY bundle/manifests /manifests/\nCOPY bundle/metadata /metadata/\nCOPY *.txt /\n",
		"bundle/manifests/csv.yaml":        "kind: ClusterServiceVersion\n",
		"bundle/metadata/annotations.yaml": "annotations: {}\n",
		"bundle/tests/config.yaml":         "not copied\n",
		"go.mod":                           "module example.com/x\n",
	}
	dir := writeTree(t, files)
	if _, err := runCheck(t, dir, "bundle.Dockerfile"); err == nil || !strings.Contains(err.Error(), `"bundle/manifests": not found in the build context: `+filepath.Join(dir, ".dockerignore")+" excludes it") {
		t.Fatalf("with .dockerignore only: got %v, want bundle/manifests excluded", err)
	}

	if err := os.WriteFile(filepath.Join(dir, "bundle.Dockerfile.dockerignore"), []byte("*\n!bundle/manifests/\n!bundle/metadata/\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	log, err := runCheck(t, dir, "bundle.Dockerfile")
	if err != nil {
		t.Fatalf("with bundle.Dockerfile.dockerignore: %v\nlog:\n%s", err, log)
	}
	want := "2 files, filtered by " + filepath.Join(dir, "bundle.Dockerfile.dockerignore") + "\n  bundle/manifests/csv.yaml\n  bundle/metadata/annotations.yaml\n"
	if !strings.Contains(log, want) {
		t.Errorf("log lacks %q:\n%s", want, log)
	}
}

// What cannot be replayed faithfully is an error, never skipped.
func TestRefused(t *testing.T) {
	for _, tc := range []struct{ name, dockerfile, want string }{
		{"RUN of another command", "FROM {{GOLANG}}\nRUN apt-get update\n", `only go commands are replayed here, not "apt-get update"`},
		{"RUN with a pipe", "FROM {{GOLANG}}\nRUN go version | tee v\n", "only go commands, joined by && or run in sequence, are replayed here"},
		{"RUN writing outside the stage", "FROM {{GOLANG}}\nWORKDIR /src\nCOPY . .\nRUN go build -o /usr/local/bin/hello .\n", `"/usr/local/bin/hello": a path outside the stage's files`},
		{"RUN escaping the stage", "FROM {{GOLANG}}\nWORKDIR /src\nCOPY . .\nRUN go build -o ../../../hello .\n", `"../../../hello": a path outside the stage's files`},
		{"RUN in another image", "FROM alpine:3\nRUN go version\n", "whose files are not available here"},
		{"RUN in scratch", "FROM scratch\nRUN go version\n", "no shell to run it"},
		{"ADD", "FROM scratch\nADD main.go /\n", "ADD is not supported by this check"},
		{"another Go release", "FROM golang:1.1\n", "the image has Go 1.1 and the local Go is go"},
		{"a Go release not named", "FROM golang:latest\n", "the tag names no Go release"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			dir := writeTree(t, with(program, map[string]string{"Dockerfile": tc.dockerfile}))
			log, err := runCheck(t, dir, "Dockerfile")
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("got %v, want an error containing %q\nlog:\n%s", err, tc.want, log)
			}
		})
	}
}

func TestGolangImage(t *testing.T) {
	for _, tc := range []struct {
		ref, release string
		ok           bool
	}{
		{"golang:1.26", "1.26", true},
		{"golang:1.26.8-bookworm", "1.26.8", true},
		{"docker.io/library/golang:1.27rc1-alpine", "1.27", true},
		{"golang:1.26@sha256:0123", "1.26", true},
		{"golang", "", true},
		{"golang:bookworm", "", true},
		{"gcr.io/distroless/static:nonroot", "", false},
		{"registry:5000/golang:1.26", "", false},
	} {
		release, ok := golangImage(tc.ref)
		if release != tc.release || ok != tc.ok {
			t.Errorf("golangImage(%q) = %q, %v; want %q, %v", tc.ref, release, ok, tc.release, tc.ok)
		}
	}
	tc := toolchain{version: "go1.26.8"}
	for release, ok := range map[string]bool{"1.26": true, "1.26.8": true, "1.26.7": false, "1.2": false, "1.27": false, "1": false, "": false} {
		if err := tc.matches(release); (err == nil) != ok {
			t.Errorf("go1.26.8 matches %q: %v, want ok=%v", release, err, ok)
		}
	}
}
