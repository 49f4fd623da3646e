#!/usr/bin/env bash
# The main job on the embedded default (the local runtime), for real:
#   1. set up and build (packages, CMake, Ninja);
#   2. start the demo mesh (deploy/demo/mesh.sh): nginx pods on their own loopback addresses, a
#      frontend proxying /api to two backend pods, and a load generator on an address of its own;
#   3. start the control plane with the mesh's inventory (deploy/demo/inventory.yaml);
#   4. taprec deploy/backend -n demo -w build/demo.tap --max-requests 100, while the load runs;
#   5. tapcat the file (summary, then the exchanges);
#   6. tear everything down: no process is left behind, whatever happens on the way.
# Capturing packets needs root (CAP_NET_RAW): run as root, or the script re-runs itself with sudo.
# BUILD_DIR overrides the build directory (default: build).
set -euo pipefail

cd "$(dirname "${BASH_SOURCE[0]}")/.."

log() { echo "demo.sh: $*" >&2; }

if [[ $EUID -ne 0 ]]; then
  log "capturing needs root: re-running with sudo"
  exec sudo --preserve-env=BUILD_DIR "$0" "$@"
fi

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

log "building taprec, tapcat, tap-controlplane and tap-sidecar"
cmake --build "${build_dir}" -j"${jobs}" --target taprec tapcat tap-controlplane tap-sidecar >&2

work="$(mktemp -d /tmp/tapkit-demo.XXXXXX)"
chmod 755 "$work"
cp_pid= load_pid=
teardown() {
  set +e
  [[ -n "$load_pid" ]] && kill "$load_pid" 2>/dev/null && wait "$load_pid" 2>/dev/null
  if [[ -n "$cp_pid" ]]; then
    kill -TERM "$cp_pid" 2>/dev/null
    for _ in $(seq 50); do kill -0 "$cp_pid" 2>/dev/null || break; sleep 0.1; done
    kill -KILL "$cp_pid" 2>/dev/null
    wait "$cp_pid" 2>/dev/null
  fi
  deploy/demo/mesh.sh down "$work/mesh" >&2
  # Sidecars are the control plane's children and stop with it; make sure.
  pkill -TERM -f "tap-sidecar --listen unix:$work/" 2>/dev/null
  rm -rf "$work"
}
trap teardown EXIT

log "starting the demo mesh"
deploy/demo/mesh.sh up "$work/mesh" >&2

log "starting the control plane (inventory deploy/demo/inventory.yaml)"
export TAPKIT_RUNTIME_DIR="$work/run"
"${build_dir}/controlplane/tap-controlplane" --inventory deploy/demo/inventory.yaml \
  --runtime-dir "$TAPKIT_RUNTIME_DIR" 2>"$work/controlplane.log" &
cp_pid=$!
for _ in $(seq 100); do [[ -S "$TAPKIT_RUNTIME_DIR/controlplane.sock" ]] && break; sleep 0.1; done
[[ -S "$TAPKIT_RUNTIME_DIR/controlplane.sock" ]] || { cat "$work/controlplane.log" >&2; exit 1; }

log "load: GET and POST requests, some 404s and 500s, from 127.0.30.1"
deploy/demo/mesh.sh load "$work/mesh" 60 40 >"$work/load.log" 2>&1 &
load_pid=$!

log "taprec deploy/backend -n demo -w ${capture} --max-requests 100"
"${build_dir}/tools/taprec" deploy/backend -n demo -w "${capture}" --max-requests 100

log "tapcat --info ${capture}"
"${build_dir}/tools/tapcat" --info "${capture}"

log "tapcat -o wide ${capture} (first 12 exchanges)"
"${build_dir}/tools/tapcat" -o wide -c 12 "${capture}"

log "done; tearing the mesh down"
