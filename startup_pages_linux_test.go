package main

import (
	"io"
	"os"
	"strings"
	"testing"

	"github.com/whisperer-operator/whisperer/internal/options"
)

func TestReleasableMappings(t *testing.T) {
	const exe = "/usr/bin/whisperer"
	smaps := strings.Join([]string{
		"00400000-019d4000 r-xp 00000000 fe:00 10534947                           /usr/bin/whisperer",
		"Size:              22352 kB",
		"Rss:               16384 kB",
		"Anonymous:             0 kB",
		"VmFlags: rd ex mr mw me dw sd",
		"019d4000-0315e000 r--p 015d4000 fe:00 10534947                           /usr/bin/whisperer",
		"Rss:               19000 kB",
		"Anonymous:             0 kB",
		// A RELRO segment: written by the dynamic linker, then made read-only.
		"0315e000-0315f000 r--p 02d5e000 fe:00 10534947                           /usr/bin/whisperer",
		"Rss:                   4 kB",
		"Anonymous:             4 kB",
		"0315f000-03204000 rw-p 02d5f000 fe:00 10534947                           /usr/bin/whisperer",
		"Rss:                 200 kB",
		"Anonymous:           184 kB",
		"7f0000000000-7f0000100000 r--p 00000000 fe:00 42                          /usr/lib/libc.so.6",
		"Rss:                 800 kB",
		"Anonymous:             0 kB",
		"7f0000200000-7f0000300000 rw-p 00000000 00:00 0 ",
		"Rss:                1024 kB",
		"Anonymous:          1024 kB",
		"7f0000400000-7f0000401000 r--p 00000000 fe:00 43                          /srv/a file with spaces",
		"Rss:                   4 kB",
		"Anonymous:             0 kB",
	}, "\n")
	got, err := releasableMappings(strings.NewReader(smaps), exe)
	if err != nil {
		t.Fatal(err)
	}
	want := []mapping{
		{start: 0x400000, end: 0x19d4000, readOnly: true, path: exe, rssBytes: 16384 << 10},
		{start: 0x19d4000, end: 0x315e000, readOnly: true, path: exe, rssBytes: 19000 << 10},
	}
	if len(got) != len(want) {
		t.Fatalf("releasableMappings() = %+v, want %+v", got, want)
	}
	for i := range want {
		if got[i] != want[i] {
			t.Errorf("mapping %d = %+v, want %+v", i, got[i], want[i])
		}
	}
	spaced, err := releasableMappings(strings.NewReader(smaps), "/srv/a file with spaces")
	if err != nil || len(spaced) != 1 {
		t.Errorf("a path with spaces: got %+v, %v; want its one mapping", spaced, err)
	}
}

// TestReleaseStartupPages releases the pages of the test binary itself, then keeps running.
func TestReleaseStartupPages(t *testing.T) {
	before := exeRSS(t)
	released, err := releaseStartupPages()
	if err != nil {
		t.Fatal(err)
	}
	after := exeRSS(t)
	t.Logf("executable RSS %d KiB, released %d KiB, %d KiB after", before>>10, released>>10, after>>10)
	if released <= 0 || released > before {
		t.Errorf("released %d bytes of an executable RSS of %d", released, before)
	}
	// The code that runs between the release and the second reading faults a few pages back.
	if after > before-released/2 {
		t.Errorf("executable RSS went from %d to %d bytes after releasing %d", before, after, released)
	}
	// Code and read-only data read again from the file are whole: parsing and logging still work.
	if _, err := options.Parse([]string{"--zap-log-level=debug"}, os.LookupEnv, io.Discard); err != nil {
		t.Fatal(err)
	}
}

// exeRSS sums the resident bytes of every mapping of the running executable.
func exeRSS(t *testing.T) int64 {
	t.Helper()
	exe, err := os.Readlink("/proc/self/exe")
	if err != nil {
		t.Fatal(err)
	}
	smaps, err := os.Open("/proc/self/smaps")
	if err != nil {
		t.Fatal(err)
	}
	defer smaps.Close()
	mappings, err := readMappings(smaps)
	if err != nil {
		t.Fatal(err)
	}
	var total int64
	for _, m := range mappings {
		if m.path == exe {
			total += m.rssBytes
		}
	}
	return total
}
