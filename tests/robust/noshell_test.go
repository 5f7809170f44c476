package robust_test

import (
	"go/parser"
	"go/token"
	"io/fs"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
)

// testOnlyDirs hold helpers for tests and tools, which may start processes.
var testOnlyDirs = []string{"tests", "guest", "internal/testenv", "internal/guesttest", ".cache", "scripts"}

// pluginRunner is the one production file that starts processes: the CNI
// plugins, found only in the CNI path and run directly, with no shell.
const pluginRunner = "internal/ipam/exec.go"

// TestNoProcessesInProduction checks that no production package imports
// os/exec, so that no input can reach a shell and no kernel or firewall
// work runs through a command. CNI plugins are started by libcni's invoke
// package, which runs the plugin binary itself, found in the CNI path.
func TestNoProcessesInProduction(t *testing.T) {
	root, err := filepath.Abs(filepath.Join("..", ".."))
	if err != nil {
		t.Fatal(err)
	}
	fset := token.NewFileSet()
	checked := 0
	err = filepath.WalkDir(root, func(path string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		rel, _ := filepath.Rel(root, path)
		if d.IsDir() {
			for _, dir := range testOnlyDirs {
				if rel == dir {
					return filepath.SkipDir
				}
			}
			return nil
		}
		if !strings.HasSuffix(path, ".go") || strings.HasSuffix(path, "_test.go") {
			return nil
		}
		f, err := parser.ParseFile(fset, path, nil, parser.ImportsOnly)
		if err != nil {
			return err
		}
		checked++
		for _, imp := range f.Imports {
			if p, _ := strconv.Unquote(imp.Path.Value); p == "os/exec" && rel != pluginRunner {
				t.Errorf("%s imports os/exec; production code must not start processes", rel)
			}
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	if checked < 10 {
		t.Fatalf("checked only %d files; is the module root %s right?", checked, root)
	}
}
