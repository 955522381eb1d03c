#!/usr/bin/env bash
# Regenerates go.mod for building the control plane from k8s.io/kubernetes.
#
# k8s.io/kubernetes cannot be required as a plain dependency: its go.mod replaces its
# staging modules with local folders (k8s.io/api => ./staging/src/k8s.io/api), which only
# exist in its own repository. This copies its go.mod, renames the module, requires
# k8s.io/kubernetes itself and points every staging replace at the published module of the
# matching version (v1.X.Y -> v0.X.Y). Usage: hack/tools/kube/update-go-mod.sh v1.37.2
set -euo pipefail
version=${1:?usage: $0 vX.Y.Z}
staging=v0.${version#v1.}
cd "$(dirname "$0")"
upstream=$(go mod download -json "k8s.io/kubernetes@$version" | sed -n 's/.*"GoMod": "\(.*\)".*/\1/p')
sed -e 's#^module k8s.io/kubernetes$#module github.com/whisperer-operator/whisperer/hack/tools/kube#' \
    -e "s#=> ./staging/src/\(k8s.io/[a-z0-9-]*\)#=> \1 $staging#" \
    -e '/^\/\/ This is a generated file/,/^\/\/ Run hack\/update-vendor.sh/d' \
    "$upstream" >go.mod
go mod edit -require="k8s.io/kubernetes@$version"
go mod tidy
