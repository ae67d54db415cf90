package deploycheck

import (
	"bufio"
	"io"
	"io/fs"
	"os"
	"path"
	"path/filepath"
	"strings"
)

// Ignore is a .dockerignore: patterns matched against slash-separated paths
// relative to the build context. It supports what deploy's file uses:
// path.Match patterns anchored at the context's root, a leading **/ that
// matches at any depth, and ! exceptions; a pattern that matches a
// directory excludes everything below it.
type Ignore []string

// ParseIgnore reads a .dockerignore file.
func ParseIgnore(r io.Reader) (Ignore, error) {
	var ig Ignore
	sc := bufio.NewScanner(r)
	for sc.Scan() {
		line := strings.TrimSpace(sc.Text())
		if line == "" || strings.HasPrefix(line, "#") {
			continue
		}
		ig = append(ig, line)
	}
	return ig, sc.Err()
}

// Excluded reports whether the context path rel (slash-separated) is left
// out of the build context.
func (ig Ignore) Excluded(rel string) bool {
	out := false
	for _, p := range ig {
		neg := strings.HasPrefix(p, "!")
		p = strings.TrimPrefix(p, "!")
		if matchIgnore(p, rel) {
			out = !neg
		}
	}
	return out
}

// matchIgnore matches rel or any of its parent directories against p.
func matchIgnore(p, rel string) bool {
	for cand := rel; cand != "." && cand != "/" && cand != ""; cand = path.Dir(cand) {
		if rest, ok := strings.CutPrefix(p, "**/"); ok {
			segs := strings.Split(cand, "/")
			for i := range segs {
				if m, _ := path.Match(rest, strings.Join(segs[i:], "/")); m {
					return true
				}
			}
			continue
		}
		if m, _ := path.Match(p, cand); m {
			return true
		}
	}
	return false
}

// CopyContext copies the files of the directory src that ig leaves in the
// build context to dst, skipping .git (callers build with -buildvcs=false).
func CopyContext(src, dst string, ig Ignore) error {
	return filepath.WalkDir(src, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		rel, err := filepath.Rel(src, p)
		if err != nil || rel == "." {
			return err
		}
		rel = filepath.ToSlash(rel)
		if rel == ".git" || ig.Excluded(rel) {
			if d.IsDir() {
				return filepath.SkipDir
			}
			return nil
		}
		target := filepath.Join(dst, filepath.FromSlash(rel))
		switch {
		case d.IsDir():
			return os.MkdirAll(target, 0o755)
		case d.Type().IsRegular():
			data, err := os.ReadFile(p)
			if err != nil {
				return err
			}
			return os.WriteFile(target, data, 0o644)
		}
		return nil // symlinks and the like: the source tree has none
	})
}
