package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"go/build"
	"maps"
	"os"
	"os/exec"
	"path"
	"path/filepath"
	"regexp"
	"slices"
	"strings"

	"github.com/moby/buildkit/frontend/dockerfile/instructions"
	"mvdan.cc/sh/v3/expand"
	"mvdan.cc/sh/v3/syntax"
)

// toolchain is the local Go, which stands in for a golang image's.
type toolchain struct {
	goBin    string   // the go command
	version  string   // its release, e.g. go1.26.8
	settings []string // where it downloads and caches, as this machine has it set up
}

// toolchainSettings are the go env settings a replayed command keeps from this machine: the
// module proxy and checksum database it may use, and its caches, so that a replay downloads
// nothing twice. Nothing else of this machine's Go configuration reaches the command.
var toolchainSettings = []string{"GOPATH", "GOMODCACHE", "GOCACHE", "GOPROXY", "GOSUMDB", "GONOSUMDB", "GOPRIVATE", "GONOPROXY", "GOINSECURE"}

func findToolchain(ctx context.Context) (toolchain, error) {
	goBin, err := exec.LookPath("go")
	if err != nil {
		return toolchain{}, err
	}
	out, err := exec.CommandContext(ctx, goBin, append([]string{"env", "-json", "GOROOT", "GOVERSION"}, toolchainSettings...)...).Output()
	if err != nil {
		return toolchain{}, fmt.Errorf("go env: %w", err)
	}
	var env map[string]string
	if err := json.Unmarshal(out, &env); err != nil {
		return toolchain{}, fmt.Errorf("go env: %w", err)
	}
	t := toolchain{goBin: filepath.Join(env["GOROOT"], "bin", "go"), version: env["GOVERSION"]}
	for _, k := range toolchainSettings {
		t.settings = append(t.settings, k+"="+env[k])
	}
	return t, nil
}

// golangTag matches the tags of the official golang images that name a release: 1.26,
// 1.26.8, 1.26-alpine, 1.27rc1-bookworm.
var golangTag = regexp.MustCompile(`^([0-9]+(?:\.[0-9]+)*)(?:rc[0-9]+)?(?:-.+)?$`)

// golangImage reports whether ref is the official golang image, and which Go release its tag
// names ("" when the tag names none, such as latest).
func golangImage(ref string) (release string, ok bool) {
	ref, _, _ = strings.Cut(ref, "@")
	repo, tag := ref, ""
	if i := strings.LastIndex(ref, ":"); i > strings.LastIndex(ref, "/") {
		repo, tag = ref[:i], ref[i+1:]
	}
	switch repo {
	case "golang", "library/golang", "docker.io/golang", "docker.io/library/golang", "index.docker.io/library/golang":
	default:
		return "", false
	}
	if m := golangTag.FindStringSubmatch(tag); m != nil {
		return m[1], true
	}
	return "", true
}

// matches fails unless the local Go is of the release an image tag names (1.26 is any 1.26.x;
// 1.26.8 only itself): another Go would not show what the image's Go shows.
func (t toolchain) matches(release string) error {
	local := strings.TrimPrefix(t.version, "go")
	if release == "" || !strings.Contains(release, ".") {
		return fmt.Errorf("the tag names no Go release (major.minor): it cannot be replayed with the local %s", t.version)
	}
	if local != release && !strings.HasPrefix(local, release+".") {
		return fmt.Errorf("the image has Go %s and the local Go is %s: a replay with another Go would not show what Docker shows", release, t.version)
	}
	return nil
}

// env is the environment a replayed go command starts from, before the stage's ARG and ENV:
// the golang image's (GOTOOLCHAIN=local, go's defaults for the stage's platform), this
// machine's PATH (for a C compiler, as the image has one) and the download and cache settings.
// GOENV=off keeps this machine's go env file (GOFLAGS and the like) out.
func (t toolchain) env(p platform) []string {
	env := []string{
		"PATH=" + filepath.Dir(t.goBin) + string(filepath.ListSeparator) + os.Getenv("PATH"),
		"GOENV=off", "GOTOOLCHAIN=local", "GOOS=" + p.os, "GOARCH=" + p.arch,
	}
	for _, k := range []string{"HOME", "TMPDIR"} {
		if v, ok := os.LookupEnv(k); ok {
			env = append(env, k+"="+v)
		}
	}
	return append(env, t.settings...)
}

// commandError is a replayed go command that failed, as it would in docker build.
type commandError struct {
	argv    []string
	err     error
	output  string
	missing []string // Go files that did not reach the stage (missingGoFiles)
	target  string   // the GOOS/GOARCH it built for
	stage   string
}

func (e *commandError) Error() string {
	var b strings.Builder
	name := e.argv[0]
	if len(e.argv) > 1 {
		name += " " + e.argv[1]
	}
	fmt.Fprintf(&b, "%s failed: %v", name, e.err)
	if e.output != "" {
		b.WriteString("\n" + strings.TrimRight(e.output, "\n"))
	}
	if len(e.missing) > 0 {
		fmt.Fprintf(&b, "\nGo files that go would compile for %s but that are not in stage %s:", e.target, e.stage)
		for _, m := range e.missing {
			b.WriteString("\n  " + m)
		}
	}
	return b.String()
}

// runCommand replays a RUN of a golang stage when it runs only go commands. RUN elsewhere needs
// an image's files (a shell, tools) that are not available here.
func (r *replay) runCommand(ctx context.Context, st *stage, c *instructions.RunCommand) error {
	if !st.goImage {
		if st.image == "" {
			return errors.New("a stage FROM scratch has no shell to run it")
		}
		return fmt.Errorf("it would run in %s, whose files are not available here: only RUN in golang images is replayed, with the local Go", st.image)
	}
	for _, f := range c.FlagsUsed {
		if f != "mount" {
			return fmt.Errorf("RUN --%s is not supported by this check", f)
		}
	}
	for _, m := range instructions.GetMounts(c) {
		// A cache mount keeps go's caches between builds; a build gives the same result without.
		if m.Type != instructions.MountTypeCache {
			return fmt.Errorf("RUN --mount=type=%s is not supported by this check", m.Type)
		}
	}
	if len(c.Files) > 0 {
		return errors.New("RUN with a here-document is not supported by this check")
	}
	env := st.vars()
	if !c.PrependShell {
		return r.exec(ctx, st, env, c.CmdLine) // exec form: the words as written, no shell
	}
	return r.shell(ctx, st, env, strings.Join(c.CmdLine, " "))
}

// shell replays a RUN in shell form, which Docker runs with /bin/sh -c. The command is parsed
// as POSIX sh (mvdan.cc/sh) and replayed when it is go commands only: simple commands,
// optionally preceded by variable assignments, joined by && or run in sequence, whose words
// expand as sh expands them (variables, ${X:-default}, quotes; no globs, no command
// substitution). As with sh, the status of a sequence is its last command's.
func (r *replay) shell(ctx context.Context, st *stage, env *vars, script string) error {
	f, err := syntax.NewParser(syntax.Variant(syntax.LangPOSIX)).Parse(strings.NewReader(script), "")
	if err != nil {
		return fmt.Errorf("parsing it as sh: %w", err)
	}
	for _, s := range f.Stmts {
		if err := supported(s); err != nil {
			return err
		}
	}
	var last error
	for _, s := range f.Stmts {
		last = r.stmt(ctx, st, env, s)
		var ce *commandError
		if last != nil && !errors.As(last, &ce) {
			return last
		}
	}
	return last
}

func (r *replay) stmt(ctx context.Context, st *stage, env *vars, s *syntax.Stmt) error {
	switch c := s.Cmd.(type) {
	case *syntax.BinaryCmd: // && (supported checked it)
		if err := r.stmt(ctx, st, env, c.X); err != nil {
			return err
		}
		return r.stmt(ctx, st, env, c.Y)
	case *syntax.CallExpr:
		cfg := &expand.Config{Env: expand.ListEnviron(env.list()...)}
		cmdEnv := env.merge(&vars{})
		for _, a := range c.Assigns {
			val, err := expand.Literal(cfg, a.Value)
			if err != nil {
				return fmt.Errorf("expanding %s: %w", a.Name.Value, err)
			}
			cmdEnv.set(a.Name.Value, val)
		}
		argv, err := expand.Fields(cfg, c.Args...)
		if err != nil {
			return fmt.Errorf("expanding the command: %w", err)
		}
		return r.exec(ctx, st, cmdEnv, argv)
	}
	return fmt.Errorf("unexpected %T", s.Cmd)
}

// supported refuses what the replay does not do: pipes, redirections, subshells, control
// flow, command substitution, globs.
func supported(s *syntax.Stmt) error {
	const only = "only go commands, joined by && or run in sequence, are replayed here"
	if s.Negated || s.Background || s.Coprocess || s.Disown || len(s.Redirs) > 0 {
		return fmt.Errorf("%s: no !, redirections or background jobs", only)
	}
	switch c := s.Cmd.(type) {
	case *syntax.BinaryCmd:
		if c.Op != syntax.AndStmt {
			return fmt.Errorf("%s, not %s", only, c.Op)
		}
		if err := supported(c.X); err != nil {
			return err
		}
		return supported(c.Y)
	case *syntax.CallExpr:
		if len(c.Args) == 0 {
			return fmt.Errorf("%s: a statement that only sets variables is not", only)
		}
		words := slices.Clone(c.Args)
		for _, a := range c.Assigns {
			if a.Append || a.Naked || a.Index != nil || a.Array != nil {
				return fmt.Errorf("%s: assignment to %s is not a plain NAME=value", only, a.Name.Value)
			}
			if a.Value != nil {
				words = append(words, a.Value)
			}
		}
		for _, w := range words {
			if err := supportedWord(w); err != nil {
				return err
			}
		}
		return nil
	}
	return fmt.Errorf("%s, not a %T", only, s.Cmd)
}

func supportedWord(w *syntax.Word) error {
	var err error
	syntax.Walk(w, func(n syntax.Node) bool {
		switch n.(type) {
		case *syntax.CmdSubst, *syntax.ProcSubst, *syntax.ArithmExp, *syntax.ExtGlob, *syntax.BraceExp:
			err = errors.New("command substitution, arithmetic and brace expansion are not replayed here")
		}
		return err == nil
	})
	if err != nil {
		return err
	}
	for i, part := range w.Parts {
		if lit, ok := part.(*syntax.Lit); ok && (strings.ContainsAny(lit.Value, "*?[") || i == 0 && strings.HasPrefix(lit.Value, "~")) {
			return fmt.Errorf("%q: globs and ~ are not expanded here; quote the word", lit.Value)
		}
	}
	return nil
}

// exec runs one go command in the stage's WORKDIR. Paths in its words and Go settings must
// stay inside the stage: it runs in a folder of this machine, not in a container, so an
// absolute path would be this machine's.
func (r *replay) exec(ctx context.Context, st *stage, env *vars, argv []string) error {
	if len(argv) == 0 || argv[0] != "go" {
		return fmt.Errorf("only go commands are replayed here, not %q", strings.Join(argv, " "))
	}
	dir := filepath.Join(st.root, filepath.FromSlash(st.workdir))
	for _, a := range argv[1:] {
		if escapes(st.root, dir, a) {
			return fmt.Errorf("%q: a path outside the stage's files cannot be replayed here", a)
		}
	}
	for _, k := range env.keys {
		if strings.HasPrefix(k, "GO") && escapes(st.root, dir, env.m[k]) {
			return fmt.Errorf("%s=%s: a path outside the stage's files cannot be replayed here", k, env.m[k])
		}
	}
	cmd := exec.CommandContext(ctx, r.o.toolchain.goBin, argv[1:]...)
	cmd.Dir = dir
	cmd.Env = append(r.o.toolchain.env(st.platform), env.list()...)
	out, err := cmd.CombinedOutput()
	if err == nil {
		return nil
	}
	goos, goarch := lookup(cmd.Env, "GOOS", st.platform.os), lookup(cmd.Env, "GOARCH", st.platform.arch)
	return &commandError{
		argv: argv, err: err, output: string(out),
		missing: r.missingGoFiles(st, goos, goarch, lookup(cmd.Env, "CGO_ENABLED", "1") != "0"),
		target:  goos + "/" + goarch, stage: st.String(),
	}
}

// escapes reports whether a word, or its value when it is a -flag=value, is a path that leads
// out of root when go resolves it from dir.
func escapes(root, dir, word string) bool {
	if strings.HasPrefix(word, "-") {
		_, v, ok := strings.Cut(word, "=")
		if !ok {
			return false
		}
		word = v
	}
	if filepath.IsAbs(word) {
		return true
	}
	rel, err := filepath.Rel(root, filepath.Join(dir, word))
	return err != nil || rel == ".." || strings.HasPrefix(rel, ".."+string(filepath.Separator))
}

// lookup returns the last value of k in env, or def when it is unset or empty (as go reads it).
func lookup(env []string, k, def string) string {
	v := def
	for _, kv := range env {
		if key, val, _ := strings.Cut(kv, "="); key == k {
			v = val
		}
	}
	if v == "" {
		return def
	}
	return v
}

// missingGoFiles names, for each folder of the stage holding Go files copied from the build
// context, the Go files of the context folder they came from that go would compile for
// goos/goarch, but that are not in the stage, and why: excluded by the ignore file, or left
// out by the COPY instructions.
func (r *replay) missingGoFiles(st *stage, goos, goarch string, cgo bool) []string {
	from := map[string]map[string]bool{} // stage folder -> context folders its Go files came from
	for p, o := range st.origin {
		if strings.HasSuffix(p, ".go") {
			if from[path.Dir(p)] == nil {
				from[path.Dir(p)] = map[string]bool{}
			}
			from[path.Dir(p)][path.Dir(o)] = true
		}
	}
	bctx := build.Default
	bctx.GOOS, bctx.GOARCH, bctx.CgoEnabled = goos, goarch, cgo
	var out []string
	for _, stageDir := range slices.Sorted(maps.Keys(from)) {
		for _, srcDir := range slices.Sorted(maps.Keys(from[stageDir])) {
			entries, err := os.ReadDir(filepath.Join(r.bc.src, filepath.FromSlash(srcDir)))
			if err != nil {
				continue
			}
			for _, e := range entries {
				name := e.Name()
				if e.IsDir() || !strings.HasSuffix(name, ".go") || strings.HasSuffix(name, "_test.go") {
					continue
				}
				if ok, err := bctx.MatchFile(filepath.Join(r.bc.src, filepath.FromSlash(srcDir)), name); err != nil || !ok {
					continue
				}
				if _, err := os.Lstat(filepath.Join(st.root, filepath.FromSlash(stageDir), name)); err == nil {
					continue
				}
				ctxPath := path.Join(srcDir, name)
				why := "in the build context, but no COPY puts it in " + stageDir
				if !r.bc.entries[ctxPath] {
					why = "excluded from the build context by " + r.bc.ignoreFile
				}
				out = append(out, ctxPath+": "+why)
			}
		}
	}
	return out
}
