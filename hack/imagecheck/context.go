package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"slices"

	"github.com/moby/patternmatcher/ignorefile"
	"github.com/tonistiigi/fsutil"
)

// buildContext is the build context of one Dockerfile as BuildKit receives it: the context
// folder minus what the Dockerfile's ignore file excludes, copied into dir.
type buildContext struct {
	src        string          // the context folder on disk
	dir        string          // the copy, which COPY reads
	ignoreFile string          // the ignore file that decided it, relative to the working directory; "" if none
	entries    map[string]bool // every path in the copy, slash-separated, relative to dir
	files      []string        // the regular files and symlinks among them, sorted
}

// ignoreFileFor returns the ignore file BuildKit applies to a build of dockerfile from
// contextDir: `<dockerfile>.dockerignore` next to the Dockerfile when it exists, else the
// context's .dockerignore, else none ("").
func ignoreFileFor(contextDir, dockerfile string) (string, error) {
	for _, name := range []string{dockerfile + ".dockerignore", filepath.Join(contextDir, ".dockerignore")} {
		fi, err := os.Stat(name)
		if errors.Is(err, fs.ErrNotExist) {
			continue
		}
		if err != nil {
			return "", err
		}
		if fi.IsDir() {
			return "", fmt.Errorf("%s is a directory", name)
		}
		return name, nil
	}
	return "", nil
}

// assembleContext copies into dst what BuildKit's client sends as the build context of
// dockerfile: the patterns of its ignore file read by patternmatcher's ignorefile, and the
// context walked by fsutil's filter, the code BuildKit's file sync runs, which applies them
// with patternmatcher (including its rules for exceptions under excluded folders).
func assembleContext(ctx context.Context, contextDir, dockerfile, dst string) (*buildContext, error) {
	bc := &buildContext{src: contextDir, dir: dst, entries: map[string]bool{}}
	var excludes []string
	name, err := ignoreFileFor(contextDir, dockerfile)
	if err != nil {
		return nil, err
	}
	if name != "" {
		f, err := os.Open(name)
		if err != nil {
			return nil, err
		}
		excludes, err = ignorefile.ReadAll(f)
		if err := errors.Join(err, f.Close()); err != nil {
			return nil, fmt.Errorf("reading %s: %w", name, err)
		}
		bc.ignoreFile = name
	}
	if err := os.MkdirAll(dst, 0o750); err != nil {
		return nil, err
	}
	err = fsutil.WalkDir(ctx, contextDir, &fsutil.FilterOpt{ExcludePatterns: excludes}, func(rel string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		bc.entries[filepath.ToSlash(rel)] = true
		return materialize(filepath.Join(contextDir, rel), filepath.Join(dst, rel), d)
	})
	if err != nil {
		return nil, fmt.Errorf("walking the build context %s: %w", contextDir, err)
	}
	for rel := range bc.entries {
		if fi, err := os.Lstat(filepath.Join(dst, filepath.FromSlash(rel))); err == nil && !fi.IsDir() {
			bc.files = append(bc.files, rel)
		}
	}
	slices.Sort(bc.files)
	return bc, nil
}

// materialize copies one entry of the context: a folder, a regular file with its mode, or a
// symlink as a symlink (the context carries links, not their targets).
func materialize(src, dst string, d fs.DirEntry) error {
	info, err := d.Info()
	if err != nil {
		return err
	}
	switch {
	case info.IsDir():
		return os.MkdirAll(dst, 0o750)
	case info.Mode()&fs.ModeSymlink != 0:
		target, err := os.Readlink(src)
		if err != nil {
			return err
		}
		return os.Symlink(target, dst)
	case info.Mode().IsRegular():
		return copyFile(src, dst, info.Mode().Perm())
	default:
		return nil // sockets, devices: nothing a build copies
	}
}

// copyFile copies the regular file src to the new file dst, with mode perm.
func copyFile(src, dst string, perm fs.FileMode) error {
	in, err := os.Open(src)
	if err != nil {
		return err
	}
	out, err := os.OpenFile(dst, os.O_WRONLY|os.O_CREATE|os.O_EXCL, perm)
	if err != nil {
		return errors.Join(err, in.Close())
	}
	_, err = io.Copy(out, in)
	return errors.Join(err, out.Close(), in.Close())
}
