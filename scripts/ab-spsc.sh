#!/usr/bin/env bash
# A/B of two builds of the `mmring` binary on spsc streams and round trips
# (README, Performance: the spsc word-first poll):
#
#   scripts/ab-spsc.sh BASE_BINARY NEW_BINARY [ROUNDS]
#
# Each round runs both binaries, under `chrt -f 10` when allowed: the
# cache-line round trip, spsc 1 x 1 on a 256 KiB and a 4 MiB ring (N
# messages of 64 B, default 2000000; M msgs/s), and the spsc round trip
# p50 (`--case ring-rtt`, 100000 round trips; ns). Take medians over rounds.
set -eu
base=$1 new=$2 rounds=${3:-5}
N=${N:-2000000}
rt=""
if chrt -f 10 true 2>/dev/null; then rt="chrt -f 10"; fi
rate() { awk -v n="$N" '/elapsed_ns/ { printf "%.1f", n / $2 * 1000 }'; }
for i in $(seq "$rounds"); do
  for b in base new; do
    if [ $b = base ]; then bin=$base; else bin=$new; fi
    cl=$($rt "$bin" bench --case cache-line-rtt --count 100000 | awk '/p50_ns/ {print $2}')
    s1=$($rt "$bin" bench --case ring --kind spsc --count "$N" --capacity 256K | rate)
    s4=$($rt "$bin" bench --case ring --kind spsc --count "$N" | rate)
    rt3=$($rt "$bin" bench --case ring-rtt --count 100000 | awk '/p50_ns/ {print $2}')
    echo "round $i $b: cl ${cl} ns; spsc 256K $s1, spsc 4M $s4, rtt p50 $rt3"
  done
done
