#!/usr/bin/env bash
# The life-cycle machine (tests/test_lifecycle.py) for a long time on each backend: thousands
# of random steps instead of CI's few dozen. Results land in test-artifacts/soak/: one log and
# one JUnit XML per backend, and summary.txt with the seed that reproduces each run.
# SOAK_OUT (default test-artifacts/soak), SOAK_BACKENDS (default "sqlite postgresql mariadb"), LIFECYCLE_EXAMPLES (default 100),
# LIFECYCLE_STEPS (default 20), LIFECYCLE_FLEET_EXAMPLES (20) and LIFECYCLE_FLEET_STEPS (15) and
# SOAK_SEED (default: the clock) can be set; arguments go to pytest (-k pgbouncer: that route
# only; -k fleet: the fleet machine only).
set -uo pipefail
cd "$(dirname "$0")/.."
out=${SOAK_OUT:-test-artifacts/soak}
mkdir -p "$out"
seed=${SOAK_SEED:-$(date +%s)}
export LIFECYCLE_EXAMPLES=${LIFECYCLE_EXAMPLES:-100} LIFECYCLE_STEPS=${LIFECYCLE_STEPS:-20}
# The fleet machine (tests/test_lifecycle_fleet.py, PostgreSQL only) runs after the others there.
export LIFECYCLE_FLEET_EXAMPLES=${LIFECYCLE_FLEET_EXAMPLES:-20} LIFECYCLE_FLEET_STEPS=${LIFECYCLE_FLEET_STEPS:-15}
summary=$out/summary.txt
echo "soak $(date -u +%FT%TZ): $LIFECYCLE_EXAMPLES examples x $LIFECYCLE_STEPS steps, seed $seed" >"$summary"
failed=""
for backend in ${SOAK_BACKENDS:-sqlite postgresql mariadb}; do
  began=$(date +%s)
  steps=$out/$backend.steps
  rm -f "$steps"
  files=tests/test_lifecycle.py
  [ "$backend" = postgresql ] && files="$files tests/test_lifecycle_fleet.py"
  # shellcheck disable=SC2086  # two file names
  LIFECYCLE_STEPS_FILE=$steps TEST_BACKENDS=$backend bash scripts/test.sh $files -p no:cacheprovider \
    --hypothesis-seed="$seed" --hypothesis-show-statistics --junitxml="$out/$backend.xml" "$@" \
    >"$out/$backend.log" 2>&1
  status=$?
  result=passed
  if [ "$status" != 0 ]; then result=FAILED; failed="$failed $backend"; fi
  # one line per example: "backend route steps"
  made=$(awk '{n[$2] += $3; e[$2]++} END {for (r in n) printf "%s%s: %d steps in %d examples", (k++ ? ", " : ""), r, n[r], e[r]}' "$steps" 2>/dev/null || true)
  echo "$backend: $result in $(( $(date +%s) - began ))s, ${made:-no step count} (log: $out/$backend.log); rerun:" \
    "LIFECYCLE_EXAMPLES=$LIFECYCLE_EXAMPLES LIFECYCLE_STEPS=$LIFECYCLE_STEPS" \
    "LIFECYCLE_FLEET_EXAMPLES=$LIFECYCLE_FLEET_EXAMPLES LIFECYCLE_FLEET_STEPS=$LIFECYCLE_FLEET_STEPS" \
    "TEST_BACKENDS=$backend bash scripts/test.sh $files --hypothesis-seed=$seed" \
    >>"$summary"
done
cat "$summary"
[ -z "$failed" ]
