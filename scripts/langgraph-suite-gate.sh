#!/usr/bin/env bash
# The CI gate on LangGraph's own test suite: run ../shared/langgraph-suite/run.sh (all stages)
# against this checkout, count the scored tests that pass on ferrograph, and fail when that
# count is below the floor in tests/langgraph_suite_floor.txt.
#
# usage: scripts/langgraph-suite-gate.sh [PEER_DIR]
#   PEER_DIR (or env PEER): the scratch dir run.sh works in (venv, LangGraph's tests, junit
#   output, out/summary.md, out/outcomes.tsv). Default: a new temporary dir, removed when the
#   gate passes and kept (path printed) when it fails. A given dir is reused (its venv too).
#
# A scored test passes on ferrograph when outcomes.tsv gives it scope "scored" and the FERRO=1
# outcome "pass" (it compiled a ferrograph graph) or "pass-no-graph" (it used ferrograph's
# names without running a graph); "pass-on-lg" (it ran on LangGraph's engine) does not count.
#
# The suite lives beside the repository (../shared/langgraph-suite, read-only in CI): nothing
# is written there (bytecode caches go under PEER_DIR).
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
SUITE="$(cd "$ROOT/.." && pwd)/shared/langgraph-suite"
RUN="$SUITE/run.sh"
FLOOR_FILE="$ROOT/tests/langgraph_suite_floor.txt"

fail() { echo "langgraph suite: $*" >&2; exit 1; }

[ -f "$RUN" ] || fail "$RUN not found (a copy of shared/ must sit beside the checkout)"
[ -f "$FLOOR_FILE" ] || fail "$FLOOR_FILE not found"
floor="$(grep -v '^[[:space:]]*#' "$FLOOR_FILE" | tr -d '[:space:]')"
[[ "$floor" =~ ^[0-9]+$ ]] || fail "$FLOOR_FILE must hold one integer (and comment lines), not '$floor'"

peer="${1:-${PEER:-}}"
made_peer=0
if [ -z "$peer" ]; then
  peer="$(mktemp -d "${TMPDIR:-/tmp}/langgraph-suite.XXXXXX")"
  made_peer=1
fi
mkdir -p "$peer"
peer="$(cd "$peer" && pwd)"
out="$peer/out"
# Outputs of an earlier run in a reused dir must not be read as this run's.
rm -f "$out/outcomes.tsv" "$out/summary.md" "$out/baseline.xml" "$out/ferro.xml" \
  "$out/ferro_diag.xml"

started=$SECONDS
rc=0
# run.sh's own output (LangGraph's pytest summaries, failures included by design) goes to a
# log: what this gate reports is the count below.
(cd "$ROOT" && PEER="$peer" FERRO_SRC="$ROOT" PYTHONPYCACHEPREFIX="$peer/pycache" \
  bash "$RUN") > "$peer/run.log" 2>&1 || rc=$?
elapsed=$((SECONDS - started))

tsv="$out/outcomes.tsv"
if [ "$rc" -ne 0 ] || [ ! -s "$tsv" ] || [ ! -s "$out/ferro.xml" ]; then
  tail -n 40 "$peer/run.log" >&2
  fail "run.sh failed (exit $rc) or wrote no outcomes.tsv/ferro.xml; see $peer/run.log (kept)"
fi

# Columns are found by their header names, not their positions.
read -r passed scored < <(awk -F'\t' '
  NR == 1 { for (i = 1; i <= NF; i++) col[$i] = i
            if (!col["scope"] || !col["ferro"]) { print "bad header"; exit } next }
  $col["scope"] == "scored" { scored++
                              if ($col["ferro"] == "pass" || $col["ferro"] == "pass-no-graph") passed++ }
  END { print passed + 0, scored + 0 }' "$tsv")
[[ "$passed" =~ ^[0-9]+$ && "$scored" =~ ^[0-9]+$ ]] || fail "cannot read $tsv (header: scope, ferro)"
[ "$scored" -gt 0 ] || fail "no scored tests in $tsv (did the LangGraph baseline run?); see $peer (kept)"

echo "langgraph suite: $scored scored tests; summary in $out/summary.md; took ${elapsed}s"
echo "langgraph suite: $passed scored tests pass on ferrograph (floor $floor)"
if [ "$passed" -lt "$floor" ]; then
  echo "langgraph suite: below the floor; see $out/summary.md (kept)" >&2
  exit 1
fi
if [ "$passed" -gt "$floor" ]; then
  echo "langgraph suite: above the floor: raise it to $passed in tests/langgraph_suite_floor.txt"
fi
if [ "$made_peer" -eq 1 ]; then
  rm -rf "$peer"
  echo "langgraph suite: removed $peer (give a PEER_DIR to keep the summary)"
fi
