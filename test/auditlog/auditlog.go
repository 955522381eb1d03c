// Package auditlog turns on the API server's audit log in a local cluster and reads it back: the
// benchmark and the reliability suite count the operator's requests there, as the API server
// saw them, whatever happened to the operator process.
package auditlog

import (
	"bufio"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"
	"time"
)

// APIServerFlags writes an audit policy into dir that records, at Metadata level, every request
// of the users in groups, and returns the kube-apiserver flags that use it and the log's path.
func APIServerFlags(dir string, groups ...string) (flags map[string]string, logPath string, err error) {
	quoted := make([]string, len(groups))
	for i, g := range groups {
		quoted[i] = fmt.Sprintf("%q", g)
	}
	policy := "apiVersion: audit.k8s.io/v1\nkind: Policy\nomitStages: [\"RequestReceived\"]\nrules:\n" +
		"- level: Metadata\n  userGroups: [" + strings.Join(quoted, ", ") + "]\n- level: None\n"
	policyPath, logPath := filepath.Join(dir, "audit-policy.yaml"), filepath.Join(dir, "audit.log")
	if err := os.WriteFile(policyPath, []byte(policy), 0o600); err != nil {
		return nil, "", err
	}
	return map[string]string{
		"audit-policy-file": policyPath,
		"audit-log-path":    logPath,
		// Written before the response is sent: a request its client saw answered is in the log.
		"audit-log-mode": "blocking",
		// Never rotated, so that counts read from it only grow; the default rotates at 100 MB,
		// which a benchmark at 5,000 namespaces fills.
		"audit-log-maxsize": "100000",
	}, logPath, nil
}

// Event is the part of an audit.k8s.io/v1 Event that the harnesses read.
type Event struct {
	Stage      string `json:"stage"`
	Verb       string `json:"verb"`
	RequestURI string `json:"requestURI"`
	User       struct {
		Username string `json:"username"`
	} `json:"user"`
	ObjectRef *struct {
		Resource    string `json:"resource"`
		Namespace   string `json:"namespace"`
		Name        string `json:"name"`
		APIGroup    string `json:"apiGroup"`
		Subresource string `json:"subresource"`
	} `json:"objectRef"`
	ResponseStatus *struct {
		Code int `json:"code"`
	} `json:"responseStatus"`
	Received time.Time `json:"requestReceivedTimestamp"`
}

// Resource is the resource of the request's object, "" for none.
func (e Event) Resource() string {
	if e.ObjectRef == nil {
		return ""
	}
	return e.ObjectRef.Resource
}

// Namespace is the namespace of the request's object, "" for none.
func (e Event) Namespace() string {
	if e.ObjectRef == nil {
		return ""
	}
	return e.ObjectRef.Namespace
}

// Code is the response's HTTP status, 0 when none was recorded.
func (e Event) Code() int {
	if e.ResponseStatus == nil {
		return 0
	}
	return e.ResponseStatus.Code
}

// IsWrite reports a request that changes state.
func (e Event) IsWrite() bool {
	switch e.Verb {
	case "create", "update", "patch", "delete", "deletecollection":
		return true
	}
	return false
}

// IsRelist reports a full read of a collection: a LIST, or a watch that starts with the current
// state (the streaming form of a list).
func (e Event) IsRelist() bool {
	return e.Verb == "list" || e.Verb == "watch" && strings.Contains(e.RequestURI, "sendInitialEvents=true")
}

func (e Event) String() string {
	ref := ""
	if e.ObjectRef != nil {
		ref = strings.Trim(e.ObjectRef.Resource+" "+e.ObjectRef.Namespace+"/"+e.ObjectRef.Name, "/ ")
	}
	return fmt.Sprintf("%s %s %s %s -> %d", e.Received.Format("15:04:05.000"), e.User.Username, e.Verb, ref, e.Code())
}

// Read returns the completed requests, and the watches that started, recorded in the log at
// path that keep keeps.
func Read(path string, keep func(Event) bool) ([]Event, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	out, err := read(f, keep)
	return out, errors.Join(err, f.Close())
}

func read(r io.Reader, keep func(Event) bool) ([]Event, error) {
	var out []Event
	scanner := bufio.NewScanner(r)
	scanner.Buffer(make([]byte, 1<<20), 1<<24)
	for scanner.Scan() {
		var e Event
		if err := json.Unmarshal(scanner.Bytes(), &e); err != nil {
			continue // the line being written
		}
		started := e.Stage == "ResponseStarted" && e.Verb == "watch"
		if (e.Stage == "ResponseComplete" && e.Verb != "watch" || started) && keep(e) {
			out = append(out, e)
		}
	}
	return out, scanner.Err()
}
