#!/usr/bin/env bash
# Closed-loop simulation over real HTTP (contract A), as the course grader drives the service:
# starts `cinerec serve` on a fresh SQLite store, runs `cinerec simulate` against it with the
# reference policies in the same run, and writes docs/simulation/<dataset>.{json,png}.
# A data set is a MovieLens folder or a synthetic population, synthetic:<preset> (skewed,
# mild, holdout), written as docs/simulation/synthetic-<preset>.{json,png}.
#
#   benchmarks/simulate_http.sh ../shared/datasets/ml-100k [more datasets...]
#   benchmarks/simulate_http.sh synthetic:skewed synthetic:mild synthetic:holdout
#   .venv/bin/python benchmarks/populations.py     # one table over docs/simulation/*.json
#
# Environment: USERS (1000), REQUESTS (8), CONCURRENCY (50), SEED (0), OUT (docs/simulation),
# TIME_SCALE (1.0), SIM_ARGS (more `cinerec simulate` flags, e.g. "--items 5000"), PORT (5101)
# and COLLECTOR_PORT (5100) for the server (pick free ones when other runs share the machine:
# a second run on the same ports would drive the first one's server); any CINEREC_* setting
# passes through to the server (the service runs on its defaults otherwise).
set -euo pipefail
cd "$(dirname "$0")/.."
export OPENBLAS_NUM_THREADS=1
OUT="${OUT:-docs/simulation}"
CINEREC=.venv/bin/cinerec
for dataset in "$@"; do
  case "$dataset" in
    synthetic:*) name="synthetic-${dataset#synthetic:}" ;;
    *) name="$(basename "$dataset")" ;;
  esac
  work="$(mktemp -d)"
  port="${PORT:-5101}"
  collector_port="${COLLECTOR_PORT:-5100}"
  CINEREC_DATA_DIR="$work" "$CINEREC" serve --port "$port" --collector-port "$collector_port" \
    --database-url "sqlite:///$work/sim.db" >"$work/server.log" 2>&1 &
  server=$!
  trap 'kill $server 2>/dev/null || true' EXIT
  for _ in $(seq 100); do
    curl -fs "http://127.0.0.1:$collector_port/healthcheck" >/dev/null 2>&1 && break
    sleep 0.2
  done
  "$CINEREC" simulate "$dataset" --url "http://127.0.0.1:$port" \
    --collector-url "http://127.0.0.1:$collector_port" --users "${USERS:-1000}" \
    --requests "${REQUESTS:-8}" --concurrency "${CONCURRENCY:-50}" --seed "${SEED:-0}" \
    --time-scale "${TIME_SCALE:-1.0}" --out "$OUT/$name" ${SIM_ARGS:-}
  kill "$server"
  wait "$server" 2>/dev/null || true
  trap - EXIT
  cp "$work/server.log" "$OUT/$name.server.log"
  rm -rf "$work"
done
