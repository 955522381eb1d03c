package alerttest

import (
	"errors"
	"testing"
	"time"

	"github.com/prometheus/prometheus/promql"
	"github.com/prometheus/prometheus/util/teststorage"
)

// A target's scrapes are stored as Prometheus stores them: the target's labels on every series
// (a scraped label of the same name kept as exported_<name>), up, and staleness markers for the
// series a scrape no longer has, all of them when it fails or the target goes.
func TestTargetStoresScrapesAsPrometheus(t *testing.T) {
	st := teststorage.New(t)
	engine := NewEngine()
	target := NewTarget(map[string]string{"job": "whisperer", "pod": "p"})
	zero := time.Unix(1_000_000, 0)
	at := func(n int) time.Time { return zero.Add(time.Duration(n) * 30 * time.Second) }
	query := func(n int, expr string) promql.Vector {
		t.Helper()
		q, err := engine.NewInstantQuery(t.Context(), st, nil, expr, at(n))
		if err != nil {
			t.Fatal(err)
		}
		defer q.Close()
		v, err := q.Exec(t.Context()).Vector()
		if err != nil {
			t.Fatal(err)
		}
		return v
	}
	scrape := func(n int, body string, err error) {
		t.Helper()
		if err := target.Append(t.Context(), st, at(n), []byte(body), err); err != nil {
			t.Fatal(err)
		}
	}

	scrape(0, "# TYPE a gauge\na 1\nb{job=\"other\"} 2\n", nil)
	scrape(1, "# TYPE a gauge\na 3\n", nil)
	if v := query(1, `a{job="whisperer", pod="p"}`); len(v) != 1 || v[0].F != 3 {
		t.Errorf("a: %v; want 3, with the target's labels", v)
	}
	if v := query(0, `b{job="whisperer", exported_job="other"}`); len(v) != 1 {
		t.Errorf("b at the first scrape: %v; want it, its job kept as exported_job", v)
	}
	if v := query(1, `b`); len(v) != 0 {
		t.Errorf("b after a scrape without it: %v; want none (stale)", v)
	}
	if v := query(1, `up{job="whisperer", pod="p"}`); len(v) != 1 || v[0].F != 1 {
		t.Errorf("up after a scrape: %v; want 1", v)
	}

	scrape(2, "", errors.New("connection refused"))
	if v := query(2, `up`); len(v) != 1 || v[0].F != 0 {
		t.Errorf("up after a failed scrape: %v; want 0", v)
	}
	if v := query(2, `a`); len(v) != 0 {
		t.Errorf("a after a failed scrape: %v; want none (stale)", v)
	}

	scrape(3, "a 4\n", nil)
	if err := target.Gone(t.Context(), st, at(4)); err != nil {
		t.Fatal(err)
	}
	if v := query(4, `absent(up{job="whisperer"})`); len(v) != 1 {
		t.Errorf("absent(up) once the target is gone: %v; want 1", v)
	}
}
