package main

import (
	"os"
	"path/filepath"
	"strconv"
	"strings"
)

// cpuSplit is the CPU time that the processes sharing the machine with the operator spent in a
// phase: where the time goes besides the operator (whose own time is usage.CPUSeconds).
type cpuSplit struct {
	APIServer float64 `json:"apiServer"`
	Etcd      float64 `json:"etcd"`
	// Bench is this program: the raw client in a raw phase, and the observers watching Secrets.
	Bench float64 `json:"bench"`
}

// server is the API server's and etcd's time.
func (c cpuSplit) server() float64 { return c.APIServer + c.Etcd }

func (c cpuSplit) minus(before cpuSplit) cpuSplit {
	return cpuSplit{APIServer: c.APIServer - before.APIServer, Etcd: c.Etcd - before.Etcd, Bench: c.Bench - before.Bench}
}

// controlPlaneCPU reads the CPU time so far of this program and of the etcd and kube-apiserver it
// started (envtest runs them as its children).
func controlPlaneCPU() cpuSplit {
	var split cpuSplit
	split.Bench, _, _ = processCPU("self")
	self := strconv.Itoa(os.Getpid())
	stats, _ := filepath.Glob("/proc/[0-9]*/stat")
	for _, path := range stats {
		pid := filepath.Base(filepath.Dir(path))
		seconds, fields, err := processCPU(pid)
		if err != nil || fields.parent != self {
			continue
		}
		switch fields.command {
		case "kube-apiserver":
			split.APIServer += seconds
		case "etcd":
			split.Etcd += seconds
		}
	}
	return split
}

type statFields struct{ command, parent string }

// processCPU reads utime+stime of a process, its command name and its parent from
// /proc/<pid>/stat.
func processCPU(pid string) (float64, statFields, error) {
	stat, err := os.ReadFile("/proc/" + pid + "/stat")
	if err != nil {
		return 0, statFields{}, err
	}
	// The command name is in parentheses and may hold spaces; the fields after it are plain.
	open, closing := strings.IndexByte(string(stat), '('), strings.LastIndexByte(string(stat), ')')
	fields := strings.Fields(string(stat[closing+2:]))
	utime, _ := strconv.ParseFloat(fields[11], 64)
	stime, _ := strconv.ParseFloat(fields[12], 64)
	const clockTicks = 100 // USER_HZ, 100 on Linux
	return (utime + stime) / clockTicks, statFields{command: string(stat[open+1 : closing]), parent: fields[1]}, nil
}
