#!/usr/bin/env bash
# Load on the web app as deployed: gunicorn with 2 sync workers, DEBUG off, a fresh
# SQLite database in a temporary folder, static files collected (hashed, gzipped).
#
#     bench/load.sh [--duration SECONDS] [--long SECONDS]
#
# Two runs, both with wrk against 127.0.0.1 only:
#   1. pages (issue 9): 16 connections, /healthz, the questionnaire and a share page
#      side by side, each for --duration seconds (default 15, in 3 interleaved
#      rounds); the share page's and
#      the questionnaire's requests per second as a share of /healthz's, and the
#      bytes a browser fetches for a share page (HTML, scripts and styles, gzip).
#      Targets: share page >= 40 %, questionnaire >= 30 %, zero errors, <= 1.5 MB.
#   2. load (issue 10): 64 connections for --long seconds (default 20) on /,
#      POST /api/recommendations and a share page; target: zero errors.
# Rate limits are raised for the benchmark by setting RATE_LIMIT_SCALE (never by
# code): 1000 times every limit, since all the load comes from one address.
# Needs wrk (apt-get install wrk) and curl; prints numbers, asserts nothing.
set -euo pipefail
cd "$(dirname "$0")/.."

DURATION=15
ROUNDS=3
LONG=20
while [ $# -gt 0 ]; do
  case "$1" in
    --duration) DURATION=$2; shift 2 ;;
    --long) LONG=$2; shift 2 ;;
    *) echo "usage: bench/load.sh [--duration SECONDS] [--long SECONDS]" >&2; exit 2 ;;
  esac
done

for tool in wrk curl; do
  command -v "$tool" >/dev/null || { echo "bench/load.sh needs $tool (apt-get install $tool)" >&2; exit 2; }
done
PY=.venv/bin/python
[ -x "$PY" ] || { echo "run make install first" >&2; exit 2; }

WORK=$(mktemp -d)
unset DATABASE_URL REDIS_URL
export SWITCHBOARD_VAR_DIR="$WORK/var"
export DJANGO_DEBUG=0
export DJANGO_SECRET_KEY="bench-$(head -c 16 /dev/urandom | od -An -tx1 | tr -d ' \n')"
export DJANGO_ALLOWED_HOSTS=127.0.0.1,localhost
# Plain http on loopback: secure-only cookies would never come back.
export DJANGO_SECURE_COOKIES=0
export DJANGO_SECURE_SSL_REDIRECT=0
export DJANGO_SECURE_HSTS_SECONDS=0
export RATE_LIMIT_SCALE=1000
export LOG_LEVEL=WARNING
mkdir -p "$SWITCHBOARD_VAR_DIR/celery/out" "$SWITCHBOARD_VAR_DIR/celery/processed" "$SWITCHBOARD_VAR_DIR/celery/control"
$PY manage.py migrate --noinput -v 0
$PY manage.py collectstatic --noinput -v 0

PORT=$($PY -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
BASE="http://127.0.0.1:$PORT"
.venv/bin/gunicorn advisor.wsgi --workers 2 --bind "127.0.0.1:$PORT" --log-level warning \
  >"$WORK/gunicorn.log" 2>&1 &
SERVER=$!
cleanup() {
  kill -TERM "$SERVER" 2>/dev/null || true
  wait "$SERVER" 2>/dev/null || true
  rm -rf "$WORK"
}
trap cleanup EXIT

for _ in $(seq 1 100); do
  curl -fs -o /dev/null "$BASE/healthz" && break
  sleep 0.1
done
curl -fs -o /dev/null "$BASE/healthz" || { cat "$WORK/gunicorn.log" >&2; exit 1; }

BODY='{"title": "Orders to the warehouse", "interaction": "fire_and_forget", "receiver_may_be_offline": true, "rate_per_second": 50, "delivery": "at_least_once"}'
SHARE=$(curl -fs -X POST -H 'Content-Type: application/json' -d "$BODY" "$BASE/api/recommendations" |
  $PY -c 'import json, sys; print(json.load(sys.stdin)["share_url"])')
SHARE_PATH="/${SHARE#*://*/}"
# Warm both workers: each process renders a share page and the questionnaire once.
for _ in 1 2 3 4 5 6; do
  curl -fs -o /dev/null "$BASE$SHARE_PATH"
  curl -fs -o /dev/null "$BASE/"
done

cat >"$WORK/post.lua" <<EOF
wrk.method = "POST"
wrk.body = '$BODY'
wrk.headers["Content-Type"] = "application/json"
EOF

# wrk's summary -> "rps errors requests": errors are socket errors plus non-2xx/3xx.
run() {
  local connections=$1 seconds=$2 url=$3
  shift 3
  # One wrk thread: it shares the two cores with gunicorn's two workers.
  wrk -t1 -c"$connections" -d"${seconds}s" --timeout 10s "$@" "$url" >"$WORK/wrk.txt" 2>&1
  $PY - "$WORK/wrk.txt" <<'EOF'
import re, sys
text = open(sys.argv[1]).read()
rps = float(re.search(r"Requests/sec:\s+([\d.]+)", text).group(1))
requests = int(re.search(r"(\d+) requests in", text).group(1))
errors = sum(int(n) for n in re.findall(r"(?:connect|read|write|timeout) (\d+)", text))
bad = re.search(r"Non-2xx or 3xx responses: (\d+)", text)
errors += int(bad.group(1)) if bad else 0
print(f"{rps:.0f} {errors} {requests}")
EOF
}

echo "Switchboard under wrk: gunicorn, 2 sync workers, DEBUG off, SQLite, $(nproc) cores shared with wrk"
echo
echo "1. Pages: 16 connections, ${DURATION} s each, in $ROUNDS interleaved rounds"
# The three side by side, round after round, so a change in what else the machine
# is doing falls on all three alike rather than on whichever ran last.
declare -A RPS_SUM ERR_SUM N_SUM
for name in health home share; do RPS_SUM[$name]=0; ERR_SUM[$name]=0; N_SUM[$name]=0; done
SLICE=$(( DURATION / ROUNDS > 0 ? DURATION / ROUNDS : 1 ))
for _ in $(seq 1 "$ROUNDS"); do
  for name in health home share; do
    case $name in
      health) url="$BASE/healthz" ;;
      home) url="$BASE/" ;;
      share) url="$BASE$SHARE_PATH" ;;
    esac
    read -r rps err n < <(run 16 "$SLICE" "$url")
    RPS_SUM[$name]=$(( RPS_SUM[$name] + rps )); ERR_SUM[$name]=$(( ERR_SUM[$name] + err )); N_SUM[$name]=$(( N_SUM[$name] + n ))
  done
done
HEALTH_RPS=$(( RPS_SUM[health] / ROUNDS )); HOME_RPS=$(( RPS_SUM[home] / ROUNDS )); SHARE_RPS=$(( RPS_SUM[share] / ROUNDS ))
HEALTH_ERR=${ERR_SUM[health]}; HOME_ERR=${ERR_SUM[home]}; SHARE_ERR=${ERR_SUM[share]}
HEALTH_N=${N_SUM[health]}; HOME_N=${N_SUM[home]}; SHARE_N=${N_SUM[share]}
printf '   %-22s %9s %11s %9s %9s\n' "endpoint" "req/s" "of /healthz" "requests" "errors"
printf '   %-22s %9s %11s %9s %9s\n' "/healthz" "$HEALTH_RPS" "100 %" "$HEALTH_N" "$HEALTH_ERR"
printf '   %-22s %9s %11s %9s %9s\n' "/ (questionnaire)" "$HOME_RPS" "$((100 * HOME_RPS / HEALTH_RPS)) %" "$HOME_N" "$HOME_ERR"
printf '   %-22s %9s %11s %9s %9s\n' "/s/<token> (share)" "$SHARE_RPS" "$((100 * SHARE_RPS / HEALTH_RPS)) %" "$SHARE_N" "$SHARE_ERR"
echo "   targets: share page >= 40 %, questionnaire >= 30 %, zero errors"

# What a browser fetches for a share page, as it would (gzip accepted), in bytes
# actually transferred.
curl -fs "$BASE$SHARE_PATH" -o "$WORK/share.html"
HTML_BYTES=$(curl -fs -H 'Accept-Encoding: gzip' -o /dev/null -w '%{size_download}' "$BASE$SHARE_PATH")
echo
echo "   a share page over the wire, with its scripts and styles (Accept-Encoding: gzip;"
echo "   WhiteNoise sends the static files gzipped, the app its HTML (pages with no secret in it):"
printf '     %-58s %9s bytes\n' "$SHARE_PATH (HTML)" "$HTML_BYTES"
TOTAL=$HTML_BYTES
for asset in $(grep -oE '(src|href)="/static/[^"]+"' "$WORK/share.html" | sed -E 's/^(src|href)="//; s/"$//' | sort -u); do
  size=$(curl -fs -H 'Accept-Encoding: gzip' -o /dev/null -w '%{size_download}' "$BASE$asset")
  cache=$(curl -fsI -H 'Accept-Encoding: gzip' "$BASE$asset" | tr -d '\r' | grep -i '^cache-control:' | cut -d' ' -f2-)
  printf '     %-58s %9s bytes  (%s)\n' "$asset" "$size" "$cache"
  TOTAL=$((TOTAL + size))
done
printf '     %-58s %9s bytes = %s MB (target <= 1.5 MB)\n' "total" "$TOTAL" "$($PY -c "print(round($TOTAL / 1e6, 2))")"

echo
echo "2. Load: 64 connections, ${LONG} s each, RATE_LIMIT_SCALE=$RATE_LIMIT_SCALE"
read -r A_RPS A_ERR A_N < <(run 64 "$LONG" "$BASE/")
read -r B_RPS B_ERR B_N < <(run 64 "$LONG" "$BASE/api/recommendations" -s "$WORK/post.lua")
read -r C_RPS C_ERR C_N < <(run 64 "$LONG" "$BASE$SHARE_PATH")
printf '   %-28s %9s %9s %9s\n' "endpoint" "req/s" "requests" "errors"
printf '   %-28s %9s %9s %9s\n' "GET /" "$A_RPS" "$A_N" "$A_ERR"
printf '   %-28s %9s %9s %9s\n' "POST /api/recommendations" "$B_RPS" "$B_N" "$B_ERR"
printf '   %-28s %9s %9s %9s\n' "GET /s/<token>" "$C_RPS" "$C_N" "$C_ERR"
echo "   target: zero errors"
if grep -qiE 'error|exception|locked' "$WORK/gunicorn.log"; then
  echo
  echo "gunicorn logged errors:"
  grep -iE 'error|exception|locked' "$WORK/gunicorn.log" | sort | uniq -c | head -20
fi
