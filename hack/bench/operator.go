package main

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"strings"
	"syscall"
	"time"
)

// operator is the real whisperer binary, run as a separate process as in a cluster, with its
// defaults: the benchmark adds only what it needs to observe it (its kubeconfig, a plain metrics
// endpoint on loopback, no health probes, console logs), and --operator-flags.
type operator struct {
	cmd         *exec.Cmd
	metricsAddr string
	logPath     string
	started     chan struct{} // closed when its workers have started
	exited      chan struct{}
	anon        anonPeak
}

func startOperator(ctx context.Context, binary, kubeconfig, logPath string, extraArgs []string) (*operator, error) {
	metricsAddr, err := freeLoopbackAddr(ctx)
	if err != nil {
		return nil, err
	}
	args := append([]string{
		"--kubeconfig=" + kubeconfig,
		"--metrics-bind-address=" + metricsAddr, "--metrics-secure=false",
		"--health-probe-bind-address=0",
		"--zap-encoder=console",
	}, extraArgs...)
	log, err := os.OpenFile(logPath, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o600)
	if err != nil {
		return nil, err
	}
	cmd := exec.Command(binary, args...) //nolint:noctx // stop ends it gracefully, as a cluster stops a pod; a context would kill it
	stderr, err := cmd.StderrPipe()
	if err != nil {
		return nil, errors.Join(err, log.Close())
	}
	cmd.Stdout = log
	if err := cmd.Start(); err != nil {
		return nil, errors.Join(err, log.Close())
	}
	op := &operator{cmd: cmd, metricsAddr: metricsAddr, logPath: logPath, started: make(chan struct{}), exited: make(chan struct{})}
	go op.anon.run(cmd.Process.Pid, op.exited)
	go func() {
		// Wait closes the pipe: read it to its end first, or the log's last lines are lost.
		err := op.watchLog(stderr, log)
		_ = cmd.Wait() // stop ends it with a signal: its exit status says nothing
		if err := errors.Join(err, log.Close()); err != nil {
			fmt.Fprintf(os.Stderr, "bench: whisperer's log %s is incomplete: %v\n", logPath, err)
		}
		close(op.exited)
	}()
	select {
	case <-op.started:
		return op, nil
	case <-op.exited:
		return nil, fmt.Errorf("whisperer exited at start; see %s", logPath)
	case <-time.After(2 * time.Minute):
		op.stop()
		return nil, fmt.Errorf("whisperer did not start its workers within 2 minutes; see %s", logPath)
	}
}

// watchLog copies the operator's log and notices when its workers start, which is after its
// caches have synced. It reads to the end even when the copy fails, so that the operator never
// blocks on a full pipe, and returns the copy's first error.
func (o *operator) watchLog(stderr io.Reader, log io.Writer) error {
	scanner := bufio.NewScanner(stderr)
	scanner.Buffer(make([]byte, 1<<20), 1<<20)
	notified := false
	var copyErr error
	for scanner.Scan() {
		line := scanner.Text()
		if copyErr == nil {
			_, copyErr = fmt.Fprintln(log, line)
		}
		if !notified && strings.Contains(line, "Starting workers") {
			close(o.started)
			notified = true
		}
	}
	return errors.Join(copyErr, scanner.Err())
}

// stop stops the operator gracefully (SIGTERM), or kills it after 20 seconds.
func (o *operator) stop() {
	_ = o.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-o.exited:
	case <-time.After(20 * time.Second):
		_ = o.cmd.Process.Kill()
		<-o.exited
	}
}

// cpuSeconds is the CPU time the operator has used so far.
func (o *operator) cpuSeconds() (float64, error) {
	seconds, _, err := processCPU(fmt.Sprint(o.cmd.Process.Pid))
	return seconds, err
}

func (o *operator) memory() (procMemory, error) { return readProcMemory(o.cmd.Process.Pid) }

// metrics reads the operator's metrics endpoint.
func (o *operator) metrics(ctx context.Context) (operatorMetrics, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, "http://"+o.metricsAddr+"/metrics", nil)
	if err != nil {
		return operatorMetrics{}, err
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return operatorMetrics{}, err
	}
	defer resp.Body.Close()
	return readOperatorMetrics(resp.Body)
}

// waitIdle waits until the operator has reconciled at least once more than before and then
// made no reconcile for quiet. It returns the reconciles since before and the last metrics read.
func (o *operator) waitIdle(ctx context.Context, before float64, quiet time.Duration) (float64, operatorMetrics, error) {
	last, lastChange := before, time.Now()
	for {
		m, err := o.metrics(ctx)
		if err != nil {
			return 0, operatorMetrics{}, err
		}
		if m.reconciles != last {
			last, lastChange = m.reconciles, time.Now()
		}
		if last > before && time.Since(lastChange) >= quiet {
			return last - before, m, nil
		}
		select {
		case <-ctx.Done():
			return 0, operatorMetrics{}, ctx.Err()
		case <-time.After(100 * time.Millisecond):
		}
	}
}

func freeLoopbackAddr(ctx context.Context) (string, error) {
	var lc net.ListenConfig
	l, err := lc.Listen(ctx, "tcp", "127.0.0.1:0")
	if err != nil {
		return "", err
	}
	addr := l.Addr().String()
	return addr, l.Close()
}
