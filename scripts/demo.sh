#!/usr/bin/env bash
# The main job on the embedded default: set up, build, write a capture and print it.
#
# Until the live tap exists (control plane and sidecars), the capture comes from a pcap the
# project recorded with nginx, curl and tcpdump (fixtures/captures/): taprec -r turns its packets
# into HTTP exchanges in a .tap file, and tapcat prints the file's summary, its exchanges as
# linkerd-style lines and one as JSON.
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

log "building taprec and tapcat"
cmake --build "${build_dir}" -j"${jobs}" --target taprec tapcat >&2

pcap=fixtures/captures/pipelined-3-gets.pcap
log "taprec -r ${pcap} -w ${capture}"
"${build_dir}/tools/taprec" -r "${pcap}" -w "${capture}"

log "tapcat --info ${capture}"
"${build_dir}/tools/tapcat" --info "${capture}"

log "tapcat ${capture}"
"${build_dir}/tools/tapcat" "${capture}"

log "tapcat -c 1 -o json ${capture}"
"${build_dir}/tools/tapcat" -c 1 -o json "${capture}"
