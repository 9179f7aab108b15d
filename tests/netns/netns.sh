#!/usr/bin/env bash
# Real network partitions for the chaos tests (root only): a Linux bridge in
# this network namespace, and one network namespace per fleet process to be
# cut off, joined to the bridge by a veth pair. Cutting a process's link
# (its veth's bridge side down) drops its traffic silently, as a partition
# does: no reset, no refusal, just silence until the link is healed.
#
#   netns.sh up ID NODES    bridge afb-ID (10.231.N.1/24, N from ID) and namespaces
#                           af-ID-1..NODES at .11, .12, ...; prints the bridge's address
#   netns.sh exec ID NODE   the command prefix that runs a program in node NODE's namespace
#   netns.sh cut ID NODE    partitions node NODE from everything
#   netns.sh heal ID NODE   joins it again
#   netns.sh down ID        deletes every namespace, link and bridge of ID
#
# ID is 1-4 lowercase letters or digits. Addresses are private, on a bridge
# this script makes inside the machine; nothing leaves it. (tc netem, for delay
# and loss, does not exist in this kernel: docs/robustness.md.)
set -euo pipefail

id="${2:?usage: netns.sh up|exec|cut|heal|down ID [NODE]}"
[[ "$id" =~ ^[a-z0-9]{1,4}$ ]] || { echo "netns.sh: bad id '$id'" >&2; exit 2; }
# A /24 per id, from its characters, so concurrent ids rarely share one.
octet=$(( ($(printf '%s' "$id" | cksum | cut -d' ' -f1) % 200) + 20 ))
bridge="afb-$id"
net="10.231.$octet"

case "$1" in
  up)
    nodes="${3:-1}"
    "$0" down "$id" 2>/dev/null || true
    ip link add "$bridge" type bridge
    ip addr add "$net.1/24" dev "$bridge"
    ip link set "$bridge" up
    for n in $(seq 1 "$nodes"); do
      ns="af-$id-$n"
      ip netns add "$ns"
      ip link add "afv-$id-$n" type veth peer name "afp-$id-$n"
      ip link set "afp-$id-$n" netns "$ns"
      ip link set "afv-$id-$n" master "$bridge"
      ip link set "afv-$id-$n" up
      ip -n "$ns" link set lo up
      ip -n "$ns" addr add "$net.$((10 + n))/24" dev "afp-$id-$n"
      ip -n "$ns" link set "afp-$id-$n" up
    done
    echo "$net.1"
    ;;
  exec)
    echo "ip netns exec af-$id-${3:?node}"
    ;;
  cut)
    ip link set "afv-$id-${3:?node}" down
    ;;
  heal)
    ip link set "afv-$id-${3:?node}" up
    ;;
  down)
    for ns in $(ip netns list | awk '{print $1}' | grep "^af-$id-" || true); do ip netns del "$ns"; done
    for link in $(ip -o link show | awk -F': ' '{print $2}' | cut -d@ -f1 | grep -E "^(afv-$id-|afb-$id\$)" || true); do
      ip link del "$link" 2>/dev/null || true
    done
    ;;
  *)
    echo "netns.sh: unknown command '$1'" >&2
    exit 2
    ;;
esac
