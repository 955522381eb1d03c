package controllers

import (
	"errors"
	"fmt"
	"strings"
	"testing"
)

func TestOutcomeErrorStaysShort(t *testing.T) {
	o := &outcome{}
	for i := range 1000 {
		o.add(fmt.Sprintf("ns-%d", i), unchanged, errors.New("forbidden: exceeded quota"))
	}
	msg := o.err().Error()
	if strings.Count(msg, "exceeded quota") != maxReportedErrors || !strings.Contains(msg, "and 997 more failed writes") {
		t.Errorf("error of 1000 failed writes: %q; want %d of them and the count of the others", msg, maxReportedErrors)
	}
	if o.failed != 1000 {
		t.Errorf("failed = %d, want 1000", o.failed)
	}
}
