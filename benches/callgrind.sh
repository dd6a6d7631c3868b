#!/usr/bin/env bash
# Instructions per request of the bare client, bare-tls, mesh-default and mesh-full, counted by
# callgrind: the load harness's worker runs each variant at concurrency 1 on a
# current-thread runtime, once with N requests and once with 2N, so that everything done
# once (process start, certificates, servers, warm-up) cancels:
#
#   instructions per request = (Ir(2N) - Ir(N)) / N
#
# Usage: benches/callgrind.sh [N]   (N defaults to 2000; a run takes a few minutes)
# The worker's client and server are in one process, so a request counts both ends.
set -euo pipefail

N="${1:-2000}"
WARMUP=200
VARIANTS=(bare bare-tls mesh-default mesh-full)
cd "$(dirname "$0")/.."

command -v valgrind >/dev/null || { echo "valgrind is required" >&2; exit 1; }

exe="$(cargo bench --bench load --no-run --message-format=json 2>/dev/null \
    | grep -o '"executable":"[^"]*"' | tail -n 1 | cut -d'"' -f4)"
[ -x "$exe" ] || { echo "could not build the load harness" >&2; exit 1; }

out="$(mktemp -d)"
trap 'rm -rf "$out"' EXIT

# One-time work whose instruction count depends on timing, not on the requests: the metrics
# recorder's clock calibration (quanta) loops until its readings settle. Its inclusive count
# is subtracted from a run's total, so that it does not leak into the per-request figure.
TIMING_DEPENDENT='quanta::Clock::new'

# Total instructions of one worker run of $1 with $2 requests, less the timing-dependent
# one-time work.
instructions() {
    local log="$out/$1-$2.log"
    valgrind --tool=callgrind --callgrind-out-file="$out/$1-$2.out" \
        "$exe" --worker --variant "$1" --concurrency 1 --requests "$2" --warmup "$WARMUP" \
        --threads 0 --deadline 900 >"$out/$1-$2.json" 2>"$log" \
        || { cat "$log" >&2; echo "callgrind run of $1 failed" >&2; exit 1; }
    if ! grep -q '"errors":0' "$out/$1-$2.json"; then
        echo "warning: $1 with $2 requests had errors: $(cat "$out/$1-$2.json")" >&2
    fi
    local total once
    total="$(grep -E '^==[0-9]+== Collected : ' "$log" | awk '{print $NF}')"
    once="$(callgrind_annotate --inclusive=yes --threshold=100 "$out/$1-$2.out" 2>/dev/null \
        | grep -F "$TIMING_DEPENDENT " | head -n 1 | awk '{gsub(",", "", $1); print $1}')"
    echo $(( total - ${once:-0} ))
}

printf '%-14s %16s %16s %14s %10s %12s\n' variant "Ir(N=$N)" "Ir(2N)" "Ir/request" "vs bare" "vs bare-tls"
bare_per=""
tls_per=""
for variant in "${VARIANTS[@]}"; do
    one="$(instructions "$variant" "$N")"
    two="$(instructions "$variant" "$((2 * N))")"
    per=$(( (two - one) / N ))
    [ -n "$bare_per" ] || bare_per="$per"
    [ "$variant" != bare-tls ] || tls_per="$per"
    ratio="$(awk -v a="$per" -v b="$bare_per" 'BEGIN { printf "%.2f", a / b }')"
    # mesh-full is the TLS variant, so it is also compared with bare-tls.
    vs_tls="-"
    if [ "$variant" = mesh-full ] && [ -n "$tls_per" ]; then
        vs_tls="$(awk -v a="$per" -v b="$tls_per" 'BEGIN { printf "%.2f", a / b }')"
    fi
    printf '%-14s %16s %16s %14s %10s %12s\n' "$variant" "$one" "$two" "$per" "$ratio" "$vs_tls"
done
