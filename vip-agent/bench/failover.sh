#!/usr/bin/env bash
# Failover benchmark: keepalived pair vs warren-vip pair, same topology, same run.
#
#   sudo vip-agent/bench/failover.sh [RUNS]        (default 5 runs per cell)
#
# Two hosts (network namespaces, veth on a bridge), master priority 250, backup 200.
#  * host death: the master host's link goes down (host-side veth down) → time until the
#    VIP is present on the backup (timestamped by `ip -ts monitor address` in the backup);
#    VRRPv2 advert 1 s and VRRPv3 advert 0.1 s.
#  * graceful handover (warren-vip only): the tracked lb "fails" (exec tracker, interval
#    50 ms, fall 1, weight 0) → master resigns with priority 0 → time until VIP on backup.
# Needs root, keepalived (apt), iproute2, and WARREN_VIP_BIN (default target/debug).
set -euo pipefail

RUNS=${1:-5}
HERE=$(cd "$(dirname "$0")" && pwd)
ROOT=$(cd "$HERE/../.." && pwd)
WARREN=${WARREN_VIP_BIN:-}
if [ -z "$WARREN" ]; then
  for c in "${CARGO_TARGET_DIR:-$ROOT/target}/release/warren-vip" "${CARGO_TARGET_DIR:-$ROOT/target}/debug/warren-vip"; do
    [ -x "$c" ] && WARREN=$c && break
  done
fi
[ -x "${WARREN:-}" ] || { echo "warren-vip binary not found: set WARREN_VIP_BIN" >&2; exit 2; }
KEEPALIVED=${KEEPALIVED_BIN:-/usr/sbin/keepalived}
[ -x "$KEEPALIVED" ] || { echo "keepalived not found at $KEEPALIVED" >&2; exit 2; }
[ "$(id -u)" = 0 ] || { echo "must run as root" >&2; exit 2; }

TAG="b$(( $$ % 1000 ))"
BR="wvipbr$TAG"
SUB=$(( 200 + $$ % 50 ))
VIP="10.220.$SUB.100"
WORK=$(mktemp -d /tmp/wvip-bench.XXXXXX)
PIDS=()

cleanup() {
  kill_ns_procs
  for i in 1 2; do ip netns del "wvip${TAG}h$i" 2>/dev/null || true; done
  ip link del "$BR" 2>/dev/null || true
  while iptables -D FORWARD -i "$BR" -j ACCEPT 2>/dev/null; do :; done
  rm -rf "$WORK"
}
trap cleanup EXIT INT TERM

now() { echo "$EPOCHREALTIME"; }

# `ip monitor` in the backup's namespace timestamps the VIP's arrival without the
# fork-per-poll latency of a polling loop (which on a loaded machine adds 10s of ms).
mon_start() {
  ip -n "wvip${TAG}h2" -ts monitor address > "$WORK/mon" 2>&1 &
  PIDS+=($!)
  sleep 0.2
}
mon_time() { # epoch seconds the VIP appeared on host 2, or fallback $1
  local ts
  ts=$(grep -v Deleted "$WORK/mon" | grep -m1 "inet $VIP/" | sed -n 's/^\[\([^]]*\)\].*/\1/p')
  if [ -n "$ts" ]; then date -d "$ts" +%s.%N; else echo "$1"; fi
}

setup() {
  ip link add "$BR" type bridge && ip link set "$BR" up
  iptables -I FORWARD -i "$BR" -j ACCEPT
  for i in 1 2; do
    ip netns add "wvip${TAG}h$i"
    ip link add "wv${TAG}h$i" type veth peer name eth0 netns "wvip${TAG}h$i"
    ip link set "wv${TAG}h$i" master "$BR" up
    ip -n "wvip${TAG}h$i" addr add "10.220.$SUB.1$i/24" dev eth0
    ip -n "wvip${TAG}h$i" link set eth0 up
    ip -n "wvip${TAG}h$i" link set lo up
  done
}

# Kill what we started: the recorded pids and anything else running inside our
# namespaces (keepalived's VRRP child process), and wait for them to go.
kill_ns_procs() {
  for p in "${PIDS[@]:-}"; do [ -n "$p" ] && kill -9 "$p" 2>/dev/null || true; done
  PIDS=()
  for i in 1 2; do
    for p in $(ip netns pids "wvip${TAG}h$i" 2>/dev/null); do kill -9 "$p" 2>/dev/null || true; done
  done
  for _ in $(seq 200); do
    local left=""
    for i in 1 2; do left="$left$(ip netns pids "wvip${TAG}h$i" 2>/dev/null)"; done
    [ -z "$left" ] && break
    sleep 0.01
  done
}

teardown() {
  kill_ns_procs
  for i in 1 2; do ip netns del "wvip${TAG}h$i" 2>/dev/null || true; done
  ip link del "$BR" 2>/dev/null || true
  while iptables -D FORWARD -i "$BR" -j ACCEPT 2>/dev/null; do :; done
}

has_vip() { ip -n "wvip${TAG}h$1" -4 -o addr show dev eth0 | grep -q "inet $VIP/"; }

wait_vip() { # host, timeout s
  local end=$(( $(date +%s) + $2 ))
  while ! has_vip "$1"; do
    [ "$(date +%s)" -gt "$end" ] && return 1
    sleep 0.002
  done
}

start_keepalived() { # host prio version advert
  local c="$WORK/k$1.conf"
  cat > "$c" <<EOT
global_defs {
  router_id wvip$TAG$1
}
vrrp_instance VI_1 {
  state BACKUP
  interface eth0
  virtual_router_id 51
  priority $2
  advert_int $4
  version $3
  virtual_ipaddress {
    $VIP/24
  }
}
EOT
  rm -f "$WORK/k$1.pid" "$WORK/k$1.vpid"   # stale pid files from the previous run
  ip netns exec "wvip${TAG}h$1" "$KEEPALIVED" -n -l -D -P -f "$c" -p "$WORK/k$1.pid" -r "$WORK/k$1.vpid" > "$WORK/k$1.log" 2>&1 &
  PIDS+=($!)
}

start_warren() { # host prio version advert [track-file]
  local c="$WORK/w$1.toml"
  local adv=$4
  [ "$3" = 2 ] && adv="${4}s" || adv="$(awk "BEGIN{print $4*1000}")ms"
  cat > "$c" <<EOT
[[instance]]
name = "VI_1"
interface = "eth0"
virtual_router_id = 51
priority = $2
advert_int = "$adv"
version = $3
virtual_ipaddress = ["$VIP/24"]
EOT
  if [ -n "${5:-}" ]; then
    cat >> "$c" <<EOT
[[instance.track]]
type = "exec"
command = ["/bin/sh", "-c", "test ! -e $5"]
interval = "50ms"
rise = 1
fall = 1
weight = 0
EOT
  fi
  RUST_LOG=warn,netlink_packet_route=error ip netns exec "wvip${TAG}h$1" "$WARREN" --log-json --config "$c" > "$WORK/w$1.log" 2>&1 &
  PIDS+=($!)
}

# One host-death measurement; prints seconds.
death() { # impl version advert
  setup
  if [ "$1" = keepalived ]; then start_keepalived 1 250 "$2" "$3"; start_keepalived 2 200 "$2" "$3";
  else start_warren 1 250 "$2" "$3"; start_warren 2 200 "$2" "$3"; fi
  wait_vip 1 30 || { echo "no VIP on master ($1):" >&2; tail -n 5 "$WORK"/[kw]1.log >&2; teardown; echo nan; return; }
  # Let the backup settle (it must have seen the master's adverts).
  sleep $(awk "BEGIN{print $3*5}")
  has_vip 2 && { echo "both hold the VIP" >&2; }
  mon_start
  local t0 t1
  t0=$(now)
  ip link set "wv${TAG}h1" down
  wait_vip 2 30 || { teardown; echo nan; return; }
  t1=$(mon_time "$(now)")
  teardown
  awk "BEGIN{printf \"%.3f\", $t1-$t0}"
}

graceful() { # version advert
  setup
  local flag="$WORK/lbdown"; rm -f "$flag"
  start_warren 1 250 "$1" "$2" "$flag"; start_warren 2 200 "$1" "$2"
  wait_vip 1 30 || { teardown; echo nan; return; }
  sleep $(awk "BEGIN{print $2*5}")
  mon_start
  local t0 t1
  t0=$(now)
  touch "$flag"
  wait_vip 2 30 || { teardown; echo nan; return; }
  t1=$(mon_time "$(now)")
  # When did the master resign (its "Entering FAULT" log line)?
  local ts tf
  ts=$(grep -m1 'Entering FAULT' "$WORK/w1.log" | sed -n 's/.*"timestamp":"\([^"]*\)".*/\1/p')
  tf=$(date -d "$ts" +%s.%N 2>/dev/null || echo "$t0")
  teardown
  awk "BEGIN{printf \"%.3f/%.3f\", $t1-$t0, $t1-$tf}"
}

median() { tr ' ' '\n' | grep -v '^$' | sort -n | awk '{a[NR]=$1} END{ if (NR==0) print "nan"; else if (NR%2) print a[(NR+1)/2]; else printf "%.3f\n", (a[NR/2]+a[NR/2+1])/2 }'; }

echo "warren-vip: $WARREN"
echo "keepalived: $($KEEPALIVED --version 2>&1 | head -1)"
echo "runs per cell: $RUNS; master priority 250, backup 200"
declare -A R
for cell in "2 1" "3 0.1"; do
  set -- $cell
  for impl in keepalived warren; do
    vals=""
    for _ in $(seq "$RUNS"); do vals="$vals $(death $impl "$1" "$2")"; done
    R["$impl $1"]="$vals"
  done
done
g=""; gh=""
for _ in $(seq "$RUNS"); do
  v=$(graceful 3 0.1); g="$g ${v%/*}"; gh="$gh ${v#*/}"
done

printf '\n%-44s %12s %12s %8s\n' "scenario (median of $RUNS, seconds)" keepalived warren-vip ratio
for cell in "2 1" "3 0.1"; do
  set -- $cell
  k=$(echo "${R[keepalived $1]}" | median); w=$(echo "${R[warren $1]}" | median)
  printf '%-44s %12s %12s %8s\n' "host death, VRRPv$1 advert ${2}s" "$k" "$w" "$(awk "BEGIN{ if ($k>0) printf \"%.2f\", $w/$k; else print \"-\" }")"
  echo "    runs: keepalived [${R[keepalived $1]# }]  warren-vip [${R[warren $1]# }]"
done
printf '%-44s %12s %12s\n' "graceful: lb fails -> VIP on backup, v3 0.1s" "-" "$(echo "$g" | median)"
echo "    runs: warren-vip [${g# }] (includes tracker detection: exec check every 50 ms)"
printf '%-44s %12s %12s\n' "graceful: master resigns -> VIP on backup" "-" "$(echo "$gh" | median)"
echo "    runs: warren-vip [${gh# }] (priority-0 advert; backup waits Skew_Time = 21.9 ms)"
