//go:build reliability

package reliability

import (
	"fmt"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"k8s.io/apimachinery/pkg/fields"
	"k8s.io/apimachinery/pkg/labels"
	"k8s.io/apimachinery/pkg/selection"
	"k8s.io/apimachinery/pkg/util/sets"
)

// labelPrefix begins the name of every label whisperer reads on sources or puts on mirrors.
const labelPrefix = "secret-syncer.jeffl.es/"

// ownedOnly are the resources of which whisperer may cache only its own objects, sources and
// mirrors (README, "How it works"): never every Secret or ConfigMap of the cluster.
var ownedOnly = sets.New("secrets", "configmaps")

// selected names which objects of their resource a list or watch request of Secrets or ConfigMaps
// selects: "sources" or "mirrors" when its label selector requires one of whisperer's labels (the
// sync label for sources); "by name" when its field selector names one object of one namespace,
// as whisperer's watch of an object that blocks a mirror does; otherwise "unfiltered", and why.
func selected(ev auditEvent) (name, why string) {
	u, err := url.Parse(ev.RequestURI)
	if err != nil {
		return "unfiltered", fmt.Sprintf("unreadable request URI: %v", err)
	}
	query := u.Query()
	var reasons []string
	if raw := query.Get("labelSelector"); raw != "" {
		selector, err := labels.Parse(raw)
		if err != nil {
			return "unfiltered", fmt.Sprintf("unreadable label selector %q: %v", raw, err)
		}
		requirements, _ := selector.Requirements()
		own := ""
		for _, r := range requirements {
			if !strings.HasPrefix(r.Key(), labelPrefix) {
				continue
			}
			switch r.Operator() {
			case selection.Equals, selection.DoubleEquals, selection.In, selection.Exists:
				if r.Key() == syncLabel {
					own = "sources"
				} else if own == "" {
					own = "mirrors"
				}
			}
		}
		if own != "" {
			return own, ""
		}
		reasons = append(reasons, fmt.Sprintf("label selector %q requires none of whisperer's labels", raw))
	}
	if raw := query.Get("fieldSelector"); raw != "" {
		selector, err := fields.ParseSelector(raw)
		if err != nil {
			return "unfiltered", fmt.Sprintf("unreadable field selector %q: %v", raw, err)
		}
		if name, ok := selector.RequiresExactMatch("metadata.name"); ok && name != "" && ev.Namespace() != "" {
			return "by name", ""
		}
		reasons = append(reasons, fmt.Sprintf("field selector %q does not name one object of one namespace", raw))
	}
	if len(reasons) == 0 {
		reasons = append(reasons, "no label selector")
	}
	return "unfiltered", strings.Join(reasons, "; ")
}

// cacheOf names the operator's cache a list or watch request feeds: for Secrets, what it selected;
// for ConfigMaps, the same after "configmaps"; else the resource, such as namespaces.
func cacheOf(ev auditEvent) string {
	if !ownedOnly.Has(ev.Resource()) {
		return ev.Resource()
	}
	name, _ := selected(ev)
	if ev.Resource() != "secrets" {
		return ev.Resource() + " " + name
	}
	return name
}

// unfilteredWatches lists the watches of Secrets and ConfigMaps among events that would cache
// objects that are not whisperer's (see selected), each with why.
func unfilteredWatches(events []auditEvent) []string {
	var bad []string
	for _, ev := range events {
		if ev.Verb != "watch" || !ownedOnly.Has(ev.Resource()) {
			continue
		}
		if name, why := selected(ev); name == "unfiltered" {
			bad = append(bad, fmt.Sprintf("%s %s: %s", ev, ev.RequestURI, why))
		}
	}
	return bad
}

// checkWatches fails the test when an operator process it started opened a watch of Secrets or
// ConfigMaps that would cache others' objects: every watch request of their users is in the API
// server's audit log. It also fails when they watched no Secret at all, as the log would show
// were it not recording their watches.
func (e *env) checkWatches() {
	if len(e.operatorUsers) == 0 {
		return
	}
	users := sets.New(e.operatorUsers...)
	events := e.audit.events(e.t, func(ev auditEvent) bool { return users.Has(ev.User.Username) })
	secretWatches := 0
	for _, ev := range events {
		if ev.Verb == "watch" && ev.Resource() == "secrets" {
			secretWatches++
		}
	}
	if secretWatches == 0 && !e.t.Failed() {
		e.t.Errorf("no watch of Secrets by %v in the audit log: the check of their watches saw nothing", sets.List(users))
	}
	if bad := unfilteredWatches(events); len(bad) > 0 {
		e.t.Errorf("%d watches of Secrets or ConfigMaps by the operator would cache objects that are not whisperer's:\n%s",
			len(bad), strings.Join(bad[:min(10, len(bad))], "\n"))
	}
}

// The check of the operator's watches, on audit log lines written here: it accepts the watches
// whisperer opens (sources and mirrors by label, an object that blocks a mirror by name, namespaces)
// and reports every other watch of Secrets or ConfigMaps.
func TestWatchCheck(t *testing.T) {
	watch := func(resource, namespace, query string) string {
		path := "/api/v1/" + resource
		if namespace != "" {
			path = "/api/v1/namespaces/" + namespace + "/" + resource
		}
		return fmt.Sprintf(`{"stage":"ResponseStarted","verb":"watch","requestURI":%q,"user":{"username":"whisperer-w"},`+
			`"objectRef":{"resource":%q,"namespace":%q},"requestReceivedTimestamp":"2026-12-01T00:00:00.000000Z"}`,
			path+"?"+query+"&watch=true", resource, namespace)
	}
	sync, mirrorNS := url.QueryEscape(syncLabel), url.QueryEscape(sourceNSLabel)
	fine := []string{
		watch("secrets", "", "labelSelector="+sync+"%3Dtrue%2C%21"+url.QueryEscape(mirrorLabel)+"%2C%21"+mirrorNS),
		watch("secrets", "", "labelSelector="+mirrorNS),
		watch("secrets", "fs-taken", "fieldSelector=metadata.name%3Dpull&resourceVersion=12"),
		watch("configmaps", "", "labelSelector="+sync+"%3Dtrue"),
		watch("namespaces", "", "resourceVersion=1"),
		// A list is not a watch; whisperer lists as its caches do, with the same selectors.
		`{"stage":"ResponseComplete","verb":"list","requestURI":"/api/v1/secrets","user":{"username":"whisperer-w"},"objectRef":{"resource":"secrets"}}`,
	}
	unfiltered := []string{
		watch("secrets", "", "resourceVersion=5"),
		watch("secrets", "team-a", "allowWatchBookmarks=true"),
		watch("configmaps", "", "resourceVersion=5"),
		watch("secrets", "", "labelSelector=team%3Da"),
		watch("secrets", "", "labelSelector=%21"+url.QueryEscape(mirrorLabel)),
		watch("secrets", "", "labelSelector="+sync+"%21%3Dtrue"),
		watch("secrets", "", "fieldSelector=metadata.name%3Dpull"),
		watch("secrets", "fs-taken", "fieldSelector=metadata.namespace%3Dfs-taken"),
		watch("secrets", "fs-taken", "fieldSelector=metadata.name%21%3Dpull"),
	}
	path := filepath.Join(t.TempDir(), "audit.log")
	if err := os.WriteFile(path, []byte(strings.Join(append(fine, unfiltered...), "\n")+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	events := (&auditLog{path: path}).events(t, func(auditEvent) bool { return true })
	if len(events) != len(fine)+len(unfiltered) {
		t.Fatalf("read %d requests from %d lines", len(events), len(fine)+len(unfiltered))
	}
	if bad := unfilteredWatches(events[:len(fine)]); len(bad) > 0 {
		t.Errorf("whisperer's own watches reported:\n%s", strings.Join(bad, "\n"))
	}
	for _, ev := range events[len(fine):] {
		if bad := unfilteredWatches([]auditEvent{ev}); len(bad) != 1 {
			t.Errorf("not reported: %s", ev.RequestURI)
		} else {
			t.Logf("reported: %s", bad[0])
		}
	}
	if got := cacheOf(events[0]) + ", " + cacheOf(events[1]) + ", " + cacheOf(events[2]) + ", " + cacheOf(events[4]); got != "sources, mirrors, by name, namespaces" {
		t.Errorf("caches of whisperer's watches: %s", got)
	}
}
