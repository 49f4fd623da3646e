#!/usr/bin/env bash
# How much of the code each fuzz target reaches: runs the targets one after another (never in
# parallel: the figure depends on the executions a target gets in its time) for a fixed time and
# seed from the same seeds as ctest (scripts/fuzz-run.sh), and prints a Markdown table of
# libFuzzer's last `cov:` figure (edges covered), with its features (`ft:`), corpus units and
# executions beside it.
#
#   scripts/fuzz-coverage.sh [BUILD_DIR] [TARGET...]
#
# BUILD_DIR is a fuzz build (-DTAPKIT_FUZZ=ON; default build-asan) or any folder holding
# sidecar/fuzz_* and format/fuzz_reader; TARGETs default to all five. FUZZ_SECONDS (default 60) is
# each run's -max_total_time. Logs go to BUILD_DIR/fuzz-coverage/TARGET.log. Figures from different
# builds compare only when taken with the same seconds, seed and corpus (bench/README.md).
set -euo pipefail

root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
build="${1:-${root}/build-asan}"
shift || true
targets=("$@")
if [[ ${#targets[@]} -eq 0 ]]; then
  targets=(capture http1 pcap pcapng reader)
fi
seconds="${FUZZ_SECONDS:-60}"
out="${build}/fuzz-coverage"
mkdir -p "${out}"

echo "| target | edges (cov) | features (ft) | corpus units | executions |"
echo "| --- | ---: | ---: | ---: | ---: |"
for t in "${targets[@]}"; do
  if [[ "${t}" == reader ]]; then
    bin="${build}/format/fuzz_reader"
  else
    bin="${build}/sidecar/fuzz_${t}"
  fi
  if [[ ! -x "${bin}" ]]; then
    echo "fuzz-coverage.sh: ${bin} not built" >&2
    exit 2
  fi
  log="${out}/${t}.log"
  rc=0
  bash "${root}/scripts/fuzz-run.sh" "${t}" "${bin}" "${out}/${t}_work" -seed=1 \
    -max_total_time="${seconds}" -timeout=10 -rss_limit_mb=2048 \
    -artifact_prefix="${out}/${t}-" >"${log}" 2>&1 || rc=$?
  # libFuzzer's status lines: "#123 NEW cov: 456 ft: 789 corp: 12/3Kb ..."; the last one counts.
  last="$(grep -E '^#[0-9]+.* cov: [0-9]+' "${log}" | tail -n 1 || true)"
  cov="$(sed -nE 's/.* cov: ([0-9]+).*/\1/p' <<<"${last}")"
  ft="$(sed -nE 's/.* ft: ([0-9]+).*/\1/p' <<<"${last}")"
  corp="$(sed -nE 's/.* corp: ([0-9]+).*/\1/p' <<<"${last}")"
  runs="$(sed -nE 's/^Done ([0-9]+) runs.*/\1/p' "${log}" | tail -n 1)"
  note=""
  if [[ "${rc}" -ne 0 ]]; then
    note=" (exit ${rc}: see ${log})"
  fi
  echo "| ${t} | ${cov:-?}${note} | ${ft:-?} | ${corp:-?} | ${runs:-?} |"
done
