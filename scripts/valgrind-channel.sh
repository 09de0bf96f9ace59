#!/usr/bin/env bash
# Runs the chunk channel's Rust tests (including the many-producer and close-race stress
# tests) under valgrind memcheck: any invalid read/write or definite leak fails the run.
# Long form of the channel check (needs valgrind: apt-get install valgrind).
set -euo pipefail
cd "$(dirname "$0")/.."
bin=$(cargo test --lib --no-run 2>&1 | grep -o 'target/debug/deps/ferrograph-[0-9a-f]*' | tail -n 1)
valgrind --tool=memcheck --leak-check=full --errors-for-leak-kinds=definite \
  --error-exitcode=9 "$bin" stream:: --test-threads=1
