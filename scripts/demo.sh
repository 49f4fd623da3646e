#!/usr/bin/env bash
# The main job on the embedded default: set up, build, write a capture and print it.
#
# Until the capture engine exists the capture comes from the synthetic service-traffic generator
# (bench/tapsynth); tapcat then prints its summary, its first exchanges as text and one as JSON.
# BUILD_DIR overrides the build directory (default: build).
set -euo pipefail

cd "$(dirname "${BASH_SOURCE[0]}")/.."

log() { echo "demo.sh: $*" >&2; }

build_dir="${BUILD_DIR:-build}"
jobs="$(nproc 2>/dev/null || echo 2)"
capture="${build_dir}/demo.tap"

log "installing packages"
bash scripts/deps.sh

log "configuring ${build_dir}"
if [[ -f "${build_dir}/CMakeCache.txt" ]] &&
  ! grep -q '^CMAKE_GENERATOR:INTERNAL=Ninja$' "${build_dir}/CMakeCache.txt"; then
  rm -rf "${build_dir}/CMakeCache.txt" "${build_dir}/CMakeFiles"
fi
cmake -S . -B "${build_dir}" -G Ninja -DCMAKE_BUILD_TYPE=RelWithDebInfo >&2

log "building tapcat and tapsynth"
cmake --build "${build_dir}" -j"${jobs}" --target tapcat tapsynth >&2

log "writing ${capture}: 200 synthetic exchanges (tapsynth --count 200 --seed 7)"
"${build_dir}/bench/tapsynth" --count 200 --seed 7 -w "${capture}"

log "tapcat --info ${capture}"
"${build_dir}/tools/tapcat" --info "${capture}"

log "tapcat -c 6 ${capture}"
"${build_dir}/tools/tapcat" -c 6 "${capture}"

log "tapcat -c 1 -o json ${capture}"
"${build_dir}/tools/tapcat" -c 1 -o json "${capture}"
