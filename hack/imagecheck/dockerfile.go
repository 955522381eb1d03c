package main

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path"
	"path/filepath"
	"runtime"
	"strconv"
	"strings"

	"github.com/moby/buildkit/frontend/dockerfile/instructions"
	"github.com/moby/buildkit/frontend/dockerfile/linter"
	"github.com/moby/buildkit/frontend/dockerfile/parser"
	"github.com/moby/buildkit/frontend/dockerfile/shell"
	"github.com/moby/buildkit/util/system"
	"github.com/tonistiigi/fsutil"
	fscopy "github.com/tonistiigi/fsutil/copy"
)

// options are what one check needs.
type options struct {
	contextDir string    // the build context folder (docker build's last argument)
	dockerfile string    // the Dockerfile (docker build -f)
	platform   platform  // the target platform (docker build --platform)
	toolchain  toolchain // the local Go, which replays golang stages
	log        io.Writer // progress and warnings
	list       bool      // also print every file of the build context
}

// platform is an OCI platform: os/arch[/variant].
type platform struct{ os, arch, variant string }

func parsePlatform(s string) (platform, error) {
	parts := strings.Split(s, "/")
	if len(parts) < 2 || len(parts) > 3 || parts[0] == "" || parts[1] == "" {
		return platform{}, fmt.Errorf("platform %q: want os/arch[/variant]", s)
	}
	p := platform{os: parts[0], arch: parts[1]}
	if len(parts) == 3 {
		p.variant = parts[2]
	}
	return p, nil
}

// defaultPlatform is the platform docker build targets without --platform: the builder's, here
// this machine's architecture (images are Linux).
func defaultPlatform() platform { return platform{os: "linux", arch: runtime.GOARCH} }

func (p platform) String() string {
	if p.variant != "" {
		return p.os + "/" + p.arch + "/" + p.variant
	}
	return p.os + "/" + p.arch
}

// platformArgs are BuildKit's automatic platform ARGs (dockerfile2llb's defaultArgs), with the
// build platform taken to be the target one, as on a builder of that platform.
func platformArgs(p platform) *vars {
	v := &vars{}
	for _, kv := range [][2]string{
		{"BUILDPLATFORM", p.String()}, {"BUILDOS", p.os}, {"BUILDOSVERSION", ""}, {"BUILDARCH", p.arch}, {"BUILDVARIANT", p.variant},
		{"TARGETPLATFORM", p.String()}, {"TARGETOS", p.os}, {"TARGETOSVERSION", ""}, {"TARGETARCH", p.arch}, {"TARGETVARIANT", p.variant},
		{"TARGETSTAGE", "default"},
	} {
		v.set(kv[0], kv[1])
	}
	return v
}

// vars are variables in the order they were set; they are the environment BuildKit's lexer
// expands instructions with (shell.EnvGetter).
type vars struct {
	keys []string
	m    map[string]string
}

func (v *vars) Get(k string) (string, bool) {
	val, ok := v.m[k]
	return val, ok
}

func (v *vars) Keys() []string { return v.keys }

func (v *vars) set(k, val string) {
	if v.m == nil {
		v.m = map[string]string{}
	}
	if _, ok := v.m[k]; !ok {
		v.keys = append(v.keys, k)
	}
	v.m[k] = val
}

// merge returns v with w's variables set over it.
func (v *vars) merge(w *vars) *vars {
	out := &vars{}
	for _, x := range []*vars{v, w} {
		for _, k := range x.keys {
			out.set(k, x.m[k])
		}
	}
	return out
}

// list returns the variables as KEY=value, for a process's environment.
func (v *vars) list() []string {
	out := make([]string, 0, len(v.keys))
	for _, k := range v.keys {
		out = append(out, k+"="+v.m[k])
	}
	return out
}

// stage is one build stage being replayed: its filesystem as far as it is known here.
type stage struct {
	def      *instructions.Stage
	index    int
	base     string   // what FROM names, expanded
	parent   *stage   // the stage FROM names, if it names one
	image    string   // the image the stage is built on, directly or through parent; "" for scratch
	goImage  bool     // image is a golang image: its RUN commands that run go can be replayed
	platform platform // the stage's platform (FROM --platform, else the target's)
	root     string   // the stage's filesystem: only what COPY and RUN put there, never the image's
	workdir  string
	env      *vars             // ENV, inherited by stages built on this one
	args     *vars             // ARG values in scope
	origin   map[string]string // file in root ("/workspace/main.go") -> build context path it came from
}

func (s *stage) String() string {
	if s.def.Name != "" {
		return s.def.Name
	}
	return strconv.Itoa(s.index)
}

// vars is what instructions of the stage are expanded with: ARG values, then ENV over them
// (an ENV wins over an ARG of the same name).
func (s *stage) vars() *vars { return s.args.merge(s.env) }

// replay is one Dockerfile's build, replayed.
type replay struct {
	o      options
	log    *logger
	bc     *buildContext
	tmp    string
	lex    *shell.Lex
	meta   *vars // the ARGs before the first FROM, with the automatic platform ARGs
	defs   []instructions.Stage
	stages []*stage
}

// logger writes check's progress and warnings to w, and keeps the first write that failed, which
// check reports: a check whose log was lost must not pass for one that had nothing to say.
type logger struct {
	w   io.Writer
	err error
}

func (l *logger) printf(format string, args ...any) {
	if l.err != nil {
		return
	}
	if _, err := fmt.Fprintf(l.w, format, args...); err != nil {
		l.err = fmt.Errorf("writing the log: %w", err)
	}
}

// check replays the build of o.dockerfile from o.contextDir as far as it can be replayed without
// Docker, and returns where and why docker build would fail.
func check(ctx context.Context, o options) (err error) {
	log := &logger{w: o.log}
	tmp, err := os.MkdirTemp("", "imagecheck-")
	if err != nil {
		return err
	}
	defer func() { err = errors.Join(err, log.err, os.RemoveAll(tmp)) }()

	bc, err := assembleContext(ctx, o.contextDir, o.dockerfile, filepath.Join(tmp, "context"))
	if err != nil {
		return err
	}
	from := "no ignore file"
	if bc.ignoreFile != "" {
		from = "filtered by " + bc.ignoreFile
	}
	log.printf("%s: build context %s: %d files, %s\n", o.dockerfile, o.contextDir, len(bc.files), from)
	if o.list {
		for _, f := range bc.files {
			log.printf("  %s\n", f)
		}
	}

	data, err := os.ReadFile(o.dockerfile)
	if err != nil {
		return err
	}
	parsed, err := parser.Parse(bytes.NewReader(data))
	if err != nil {
		return fmt.Errorf("%s: %w", o.dockerfile, err)
	}
	for _, w := range parsed.Warnings {
		log.printf("%s: warning: %s\n", location(o.dockerfile, locationOf(w.Location)), w.Short)
	}
	lint := linter.New(&linter.Config{Warn: func(rule, _, _, msg string, loc []parser.Range) {
		log.printf("%s: warning: %s: %s\n", location(o.dockerfile, loc), rule, msg)
	}})
	defs, metaArgs, err := instructions.Parse(parsed.AST, lint)
	if err != nil {
		return fmt.Errorf("%s: %w", o.dockerfile, err)
	}
	if len(defs) == 0 {
		return fmt.Errorf("%s: no build stage", o.dockerfile)
	}
	r := &replay{o: o, log: log, bc: bc, tmp: tmp, lex: shell.NewLex(parsed.EscapeToken), defs: defs}
	if err := r.setMeta(metaArgs); err != nil {
		return err
	}
	return r.run(ctx)
}

// setMeta evaluates the ARGs before the first FROM, which FROM lines may use.
func (r *replay) setMeta(args []instructions.ArgCommand) error {
	r.meta = platformArgs(r.o.platform)
	for i := range args {
		a := &args[i]
		if err := a.Expand(r.expander(r.meta)); err != nil {
			return r.errorAt(a, err)
		}
		for _, kv := range a.Args {
			if kv.Value != nil {
				r.meta.set(kv.Key, *kv.Value)
			}
		}
	}
	return nil
}

// run replays the stages the last one (docker build's default target) depends on, in order.
func (r *replay) run(ctx context.Context) error {
	for i := range r.defs {
		st, err := r.newStage(i)
		if err != nil {
			return err
		}
		r.stages = append(r.stages, st)
	}
	needed := r.needed(len(r.stages)-1, map[int]bool{})
	for _, st := range r.stages {
		if !needed[st.index] {
			continue
		}
		if err := r.replayStage(ctx, st); err != nil {
			return err
		}
	}
	return nil
}

// newStage reads stage i's FROM. A stage built on another starts, when it is replayed, from
// what that one ended with: its files, WORKDIR and ENV.
func (r *replay) newStage(i int) (*stage, error) {
	def := &r.defs[i]
	st := &stage{def: def, index: i, platform: r.o.platform, workdir: "/", env: &vars{}, args: &vars{}, origin: map[string]string{}}
	base, err := r.expand(def.BaseName, r.meta)
	if err != nil {
		return nil, fmt.Errorf("%s: FROM %s: %w", location(r.o.dockerfile, def.Location), def.BaseName, err)
	}
	st.base = base
	if def.Platform != "" {
		p, err := r.expand(def.Platform, r.meta)
		if err == nil {
			st.platform, err = parsePlatform(p)
		}
		if err != nil {
			return nil, fmt.Errorf("%s: FROM --platform=%s: %w", location(r.o.dockerfile, def.Location), def.Platform, err)
		}
	}
	if parent := r.stageNamed(base, i); parent != nil {
		st.parent = parent
		st.image, st.goImage = parent.image, parent.goImage
		if def.Platform == "" {
			st.platform = parent.platform
		}
		return st, nil
	}
	if base != "scratch" {
		st.image = base
		_, st.goImage = golangImage(base)
	}
	return st, nil
}

// stageNamed returns the stage before stage `before` that name refers to (by name, or by index
// as COPY --from allows), or nil when name is not a stage but an image.
func (r *replay) stageNamed(name string, before int) *stage {
	for _, st := range r.stages[:before] {
		if st.def.Name != "" && strings.EqualFold(st.def.Name, name) {
			return st
		}
	}
	if n, err := strconv.Atoi(name); err == nil && n >= 0 && n < before {
		return r.stages[n]
	}
	return nil
}

// needed returns the indexes of stage i and of the stages it depends on: BuildKit builds
// only those.
func (r *replay) needed(i int, seen map[int]bool) map[int]bool {
	if seen[i] {
		return seen
	}
	seen[i] = true
	st := r.stages[i]
	if st.parent != nil {
		r.needed(st.parent.index, seen)
	}
	for _, cmd := range st.def.Commands {
		if c, ok := cmd.(*instructions.CopyCommand); ok && c.From != "" {
			from, err := r.expand(c.From, r.meta)
			if err != nil {
				continue // reported when the COPY is replayed
			}
			if dep := r.stageNamed(from, i); dep != nil {
				r.needed(dep.index, seen)
			}
		}
	}
	return seen
}

func (r *replay) replayStage(ctx context.Context, st *stage) error {
	st.root = filepath.Join(r.tmp, "stage-"+strconv.Itoa(st.index))
	if err := os.MkdirAll(st.root, 0o750); err != nil {
		return err
	}
	kind := "replayed"
	switch {
	case st.parent != nil:
		if err := fscopy.Copy(ctx, st.parent.root, "/", st.root, "/", fscopy.WithCopyInfo(fscopy.CopyInfo{CopyDirContents: true})); err != nil {
			return fmt.Errorf("stage %s: copying stage %s: %w", st, st.parent, err)
		}
		for k, v := range st.parent.origin {
			st.origin[k] = v
		}
		st.workdir, st.env = st.parent.workdir, st.parent.env.merge(&vars{})
	case st.goImage:
		release, _ := golangImage(st.image)
		if err := r.o.toolchain.matches(release); err != nil {
			return fmt.Errorf("%s: FROM %s: %w", location(r.o.dockerfile, st.def.Location), st.base, err)
		}
		kind = "replayed with the local " + r.o.toolchain.version
	case st.image != "":
		kind = "its image's files are not available here: only what it copies is checked"
	}
	r.log.printf("  stage %s (FROM %s, %s): %s\n", st, st.base, st.platform, kind)

	for _, cmd := range st.def.Commands {
		if ex, ok := cmd.(instructions.SupportsSingleWordExpansion); ok {
			if err := ex.Expand(r.expander(st.vars())); err != nil {
				return r.errorAt(cmd, err)
			}
		}
		if err := r.dispatch(ctx, st, cmd); err != nil {
			return r.errorAt(cmd, err)
		}
	}
	return nil
}

// dispatch replays one instruction. Those that only set the image's configuration change
// nothing a build reads; ADD and SHELL are refused rather than guessed at.
func (r *replay) dispatch(ctx context.Context, st *stage, cmd instructions.Command) error {
	switch c := cmd.(type) {
	case *instructions.ArgCommand:
		for _, kv := range c.Args {
			switch val, meta := r.meta.Get(kv.Key); {
			case kv.Value != nil:
				st.args.set(kv.Key, *kv.Value)
			case meta: // a global ARG, or an automatic platform ARG, declared in the stage
				st.args.set(kv.Key, val)
			}
		}
	case *instructions.EnvCommand:
		for _, kv := range c.Env {
			st.env.set(kv.Key, kv.Value)
		}
	case *instructions.WorkdirCommand:
		wd, err := system.NormalizeWorkdir(st.workdir, c.Path, "linux")
		if err != nil {
			return err
		}
		st.workdir = wd
		return os.MkdirAll(filepath.Join(st.root, filepath.FromSlash(wd)), 0o750)
	case *instructions.CopyCommand:
		r.log.printf("    %s\n", c)
		return r.copy(ctx, st, c)
	case *instructions.RunCommand:
		r.log.printf("    %s\n", c)
		return r.runCommand(ctx, st, c)
	case *instructions.LabelCommand, *instructions.UserCommand, *instructions.EntrypointCommand,
		*instructions.CmdCommand, *instructions.ExposeCommand, *instructions.VolumeCommand,
		*instructions.StopSignalCommand, *instructions.HealthCheckCommand,
		*instructions.MaintainerCommand, *instructions.OnbuildCommand:
		// The image's configuration. (USER would also set who RUN runs as: here, this user.)
	default:
		return fmt.Errorf("%s is not supported by this check", strings.ToUpper(cmd.Name()))
	}
	return nil
}

// copy replays a COPY as BuildKit's file operation does it, with fsutil's copy (BuildKit's
// backend): sources relative to the context or the --from stage, wildcards allowed and allowed
// to match nothing, a folder's contents copied into the destination, which is relative to
// WORKDIR. A source that does not exist is an error, as in Docker.
func (r *replay) copy(ctx context.Context, st *stage, c *instructions.CopyCommand) error {
	switch {
	case c.Parents:
		return errors.New("COPY --parents is not supported by this check")
	case len(c.ExcludePatterns) > 0:
		return errors.New("COPY --exclude is not supported by this check")
	case len(c.SourceContents) > 0:
		return errors.New("COPY of a here-document is not supported by this check")
	}
	srcRoot, from := r.bc.dir, (*stage)(nil)
	if c.From != "" {
		name, err := r.expand(c.From, r.meta)
		if err != nil {
			return err
		}
		if from = r.stageNamed(name, st.index); from == nil {
			return fmt.Errorf("--from=%s names an image, not an earlier stage of %s: its files are not available here", name, r.o.dockerfile)
		}
		srcRoot = from.root
	}
	dest := c.DestPath
	if dest == "." || dest == "" {
		dest = "./"
	}
	dest, err := system.NormalizePath(st.workdir, dest, "linux", true)
	if err != nil {
		return err
	}
	dest = cleanPath(dest)
	for _, src := range c.SourcePaths {
		srcPath := path.Join("/", src)
		matches, err := fscopy.ResolveWildcards(srcRoot, srcPath, true)
		if err != nil {
			return err
		}
		if !containsWildcards(srcPath) {
			if _, err := os.Stat(filepath.Join(srcRoot, filepath.FromSlash(srcPath))); err != nil {
				return r.missing(from, strings.TrimPrefix(srcPath, "/"), err)
			}
		}
		for _, m := range matches {
			if err := r.copyOne(ctx, st, from, srcRoot, path.Join("/", m), dest); err != nil {
				return err
			}
		}
	}
	return nil
}

// copyOne copies one resolved source and records where each file it wrote came from.
func (r *replay) copyOne(ctx context.Context, st *stage, from *stage, srcRoot, src, dest string) error {
	fi, err := os.Stat(filepath.Join(srcRoot, filepath.FromSlash(src)))
	if err != nil {
		return r.missing(from, strings.TrimPrefix(src, "/"), err)
	}
	destDir := path.Clean(dest)
	record := func(_ fsutil.ChangeKind, p string, info os.FileInfo, _ error) error {
		if info == nil || !info.Mode().IsRegular() {
			return nil
		}
		p = filepath.ToSlash(p)
		srcFile := src
		if fi.IsDir() {
			// A folder's contents go into the destination itself.
			srcFile = path.Join(src, strings.TrimPrefix(strings.TrimPrefix(p, destDir), "/"))
		}
		if from == nil {
			st.origin[p] = strings.TrimPrefix(srcFile, "/")
		} else if o, ok := from.origin[srcFile]; ok {
			st.origin[p] = o
		}
		return nil
	}
	return fscopy.Copy(ctx, srcRoot, src, st.root, dest, fscopy.WithCopyInfo(fscopy.CopyInfo{
		CopyDirContents: true,
		FollowLinks:     true,
		ChangeFunc:      record,
	}))
}

// missing explains a COPY source that is not there: excluded from the context by its ignore
// file, absent from the context folder, or not produced by the --from stage.
func (r *replay) missing(from *stage, p string, err error) error {
	if !errors.Is(err, fs.ErrNotExist) {
		return err
	}
	if from != nil {
		why := ""
		if from.image != "" {
			why = fmt.Sprintf(" (it may come from its image %s, whose files are not available here)", from.image)
		}
		return fmt.Errorf("%q: not found in stage %s%s", "/"+p, from, why)
	}
	if _, statErr := os.Lstat(filepath.Join(r.bc.src, filepath.FromSlash(p))); statErr == nil && r.bc.ignoreFile != "" {
		return fmt.Errorf("%q: not found in the build context: %s excludes it", p, r.bc.ignoreFile)
	}
	return fmt.Errorf("%q: not found in the build context: there is no such file in %s", p, r.bc.src)
}

// cleanPath is BuildKit's cleaning of a file operation's destination
// (solver/llbsolver/file/backend.go): rooted, and a trailing "/" or "/." kept, since it means
// "into this folder".
func cleanPath(s string) string {
	s2 := path.Join("/", s)
	switch {
	case strings.HasSuffix(s, "/."):
		if s2 != "/" {
			s2 += "/"
		}
		s2 += "."
	case strings.HasSuffix(s, "/") && s2 != "/":
		s2 += "/"
	}
	return s2
}

// containsWildcards is fsutil's test of a COPY source for wildcards (copy/copy.go).
func containsWildcards(name string) bool {
	for i := 0; i < len(name); i++ {
		switch name[i] {
		case '\\':
			i++
		case '*', '?', '[':
			return true
		}
	}
	return false
}

// expand expands a word with vars as BuildKit's lexer does; an unset variable is empty.
func (r *replay) expand(word string, env *vars) (string, error) {
	res, err := r.lex.ProcessWordWithMatches(word, env)
	return res.Result, err
}

func (r *replay) expander(env *vars) instructions.SingleWordExpander {
	return func(word string) (string, error) { return r.expand(word, env) }
}

// errorAt prefixes err with the Dockerfile line and the instruction.
func (r *replay) errorAt(cmd instructions.Command, err error) error {
	loc := location(r.o.dockerfile, nil)
	src := cmd.Name()
	if c, ok := cmd.(interface {
		Location() []parser.Range
		String() string
	}); ok {
		loc, src = location(r.o.dockerfile, c.Location()), c.String()
	}
	return fmt.Errorf("%s: %s: %w", loc, src, err)
}

func location(file string, loc []parser.Range) string {
	if len(loc) == 0 {
		return file
	}
	return file + ":" + strconv.Itoa(loc[0].Start.Line)
}

func locationOf(r *parser.Range) []parser.Range {
	if r == nil {
		return nil
	}
	return []parser.Range{*r}
}
