#!/usr/bin/env bash
# Runs every test of mmring: the Rust crate's (`cargo test`), then the
# Python binding's (pytest over python/tests) in a virtual environment.
#
#   scripts/test.sh [ARGS...]     ARGS go to `cargo test` (e.g. `--test api`)
#
# Environment:
#   MMRING_VENV       the virtual environment to create or reuse (default .venv)
#   PYTHON            the interpreter that creates it (default python3)
#   PYTEST_ARGS       extra pytest arguments (e.g. "-k queue -x")
#   MMRING_SKIP_RUST  set to 1 to run only the Python tests
#   MMRING_SKIP_PY    set to 1 to run only the Rust tests
#   MMRING_PY_STRESS_MESSAGES  messages of the 4x4 process test (default 1000000)
# Everything else (MMRING_SOAK_SECS, CARGO_TARGET_DIR, ...) passes through.
set -euo pipefail
cd "$(dirname "$0")/.."
root=$PWD
status=0

if [ "${MMRING_SKIP_RUST:-0}" != 1 ]; then
  echo "::: cargo test $*"
  cargo test "$@" || status=$?
fi

if [ "${MMRING_SKIP_PY:-0}" != 1 ]; then
  venv=${MMRING_VENV:-$root/.venv}
  python=${PYTHON:-python3}
  if [ ! -x "$venv/bin/python" ]; then
    echo "::: creating the virtual environment $venv"
    "$python" -m venv "$venv"
  fi
  echo "::: pip install ./python pytest numpy"
  "$venv/bin/python" -m pip install -q --upgrade pip
  # The CLI the interop tests run, from the same build as `cargo test`.
  cargo build -q --bin mmring
  target=$(cargo metadata --format-version 1 --no-deps |
    "$venv/bin/python" -c 'import json, sys; print(json.load(sys.stdin)["target_directory"])')
  "$venv/bin/python" -m pip install -q ./python pytest numpy
  echo "::: pytest python/tests"
  # Run from the tests' directory's parent's parent (the repo root), with
  # the installed package, not the source tree's python/mmring, on the path.
  MMRING_BIN="$target/debug/mmring" "$venv/bin/pytest" -q -rs python/tests ${PYTEST_ARGS:-} ||
    status=$?
fi

exit "$status"
