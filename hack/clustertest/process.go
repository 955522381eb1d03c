package clustertest

import (
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"syscall"
	"testing"
	"time"
)

// stopTimeout is how long a process gets to exit on SIGTERM before it is killed.
const stopTimeout = 10 * time.Second

// Process is a program the test started; it logs to Log, <WorkDir>/<name>.log.
type Process struct {
	Name string
	Log  string
	cmd  *exec.Cmd
	// life is done once the process has exited.
	life context.Context
}

// Start runs a program until the test ends, with the test's environment and env added: t.Cleanup
// stops it (SIGTERM, then SIGKILL), in the reverse order of the starts, before the control plane
// stops. Pdeathsig kills it also when the test binary itself dies, so that nothing outlives the run.
func (e Env) Start(t *testing.T, name string, env []string, args ...string) *Process {
	t.Helper()
	return e.start(t, name, append(os.Environ(), env...), args...)
}

// start is Start with exactly the environment env.
func (e Env) start(t *testing.T, name string, env []string, args ...string) *Process {
	t.Helper()
	logPath := filepath.Join(e.WorkDir, name+".log")
	logFile, err := os.OpenFile(logPath, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o600)
	if err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command(args[0], args[1:]...) //nolint:noctx // Stop ends it with SIGTERM, in the reverse order of the starts; a context would kill it
	cmd.Env = env
	cmd.Stdout, cmd.Stderr = logFile, logFile
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true, Pdeathsig: syscall.SIGKILL}
	if err := cmd.Start(); err != nil {
		t.Fatalf("starting %s: %v", name, errors.Join(err, logFile.Close()))
	}
	life, exited := context.WithCancel(context.Background())
	p := &Process{Name: name, Log: logPath, cmd: cmd, life: life}
	go func() {
		_ = cmd.Wait()
		exited()
	}()
	t.Logf("started %s (pid %d), log %s", name, cmd.Process.Pid, logPath)
	t.Cleanup(func() {
		if err := p.Stop(); err != nil {
			t.Error(err)
		}
	})
	// The process has its own descriptor of the log: this one is not needed any more.
	if err := logFile.Close(); err != nil {
		t.Fatal(err)
	}
	return p
}

// Stop stops the process and waits for it; stopping a process that has exited does nothing.
func (p *Process) Stop() error {
	if !p.Running() {
		return nil
	}
	_ = syscall.Kill(-p.cmd.Process.Pid, syscall.SIGTERM)
	select {
	case <-p.life.Done():
		return nil
	case <-time.After(stopTimeout):
		_ = syscall.Kill(-p.cmd.Process.Pid, syscall.SIGKILL)
		<-p.life.Done()
		return fmt.Errorf("%s did not stop within %s and was killed", p.Name, stopTimeout)
	}
}

// Running reports whether the process is still running.
func (p *Process) Running() bool { return p.life.Err() == nil }
