// Command bundle-validate validates an OLM bundle folder with the checks of `operator-sdk bundle
// validate --select-optional suite=operatorframework`, and fails on any error or warning:
// `make bundle-validate` runs it on bundle/.
//
//	bundle-validate [--k8s-version 1.37] DIR
package main

import (
	"flag"
	"fmt"
	"os"
	"strings"

	"github.com/whisperer-operator/whisperer/hack/olm/internal/validate"
)

func main() {
	k8sVersion := flag.String("k8s-version", "", "Kubernetes version for the deprecated-API check; empty means the CSV's minKubeVersion.")
	flag.Parse()
	if flag.NArg() != 1 {
		fmt.Fprintln(os.Stderr, "usage: bundle-validate [--k8s-version X.Y] DIR")
		os.Exit(2)
	}
	dir := flag.Arg(0)
	findings, err := validate.Bundle(dir, *k8sVersion, os.Stderr)
	if err != nil {
		fmt.Fprintln(os.Stderr, "bundle-validate:", err)
		os.Exit(1)
	}
	for _, f := range findings {
		fmt.Println(f)
	}
	names := []string{"bundle format", "bundle content"}
	for _, v := range validate.Suite {
		names = append(names, v.Name)
	}
	fmt.Printf("validators: %s\n", strings.Join(names, ", "))
	if validate.Failed(findings) {
		fmt.Printf("%s: INVALID: %d errors and warnings\n", dir, len(findings))
		os.Exit(1)
	}
	fmt.Printf("%s: valid: no errors, no warnings but the accepted ones above\n", dir)
}
