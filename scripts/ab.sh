#!/usr/bin/env bash
# A/B of two builds of the `mmring` binary, alternating:
#
#   scripts/ab.sh BASE_BINARY NEW_BINARY [ROUNDS]
#
# e.g. build the old commit in a worktree with its own target directory and
# copy both `target/release/mmring` binaries aside first. Each round runs
# both binaries: the cache-line round trip (printed beside the figures),
# then SET's cases. Two processes run under `chrt -f 10` when allowed;
# three spinners on two CPUs at normal priority. N (default 2000000)
# messages of 64 B each; rates in M msgs/s. Take medians over rounds.
#
#   SET=mpsc (default; the mpsc word-first poll, README Performance): mpsc
#     1 x 1 on a 256 KiB and a 4 MiB ring, mpsc 2 x 1 on 256 KiB, spsc 1 x 1
#     on 256 KiB.
#   SET=spsc (the spsc word-first poll): spsc 1 x 1 on a 256 KiB and a
#     4 MiB ring, and the spsc round trip p50 (`--case ring-rtt`, 100000
#     round trips; ns).
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
    if [ "${SET:-mpsc}" = spsc ]; then
      s1=$($rt "$bin" bench --case ring --kind spsc --count "$N" --capacity 256K | rate)
      s4=$($rt "$bin" bench --case ring --kind spsc --count "$N" | rate)
      r3=$($rt "$bin" bench --case ring-rtt --count 100000 | awk '/p50_ns/ {print $2}')
      echo "round $i $b: cache-line rtt ${cl} ns; spsc 1x1 256K $s1, spsc 1x1 4M $s4, round trip p50 $r3 ns"
      continue
    fi
    m1=$($rt "$bin" bench --case ring --kind mpsc --count "$N" --capacity 256K | rate)
    m4=$($rt "$bin" bench --case ring --kind mpsc --count "$N" | rate)
    m2=$("$bin" bench --case ring --kind mpsc --producers 2 --count "$N" --capacity 256K | rate)
    s1=$($rt "$bin" bench --case ring --kind spsc --count "$N" --capacity 256K | rate)
    echo "round $i $b: cache-line rtt ${cl} ns; mpsc 1x1 256K $m1, mpsc 1x1 4M $m4, mpsc 2x1 256K $m2, spsc 1x1 256K $s1"
  done
done
