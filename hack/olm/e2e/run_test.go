//go:build olm_e2e

package e2e

import (
	"context"
	"testing"

	"sigs.k8s.io/controller-runtime/pkg/client"

	"github.com/whisperer-operator/whisperer/hack/clustertest"
)

// startOperator runs bin/whisperer with a token of the ServiceAccount OLM created, and only
// that: what it can do is what the CSV's permissions grant. It returns once whisperer is ready
// and holds the leader election Lease (which the CSV's Role allows).
func startOperator(t *testing.T, ctx context.Context, c client.Client) *clustertest.Process {
	t.Helper()
	return env.StartOperator(t, ctx, c, clustertest.Operator{
		Namespace:      operatorNamespace,
		ServiceAccount: serviceAccount,
		Args: []string{
			"--leader-elect", "--leader-election-namespace=" + operatorNamespace,
			"--health-probe-bind-address=" + probeAddress,
			"--metrics-bind-address=" + metricsAddress,
			"--zap-encoder=console",
		},
		ProbeAddress: probeAddress,
	})
}
