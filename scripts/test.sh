#!/usr/bin/env bash
# The project's whole test command: installs packages, builds twice and runs every test.
#
#   1. scripts/deps.sh (Debian packages; sudo when not root)
#   2. ${BUILD_DIR:-build}: gcc, RelWithDebInfo; build; ctest
#   3. build-asan: clang, Debug, ASan/UBSan, libFuzzer targets and coverage-instrumented libraries
#      (gRPC and benchmarks off); ctest, which runs each fuzz target for a fixed -seed and -runs
#      from its seeds (scripts/fuzz-run.sh)
#
# Ends with one line "N passed, M failed, K skipped" adding up both ctest runs; exits non-zero when any step
# or any test fails. Environment:
#   BUILD_DIR=dir        directory of the normal build (default: build)
#   TAPKIT_SKIP_ASAN=1   skip the sanitizer half (quick local runs; CI never sets it)
#   TAPKIT_CORPUS=dir    captures the corpus tests and fuzz seeds read (default ../shared/corpus)
set -euo pipefail

cd "$(dirname "${BASH_SOURCE[0]}")/.."

log() { echo "test.sh: $*" >&2; }

build_dir="${BUILD_DIR:-build}"
asan_dir="build-asan"
jobs="$(nproc 2>/dev/null || echo 2)"

# Pass the corpus location on only when the caller chose one; the tests have their own default.
if [[ -n "${TAPKIT_CORPUS:-}" ]]; then
  export TAPKIT_CORPUS
fi
# Sanitizer reports with stacks; a UBSan finding fails the test instead of scrolling by.
export UBSAN_OPTIONS="${UBSAN_OPTIONS:-print_stacktrace=1:halt_on_error=1}"

total_passed=0
total_failed=0
total_skipped=0
tests_ok=1
summaries=()

# A build directory configured earlier with another generator would make `cmake -G Ninja` fail.
reset_if_other_generator() {
  local dir="$1"
  if [[ -f "${dir}/CMakeCache.txt" ]] &&
    ! grep -q '^CMAKE_GENERATOR:INTERNAL=Ninja$' "${dir}/CMakeCache.txt"; then
    log "${dir} was configured with another generator; clearing its CMake cache"
    rm -rf "${dir}/CMakeCache.txt" "${dir}/CMakeFiles"
  fi
}

# Adds the counts of ctest's summary line ("96% tests passed, 1 tests failed out of 25") in log $2
# to the totals; $1 names the run.
count_results() {
  local name="$1" log_file="$2" line failed total skipped
  line="$(grep -E '[0-9]+ tests? failed out of [0-9]+' "${log_file}" | tail -n 1 || true)"
  if [[ -z "${line}" ]]; then
    log "${name}: no ctest summary line in ${log_file}"
    summaries+=("${name}: no ctest summary")
    return
  fi
  failed="$(sed -E 's/.* ([0-9]+) tests? failed out of ([0-9]+).*/\1/' <<<"${line}")"
  total="$(sed -E 's/.* ([0-9]+) tests? failed out of ([0-9]+).*/\2/' <<<"${line}")"
  # ctest counts skipped tests (e.g. corpus absent) as passed; list them apart.
  skipped="$(grep -cE '^[[:space:]]*[0-9]+ - .*\(Skipped\)$' "${log_file}" || true)"
  total_passed=$((total_passed + total - failed - skipped))
  total_failed=$((total_failed + failed))
  total_skipped=$((total_skipped + skipped))
  summaries+=("${name}: ${line}")
}

# Runs ctest in build directory $2 (run name $1), keeping its output in $2/ctest.log.
run_ctest() {
  local name="$1" dir="$2"
  log "${name}: ctest --test-dir ${dir}"
  if ! ctest --test-dir "${dir}" --output-on-failure -j"${jobs}" 2>&1 | tee "${dir}/ctest.log"; then
    tests_ok=0
    log "${name}: ctest failed"
  fi
  count_results "${name}" "${dir}/ctest.log"
}

log "installing packages"
bash scripts/deps.sh

log "configuring ${build_dir} (gcc, RelWithDebInfo)"
reset_if_other_generator "${build_dir}"
cmake -S . -B "${build_dir}" -G Ninja -DCMAKE_BUILD_TYPE=RelWithDebInfo \
  -DCMAKE_EXPORT_COMPILE_COMMANDS=ON
log "building ${build_dir}"
cmake --build "${build_dir}" -j"${jobs}"
run_ctest "${build_dir}" "${build_dir}"

if [[ "${TAPKIT_SKIP_ASAN:-0}" == "1" ]]; then
  log "TAPKIT_SKIP_ASAN=1: skipping the sanitizer build"
else
  log "configuring ${asan_dir} (clang, Debug, ASan/UBSan, fuzzers)"
  reset_if_other_generator "${asan_dir}"
  cmake -S . -B "${asan_dir}" -G Ninja -DCMAKE_BUILD_TYPE=Debug \
    -DCMAKE_C_COMPILER=clang -DCMAKE_CXX_COMPILER=clang++ \
    -DTAPKIT_SANITIZE=ON -DTAPKIT_FUZZ=ON -DTAPKIT_WITH_GRPC=OFF -DTAPKIT_WITH_BENCH=OFF
  log "building ${asan_dir}"
  cmake --build "${asan_dir}" -j"${jobs}"
  run_ctest "${asan_dir}" "${asan_dir}"
fi

for s in "${summaries[@]}"; do
  echo "${s}"
done
if [[ "${total_skipped}" -gt 0 ]]; then
  # ctest does not show a skipped test's own message; say why here.
  echo "skipped: $(grep -hE '\(Skipped\)$' "${build_dir}/ctest.log" "${asan_dir}/ctest.log" 2>/dev/null |
    sed -E 's/^[[:space:]]*[0-9]+ - //; s/ \(Skipped\)$//' | sort -u | tr '\n' ' ')"
  echo "  (tests of the shared capture corpus skip when it is absent: set TAPKIT_CORPUS to its path)"
fi
echo "${total_passed} passed, ${total_failed} failed, ${total_skipped} skipped"

if [[ "${tests_ok}" -ne 1 || "${total_failed}" -ne 0 ]]; then
  exit 1
fi
