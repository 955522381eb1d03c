#!/usr/bin/env bash
# netns.sh COMMAND [ARG...]: runs COMMAND in a new network namespace that reaches nothing but
# itself. make test-olm and make test-helm run in one: OLM's operators and opm, and whisperer with
# the arguments of the Deployment Helm installed, listen on all interfaces, which there means this
# namespace only, and no traffic can leave it.
#
# The namespace has loopback, and a default route through a veth pair whose two ends are both
# in it, because kube-apiserver picks the address it advertises from the default route's
# interface. What is sent there arrives at the other end, in the same namespace, and is
# dropped: nothing leaves. The address is from TEST-NET-1 (RFC 5737), which is never routed.
set -euo pipefail
if [[ ${NETNS_INSIDE:-} != 1 ]]; then
  userns=()
  [[ $(id -u) == 0 ]] || userns=(--map-root-user)
  exec unshare --net "${userns[@]}" env NETNS_INSIDE=1 "$0" "$@"
fi
ip link set lo up
ip link add whisperer0 type veth peer name whisperer1
ip addr add 192.0.2.1/32 dev whisperer0
ip link set whisperer0 up
ip link set whisperer1 up
ip route add default dev whisperer0
exec "$@"
