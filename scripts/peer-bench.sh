#!/usr/bin/env bash
# Peer benchmark: MQTTX CLI `simulate` publishing through a real mosquitto, to
# quote beside `mqtt-workbench bench` from the same run on the same machine.
#
# N simulated devices (one MQTT connection each, MQTT 3.1.1, QoS 0) publish a
# small JSON value {"v":n} on bench/<i> at R msg/s each, like our bench does.
# One mosquitto_sub on '#' counts what mosquitto delivers. After the warm-up
# (all clients connected and the delivered rate near N*R), it samples
# utime+stime from /proc of mosquitto, of the MQTTX node process (with its
# children) and of the subscriber over the window, and prints delivered msg/s,
# CPU-s per 1k delivered messages, and peak RSS (VmHWM) of each process.
#
# MQTTX source: public repository github.com/emqx/MQTTX, folder cli/, built
# with npm only:  cd cli && npm install && npm run build  (its yarn.lock points
# at mirror registries: rewrite them to registry.npmjs.org first). Then:
#   scripts/peer-bench.sh --mqttx /path/to/MQTTX/cli [--devices 3000] [--rate 1]
#       [--duration 15] [--warmup S] [--connect-interval 10]
# Needs /usr/sbin/mosquitto and mosquitto_sub (Debian: mosquitto, mosquitto-clients).
set -euo pipefail

MQTTX="" DEVICES=3000 RATE=1 DURATION=15 WARMUP="" CONNECT_MS=10
MOSQUITTO=${MOSQUITTO:-/usr/sbin/mosquitto}
die() { echo "peer-bench: $*" >&2; exit 1; }
usage() { sed -n '16,18s/^# \{0,3\}//p' "$0"; exit "${1:-0}"; }
while (($#)); do
  case $1 in
    --mqttx) MQTTX=${2-} ;;
    --devices) DEVICES=${2-} ;;
    --rate) RATE=${2-} ;;
    --duration) DURATION=${2-} ;;
    --warmup) WARMUP=${2-} ;;
    --connect-interval) CONNECT_MS=${2-} ;; # ms between MQTTX connects (its -i)
    -h | --help) usage ;;
    *) echo "unknown argument: $1" >&2; usage 2 ;;
  esac
  shift 2 || usage 2
done
[[ -n $MQTTX && -f $MQTTX/bin/index.js && -d $MQTTX/dist ]] || die "--mqttx DIR: a built MQTTX cli/ folder (bin/index.js and dist/)"
[[ -x $MOSQUITTO ]] || die "no mosquitto at $MOSQUITTO"
command -v mosquitto_sub >/dev/null || die "mosquitto_sub not found (apt-get install mosquitto-clients)"
[[ $DEVICES =~ ^[1-9][0-9]*$ && $DURATION =~ ^[1-9][0-9]*$ ]] || die "--devices and --duration: positive integers"
MSG_MS=$(awk -v r="$RATE" 'BEGIN { if (r + 0 <= 0) exit 1; printf "%d", 1000 / r + 0.5 }') || die "--rate: > 0"

# Each device is one socket in node and one in mosquitto: each process needs
# N descriptors (plus a few), and N client ports come from the ephemeral range.
hard=$(ulimit -Hn); [[ $hard == unlimited ]] && hard=1048576
ulimit -n "$hard"
read -r lo hi </proc/sys/net/ipv4/ip_local_port_range
((DEVICES + 64 <= hard)) || die "$DEVICES devices need $((DEVICES + 64)) open files per process; the limit (ulimit -Hn) is $hard: use --devices <= $((hard - 64))"
((DEVICES < hi - lo)) || die "$DEVICES devices exceed the ephemeral port range ($lo-$hi)"

W=$(mktemp -d /tmp/peer-bench.XXXXXX)
PIDS=()
cleanup() {
  for p in "${PIDS[@]}"; do kill "$p" 2>/dev/null || true; done
  wait 2>/dev/null || true
  rm -rf "$W"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

PORT=$(python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
cat >"$W/mosquitto.conf" <<EOF
listener $PORT 127.0.0.1
allow_anonymous true
max_connections -1
max_queued_messages 0
persistence false
log_dest none
EOF
# The scenario: a small numeric JSON value per device, counting up.
cat >"$W/bench.js" <<'EOF'
const seq = {}
module.exports = {
  name: 'bench',
  generator: (faker, options) => {
    seq[options.clientId] = (seq[options.clientId] ?? -1) + 1
    return { message: JSON.stringify({ v: seq[options.clientId] }) }
  },
}
EOF

conns() { ss -Htn state established "( sport = :$PORT )" | wc -l; } # server side sockets
count() { stat -c %s "$W/sub.out"; }                                  # one byte per message
now() { date +%s.%N; }
ticks() { # utime+stime of a process and its descendants, in clock ticks
  local t c
  t=$(awk '{ sub(/^.*\) /, ""); print $12 + $13 }' "/proc/$1/stat" 2>/dev/null || echo 0)
  for c in $(ps -o pid= --ppid "$1" || true); do t=$((t + $(ticks "$c"))); done
  echo "$t"
}
hwm_kib() { awk '/^VmHWM:/ { print $2 }' "/proc/$1/status"; }
alive() { kill -0 "$1" 2>/dev/null || die "$2 exited: $(tail -c 600 "$3" 2>/dev/null)"; }

VERSION=$(node "$MQTTX/bin/index.js" --version | head -1)
"$MOSQUITTO" -c "$W/mosquitto.conf" >"$W/mosquitto.log" 2>&1 & MPID=$!; PIDS=("$MPID")
for _ in $(seq 50); do ss -Hltn "( sport = :$PORT )" | grep -q . && break; sleep 0.1; done
alive "$MPID" mosquitto "$W/mosquitto.log"
mosquitto_sub -h 127.0.0.1 -p "$PORT" -t '#' -q 0 -N -F . >"$W/sub.out" 2>"$W/sub.err" & SPID=$!
PIDS=("$SPID" "${PIDS[@]}")
for _ in $(seq 50); do (($(conns) >= 1)) && break; sleep 0.1; done
node "$MQTTX/bin/index.js" simulate -f "$W/bench.js" -c "$DEVICES" -i "$CONNECT_MS" -im "$MSG_MS" \
  -t 'bench/%i' -I 'bench-%i' -q 0 -V 3.1.1 -k 60 -h 127.0.0.1 -p "$PORT" -v >"$W/mqttx.log" 2>&1 & NPID=$!
PIDS=("$NPID" "${PIDS[@]}")

OFFERED=$(awk -v n="$DEVICES" -v ms="$MSG_MS" 'BEGIN { printf "%.0f", n * 1000 / ms }')
t0=$(now)
if [[ -n $WARMUP ]]; then
  sleep "$WARMUP"
else # until two 1-s samples deliver >= 90% of the offered rate, within a bound
  limit=$((DEVICES * CONNECT_MS / 1000 + 60)) ok=0 w0=$SECONDS c0=$(count)
  while ((ok < 2)); do
    sleep 1; c1=$(count)
    alive "$NPID" "MQTTX simulate" "$W/mqttx.log"
    ((10 * (c1 - c0) >= 9 * OFFERED)) && ok=$((ok + 1)) || ok=0
    ((SECONDS - w0 < limit)) || die "no steady $OFFERED msg/s after ${limit}s (last $((c1 - c0)) msg/s, $(($(conns) - 1)) devices connected)"
    c0=$c1
  done
fi
WARM=$(awk -v a="$t0" -v b="$(now)" 'BEGIN { printf "%.1f", b - a }')

alive "$NPID" "MQTTX simulate" "$W/mqttx.log"
conn_a=$(($(conns) - 1)) c_a=$(count) ta=$(now)
m_a=$(ticks "$MPID") n_a=$(ticks "$NPID") s_a=$(ticks "$SPID")
sleep "$DURATION"
c_b=$(count) tb=$(now)
m_b=$(ticks "$MPID") n_b=$(ticks "$NPID") s_b=$(ticks "$SPID")
conn_b=$(($(conns) - 1))
alive "$NPID" "MQTTX simulate" "$W/mqttx.log"
m_hwm=$(hwm_kib "$MPID") n_hwm=$(hwm_kib "$NPID") s_hwm=$(hwm_kib "$SPID")
created=$(grep -ao 'Created [0-9]* connections in [0-9.]*s' "$W/mqttx.log" | head -1 || true)
created=${created:-none logged}

awk -v ver="$VERSION" -v mv="$("$MOSQUITTO" -h | awk 'NR == 1 { print $3 }')" -v port="$PORT" \
  -v n="$DEVICES" -v rate="$RATE" -v ms="$MSG_MS" -v off="$OFFERED" -v ca="$conn_a" -v cb="$conn_b" \
  -v created="$created" -v warm="$WARM" -v win="$(awk -v a="$ta" -v b="$tb" 'BEGIN { print b - a }')" \
  -v del=$((c_b - c_a)) -v hz="$(getconf CLK_TCK)" -v m=$((m_b - m_a)) -v x=$((n_b - n_a)) -v s=$((s_b - s_a)) \
  -v mh="$m_hwm" -v nh="$n_hwm" -v sh="$s_hwm" 'BEGIN {
  k = del > 0 ? del / 1000 : 1
  printf "peer bench: MQTTX CLI %s simulate -> mosquitto %s on 127.0.0.1:%s\n", ver, mv, port
  printf "devices              %d requested; connected %d at window start, %d at end (MQTTX: %s)\n", n, ca, cb, created
  printf "offered              %d msg/s (%d x %s Hz, every %d ms), QoS 0, MQTT 3.1.1, payload {\"v\":n}\n", off, n, rate, ms
  printf "warm-up / window     %.1f s / %.1f s\n", warm, win
  printf "delivered            %d (%.0f msg/s, %.1f%% of offered)\n", del, del / win, 100 * del / win / off
  printf "CPU-s per 1k msgs    all %.4f | mosquitto %.4f | mqttx node %.4f | subscriber %.4f\n", (m + x + s) / hz / k, m / hz / k, x / hz / k, s / hz / k
  printf "CPU (cores)          all %.2f | mosquitto %.2f | mqttx node %.2f | subscriber %.2f\n", (m + x + s) / hz / win, m / hz / win, x / hz / win, s / hz / win
  printf "peak RSS (VmHWM)     mosquitto %.1f MiB (%.1f KiB/device) | mqttx node %.1f MiB (%.1f KiB/device) | subscriber %.1f MiB\n", mh / 1024, mh / n, nh / 1024, nh / n, sh / 1024
}'
