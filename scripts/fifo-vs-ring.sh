#!/bin/sh
# Byte-stream throughput of `mmring send --raw` / `recv --raw` beside a FIFO
# (mkfifo), in one run: the same file through each, read from a pipe
# (`cat FILE | ...`) and from the file itself (`... < FILE`), written to
# /dev/null. A benchmark, not a test: it prints MB/s and ratios.
#
#   scripts/fifo-vs-ring.sh [MMRING] [SIZE_MB] [RUNS]
#
# MMRING defaults to target/release/mmring (build it first:
# cargo build --release); SIZE_MB to 1024; RUNS (best of) to 3.
set -eu
MMRING=${1:-target/release/mmring}
SIZE_MB=${2:-1024}
RUNS=${3:-3}
DIR=$(mktemp -d /tmp/mmring-fifo-XXXXXX)
trap 'rm -rf "$DIR"; rm -f /dev/shm/mmring-fifo-bench-$$' EXIT
FILE=$DIR/data
RING=/dev/shm/mmring-fifo-bench-$$
head -c "$((SIZE_MB << 20))" /dev/urandom > "$FILE"
cat "$FILE" > /dev/null # into the page cache
mkfifo "$DIR/fifo"
"$MMRING" create "$RING" >/dev/null

now() { date +%s%N; }
# ns taken by the shell command "$1"
timed() {
	t0=$(now)
	sh -c "$1"
	echo $(($(now) - t0))
}
mbs() { echo "$SIZE_MB $1" | awk '{ printf "%.0f", $1 * 1048576 / ($2 / 1e9) / 1e6 }'; }
min() { if [ "$1" = 0 ] || [ "$2" -lt "$1" ]; then echo "$2"; else echo "$1"; fi; }

# The four transfers take turns, so a busy moment of the machine hits them
# alike; each keeps its best (shortest) run. recv is given 0.2 s to attach
# before send starts; that wait is taken off its time.
fifo_pipe=0 ring_pipe=0 fifo_file=0 ring_file=0
for _ in $(seq "$RUNS"); do
	fifo_pipe=$(min $fifo_pipe "$(timed "cat '$FILE' | cat > '$DIR/fifo' & cat '$DIR/fifo' > /dev/null; wait")")
	t=$(timed "'$MMRING' recv --raw '$RING' > /dev/null & sleep 0.2; cat '$FILE' | '$MMRING' send --raw '$RING' 2>/dev/null; wait")
	ring_pipe=$(min $ring_pipe $((t - 200000000)))
	fifo_file=$(min $fifo_file "$(timed "cat '$FILE' > '$DIR/fifo' & cat '$DIR/fifo' > /dev/null; wait")")
	t=$(timed "'$MMRING' recv --raw '$RING' > /dev/null & sleep 0.2; '$MMRING' send --raw '$RING' < '$FILE' 2>/dev/null; wait")
	ring_file=$(min $ring_file $((t - 200000000)))
done

echo "mmring vs FIFO, ${SIZE_MB} MiB to /dev/null, best of $RUNS ($(nproc) CPUs, $(uname -r))"
printf '  %-44s %6s MB/s\n' "cat FILE | cat > FIFO; cat FIFO" "$(mbs "$fifo_pipe")"
printf '  %-44s %6s MB/s\n' "cat FILE | mmring send --raw; recv --raw" "$(mbs "$ring_pipe")"
printf '  %-44s %6s MB/s\n' "cat FILE > FIFO; cat FIFO" "$(mbs "$fifo_file")"
printf '  %-44s %6s MB/s\n' "mmring send --raw < FILE; recv --raw" "$(mbs "$ring_file")"
echo "$fifo_pipe $ring_pipe $fifo_file $ring_file" | awk '{
	printf "ratios (same run):\n"
	printf "  cat FILE | mmring send --raw  vs  cat FILE > FIFO:          %.2fx\n", $3 / $2
	printf "  cat FILE | mmring send --raw  vs  cat FILE | cat > FIFO:    %.2fx\n", $1 / $2
	printf "  mmring send --raw < FILE      vs  cat FILE > FIFO:          %.2fx\n", $3 / $4
}'
