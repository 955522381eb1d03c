package clustertest

import (
	"context"
	"crypto/tls"
	"fmt"
	"io"
	"net/http"
	"strings"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	rbacv1 "k8s.io/api/rbac/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"sigs.k8s.io/controller-runtime/pkg/client"
)

// CheckMetrics scrapes whisperer's metrics endpoint at address (host:port) as a ServiceAccount
// bound to the install's metrics reader ClusterRole, readerRole, which whisperer authorizes
// through the API server; and checks that it refuses anonymous and unauthorized callers.
func (e Env) CheckMetrics(t *testing.T, ctx context.Context, c client.Client, address, readerRole string) {
	t.Helper()
	const ns = "whisperer-e2e-monitoring"
	if err := c.Create(ctx, &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: ns}}); err != nil {
		t.Fatal(err)
	}
	for _, name := range []string{"scraper", "stranger"} {
		if err := c.Create(ctx, &corev1.ServiceAccount{ObjectMeta: metav1.ObjectMeta{Name: name, Namespace: ns}}); err != nil {
			t.Fatal(err)
		}
	}
	if err := c.Create(ctx, &rbacv1.ClusterRoleBinding{
		ObjectMeta: metav1.ObjectMeta{Name: "whisperer-e2e-scraper"},
		RoleRef:    rbacv1.RoleRef{APIGroup: rbacv1.GroupName, Kind: "ClusterRole", Name: readerRole},
		Subjects:   []rbacv1.Subject{{Kind: rbacv1.ServiceAccountKind, Name: "scraper", Namespace: ns}},
	}); err != nil {
		t.Fatal(err)
	}
	url := "https://" + address + "/metrics"
	scraper, stranger := e.CreateToken(t, ctx, ns, "scraper"), e.CreateToken(t, ctx, ns, "stranger")
	var body string
	WaitFor(t, ctx, "the metrics reader scrapes whisperer's metrics", func(ctx context.Context) (bool, string, error) {
		status, b, err := Get(ctx, url, scraper)
		body = b
		return status == http.StatusOK, fmt.Sprintf("status %d", status), err
	})
	if !strings.Contains(body, "controller_runtime_reconcile_total") {
		t.Errorf("the metrics have no controller_runtime_reconcile_total:\n%.2000s", body)
	}
	for who, token := range map[string]string{"an anonymous caller": "", "a ServiceAccount without the metrics reader role": stranger} {
		status, _, err := Get(ctx, url, token)
		if err != nil {
			t.Fatal(err)
		}
		if status != http.StatusUnauthorized && status != http.StatusForbidden {
			t.Errorf("%s got status %d from the metrics endpoint, want 401 or 403", who, status)
		}
	}
}

// Get fetches url, with a bearer token unless empty. whisperer's metrics certificate is
// self-signed, so it is not verified. A server that does not answer (yet) gives status 0, which
// no caller accepts, and no error: the waits poll again.
func Get(ctx context.Context, url, token string) (int, string, error) {
	ctx, cancel := context.WithTimeout(ctx, 5*time.Second)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
	if err != nil {
		return 0, "", err
	}
	if token != "" {
		req.Header.Set("Authorization", "Bearer "+token)
	}
	httpClient := &http.Client{Transport: &http.Transport{TLSClientConfig: &tls.Config{InsecureSkipVerify: true}}} //nolint:gosec // G402: whisperer on 127.0.0.1, with the certificate it signed itself
	resp, err := httpClient.Do(req)
	if err != nil {
		return 0, "", nil
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	return resp.StatusCode, string(body), err
}
