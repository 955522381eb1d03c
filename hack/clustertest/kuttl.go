package clustertest

import (
	"bytes"
	"context"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"testing"
)

// kuttlSuite is the kuttl suite that starts no operator and no control plane: it runs against the
// whisperer a test started itself with StartOperator.
const kuttlSuite = "tests/kuttl/kuttl-installed.yaml"

// RunKuttl runs the kuttl suite against the running whisperer, which runs as serviceAccount;
// kuttl itself is admin.
func (e Env) RunKuttl(t *testing.T, ctx context.Context, operator *Process, serviceAccount string) {
	t.Helper()
	cmd := exec.CommandContext(ctx, e.Bin("kubectl-kuttl"), "test", "--config", kuttlSuite,
		"--artifacts-dir", filepath.Join(e.WorkDir, "kuttl"))
	cmd.Dir = e.RepoDir
	cmd.Env = append(os.Environ(), "KUBECONFIG="+e.Kubeconfig,
		"PATH="+e.ControlPlaneDir+string(os.PathListSeparator)+e.BinDir+string(os.PathListSeparator)+os.Getenv("PATH"))
	var out bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &out
	err := cmd.Run()
	logPath := filepath.Join(e.WorkDir, "kuttl.log")
	if err := os.WriteFile(logPath, out.Bytes(), 0o600); err != nil {
		t.Errorf("kuttl's log: %v", err)
	}
	for _, line := range strings.Split(out.String(), "\n") {
		if strings.Contains(line, "--- PASS") || strings.Contains(line, "--- FAIL") || strings.HasPrefix(line, "PASS") || strings.HasPrefix(line, "FAIL") {
			t.Log(strings.TrimSpace(line))
		}
	}
	if err != nil {
		// CI keeps only this test's output: why each step failed, and what whisperer said.
		t.Logf("kuttl's reasons:\n%s", linesWith(out.String(), 40, "case.go:"))
		operatorOutput := readFile(operator.Log)
		t.Logf("whisperer's errors and leader election:\n%s", linesWith(operatorOutput, 40, "ERROR", `"level":"error"`, "leader"))
		t.Fatalf("kuttl failed (%v) with whisperer running as %s; log %s", err, serviceAccount, logPath)
	}
	if !operator.Running() {
		t.Errorf("whisperer exited during the kuttl suite; see %s", operator.Log)
	}
}

// linesWith returns the last max lines of text that contain one of substrs: whisperer logs in
// JSON or, with --zap-encoder=console, in columns.
func linesWith(text string, max int, substrs ...string) string {
	var found []string
	for line := range strings.Lines(text) {
		if slices.ContainsFunc(substrs, func(s string) bool { return strings.Contains(line, s) }) {
			found = append(found, line)
		}
	}
	return strings.Join(found[len(found)-min(max, len(found)):], "")
}

// readFile returns the content of path, or why it cannot be read.
func readFile(path string) string {
	b, err := os.ReadFile(path)
	if err != nil {
		return err.Error() + "\n"
	}
	return string(b)
}
