#!/usr/bin/env bash
# Runs one libFuzzer target with every seed the project has for it; ctest (tapkit_fuzz_test in
# CMakeLists.txt) and scripts/fuzz-coverage.sh both go through here so that they fuzz from the same
# seeds with the same limits.
#
#   scripts/fuzz-run.sh TARGET BINARY WORKDIR [libFuzzer flags...]
#
# TARGET is capture, http1, pcap, pcapng, reader, redact or verbose (the fixtures/fuzz/ folder of
# its committed seeds and regression inputs). WORKDIR is emptied and holds libFuzzer's working
# corpus (its first folder, the only one it writes to) and the seeds made from captures for this
# run. The seed folders after it are read only:
#   fixtures/fuzz/TARGET                      committed seeds and regression inputs
#   fixtures/captures, $TAPKIT_CORPUS/pcaps   the project's captures and the shared corpus: as they
#                                             are for pcap (and the corpus's pcapng files for
#                                             pcapng); rewritten by scripts/fuzz-seeds.py into each
#                                             other target's input format
#   fixtures/golden                           the .tap files of every format version (reader)
# The corpus is $TAPKIT_CORPUS, by default ../shared/corpus beside the repository root. When it is
# absent the run goes on without it and says so, except under CI=true, where that is a failure.
set -euo pipefail

if [[ $# -lt 3 ]]; then
  echo "usage: $0 TARGET BINARY WORKDIR [libFuzzer flags...]" >&2
  exit 2
fi
target="$1" binary="$2" work="$3"
shift 3
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
corpus="${TAPKIT_CORPUS:-${root}/../shared/corpus}"

# The longest input each target is fuzzed with: large enough for a few full-size frames or a whole
# small .tap file, small enough that one run stays in microseconds.
case "${target}" in
  capture) max_len=16384 ;;
  pcap) max_len=16384 ;;
  pcapng) max_len=8192 ;;
  http1) max_len=4096 ;;
  reader) max_len=65536 ;;
  redact) max_len=4096 ;;
  verbose) max_len=2048 ;;
  *)
    echo "fuzz-run.sh: unknown target ${target}" >&2
    exit 2
    ;;
esac

rm -rf "${work}"
mkdir -p "${work}/corpus" "${work}/seeds"

captures=("${root}"/fixtures/captures/*.pcap)
if [[ -d "${corpus}/pcaps" ]]; then
  corpus_files=("${corpus}"/pcaps/*)
else
  if [[ "${CI:-}" == "true" ]]; then
    echo "fuzz-run.sh: ${corpus}/pcaps not found and CI=true: set TAPKIT_CORPUS" >&2
    exit 1
  fi
  echo "fuzz-run.sh: ${corpus}/pcaps not found: fuzzing without the shared corpus's seeds" \
    "(set TAPKIT_CORPUS to its path)" >&2
  corpus_files=()
fi

seeds() {  # $1: kind for fuzz-seeds.py; then capture files
  local kind="$1"
  shift
  python3 "${root}/scripts/fuzz-seeds.py" "${kind}" "${work}/seeds" --max-len "${max_len}" "$@"
}

dirs=("${root}/fixtures/fuzz/${target}")
case "${target}" in
  capture)
    seeds capture "${captures[@]}" "${corpus_files[@]}"
    dirs+=("${work}/seeds")
    ;;
  http1)
    # The project's own captures are already committed as seeds in fixtures/fuzz/http1.
    if [[ ${#corpus_files[@]} -gt 0 ]]; then
      seeds http1 "${corpus_files[@]}"
      dirs+=("${work}/seeds")
    fi
    ;;
  pcap)
    dirs+=("${root}/fixtures/captures")
    if [[ ${#corpus_files[@]} -gt 0 ]]; then
      dirs+=("${corpus}/pcaps")
    fi
    ;;
  pcapng)
    # Every classic pcap also as pcapng, for the link types and traffic the few pcapng files lack.
    classic=()
    for f in "${captures[@]}" "${corpus_files[@]}"; do
      [[ "${f}" == *.pcap ]] && classic+=("${f}")
    done
    seeds pcapng "${classic[@]}"
    dirs+=("${work}/seeds")
    if [[ ${#corpus_files[@]} -gt 0 ]]; then
      dirs+=("${corpus}/pcaps")
    fi
    ;;
  reader)
    dirs+=("${root}/fixtures/golden")
    ;;
esac

exec "${binary}" -max_len="${max_len}" "$@" "${work}/corpus" "${dirs[@]}"
