#!/bin/sh
# What the publisher's options cost: speech jobs through RabbitMQ, 2 workers,
# output on the disk (fsync on), for a ~155 and a ~2,000-character text, with
# nothing asked, with "loudness": -16 (levelling: spill, passes, limiter),
# with "captions": "both", and with both. Prints jobs/s, p50/p99 and each
# case against the plain one.
#   bench/features.sh [jobs_short]      (the long text runs a fifth as many)
# Needs a RabbitMQ on 127.0.0.1:5672 (scripts/rabbitmq-local.sh start).
set -eu
cd "$(dirname "$0")/.."
N=${1:-1500}
make -s all bench-tools
scripts/rabbitmq-local.sh start >/dev/null
. bench/lib.sh

SHORT="The quick brown fox jumps over the lazy dog. Content becomes audio at scale: a master process forks workers, each runs one event loop, and nothing is lost."
LONG=$(i=0; while [ $i -lt 13 ]; do printf '%s ' "$SHORT"; i=$((i + 1)); done)

echo "c2a-worker features bench: $(nproc) cores, 2 workers, fsync yes, $(date -u +%Y-%m-%d)"
printf '%-44s %8s %8s %8s %7s\n' case jobs/s p50_ms p99_ms ratio
for size in short long; do
    if [ $size = short ]; then T=$SHORT n=$N; else T=$LONG n=$((N / 5)); fi
    chars=$(printf '%s' "$T" | wc -c)
    plain=
    for extra in '' ',"loudness":-16' ',"captions":"both"' ',"loudness":-16,"captions":"both"'; do
        q=bench.features.$$.$size.$(printf '%s' "$extra" | tr -cd 'a-z' | head -c 20)
        bench_start 2 builtin:speech 4 "$q" warn yes
        out=$(build/bench/loadgen "$URL" "$q" "$n" 16 \
            "$(printf '{"text":"%s","format":"ogg"%s}' "$T" "$extra")")
        bench_stop
        rate=$(field "$out" jobs/s)
        [ -z "$plain" ] && plain=$rate
        printf '%-44s %8s %8s %8s %7s\n' "$chars chars, ogg${extra:+ $extra}" "$rate" \
            "$(field "$out" p50_ms)" "$(field "$out" p99_ms)" \
            "$(echo "$rate $plain" | awk '{printf "%.2f", $1 / $2}')"
    done
done
