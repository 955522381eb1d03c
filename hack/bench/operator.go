package main

import (
	"bufio"
	"context"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"syscall"
	"time"
)

// operator is the real whisperer binary, run as a separate process as in a cluster.
type operator struct {
	cmd         *exec.Cmd
	metricsAddr string
	logPath     string
	started     chan struct{} // closed when its workers have started
	exited      chan struct{}
}

func startOperator(binary, kubeconfig, logPath string, extraArgs []string) (*operator, error) {
	metricsAddr, err := freeLoopbackAddr()
	if err != nil {
		return nil, err
	}
	args := append([]string{
		"--kubeconfig=" + kubeconfig,
		"--metrics-bind-address=" + metricsAddr, "--metrics-secure=false",
		"--health-probe-bind-address=0",
		"--zap-encoder=console",
	}, extraArgs...)
	log, err := os.OpenFile(logPath, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o644)
	if err != nil {
		return nil, err
	}
	cmd := exec.Command(binary, args...)
	stderr, err := cmd.StderrPipe()
	if err != nil {
		return nil, err
	}
	cmd.Stdout = log
	if err := cmd.Start(); err != nil {
		return nil, err
	}
	op := &operator{cmd: cmd, metricsAddr: metricsAddr, logPath: logPath, started: make(chan struct{}), exited: make(chan struct{})}
	go op.watchLog(stderr, log)
	go func() { _ = cmd.Wait(); close(op.exited); log.Close() }()
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
// caches have synced.
func (o *operator) watchLog(stderr io.Reader, log io.Writer) {
	scanner := bufio.NewScanner(stderr)
	scanner.Buffer(make([]byte, 1<<20), 1<<20)
	notified := false
	for scanner.Scan() {
		line := scanner.Text()
		fmt.Fprintln(log, line)
		if !notified && strings.Contains(line, "Starting workers") {
			close(o.started)
			notified = true
		}
	}
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

// usage is what the operator process has used: its peak resident memory so far, and CPU time
// (so far when read from /proc; in a phase once measure has subtracted the start).
type usage struct {
	PeakRSSMiB float64 `json:"peakRSSMiB"`
	CPUSeconds float64 `json:"cpuSeconds"`
}

// usage reads /proc: VmHWM (peak RSS) and utime+stime.
func (o *operator) usage() (usage, error) {
	pid := strconv.Itoa(o.cmd.Process.Pid)
	status, err := os.ReadFile("/proc/" + pid + "/status")
	if err != nil {
		return usage{}, err
	}
	var u usage
	for _, line := range strings.Split(string(status), "\n") {
		if rest, ok := strings.CutPrefix(line, "VmHWM:"); ok {
			kib, _ := strconv.ParseFloat(strings.TrimSuffix(strings.TrimSpace(rest), " kB"), 64)
			u.PeakRSSMiB = kib / 1024
		}
	}
	if u.CPUSeconds, _, err = processCPU(pid); err != nil {
		return usage{}, err
	}
	return u, nil
}

// reconciles reads the operator's count of reconciles from its metrics endpoint.
func (o *operator) reconciles(ctx context.Context) (float64, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, "http://"+o.metricsAddr+"/metrics", nil)
	if err != nil {
		return 0, err
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return 0, err
	}
	defer resp.Body.Close()
	var total float64
	scanner := bufio.NewScanner(resp.Body)
	scanner.Buffer(make([]byte, 1<<20), 1<<20)
	for scanner.Scan() {
		line := scanner.Text()
		if strings.HasPrefix(line, `controller_runtime_reconcile_total{controller="secretmirror"`) {
			value, _ := strconv.ParseFloat(line[strings.LastIndexByte(line, ' ')+1:], 64)
			total += value
		}
	}
	return total, scanner.Err()
}

// waitIdle waits until the operator has reconciled at least once more than before and then
// made no reconcile for quiet.
func (o *operator) waitIdle(ctx context.Context, before float64, quiet time.Duration) (float64, error) {
	last, lastChange := before, time.Now()
	for {
		n, err := o.reconciles(ctx)
		if err != nil {
			return 0, err
		}
		if n != last {
			last, lastChange = n, time.Now()
		}
		if last > before && time.Since(lastChange) >= quiet {
			return last - before, nil
		}
		select {
		case <-ctx.Done():
			return 0, ctx.Err()
		case <-time.After(100 * time.Millisecond):
		}
	}
}

func freeLoopbackAddr() (string, error) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return "", err
	}
	defer l.Close()
	return l.Addr().String(), nil
}
