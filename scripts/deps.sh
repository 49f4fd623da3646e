#!/usr/bin/env bash
# Installs the Debian 12 (bookworm) packages tapkit needs to build and test.
#
# Idempotent and fast when everything is present: each package is checked with dpkg-query and
# apt-get runs only for the missing ones. Extra packages (for later issues, e.g. nginx, tshark) can be
# passed as arguments or in TAPKIT_EXTRA_PACKAGES (space separated):
#
#   scripts/deps.sh nginx tshark
#   TAPKIT_EXTRA_PACKAGES="nginx tshark" scripts/deps.sh
set -euo pipefail

log() { echo "deps: $*" >&2; }

packages=(
  # Toolchain and build system.
  build-essential cmake ninja-build pkg-config git ca-certificates
  # clang with ASan/UBSan and libFuzzer runtimes (libclang_rt.fuzzer*.a is in libclang-rt-14-dev),
  # llvm for llvm-symbolizer in sanitizer reports.
  clang libclang-rt-14-dev llvm
  # Packet capture input (pcap / pcapng, live and offline).
  libpcap-dev
  # Giving up root once the capture is open (-Z): capability sets (sidecar/privileges.h).
  libcap-dev
  # tcmalloc for the capture tools (many small allocations across two threads).
  libgoogle-perftools-dev
  # HTTP/1 message parsing for the capture engine (nodejs http-parser).
  libhttp-parser-dev
  # Segment compression; the zstd CLI for inspecting frames by hand.
  libzstd-dev zstd
  # Capture-file schema: FlatBuffers library and flatc.
  libflatbuffers-dev flatbuffers-compiler
  # Tap API between sidecar, control plane and recorder: gRPC and protobuf.
  libgrpc++-dev protobuf-compiler-grpc libprotobuf-dev protobuf-compiler
  # Command-line parsing in tools/.
  libboost-program-options-dev
  # Tests and benchmarks.
  libgtest-dev libgmock-dev libbenchmark-dev
  # Status/StatusOr and containers, XXH3 checksums, JSON output.
  libabsl-dev libxxhash-dev nlohmann-json3-dev
  # The control plane's inventory (YAML); HMAC-SHA256 for redaction markers.
  libyaml-cpp-dev libssl-dev
  # Selection flags' regexes (--path-regex, --header): RE2, linear time and no exceptions on
  # untrusted patterns (format/select.h).
  libre2-dev
  # The demo mesh and the live tests: nginx pods, curl clients, Python for the test driver.
  nginx-light curl python3
  # The h2c Upgrade fixture (scripts/make-capture-fixtures.py h2c): nghttp, nghttpd, nghttpx.
  nghttp2-client nghttp2-server nghttp2-proxy
  # Content codings (gzip, deflate, br) undone for showing, redacting and comparing bodies; the
  # gzip and brotli tools as the tests' independent encoders.
  zlib1g-dev libbrotli-dev brotli gzip
  # JSON checks in tests (tapcat --info -o json | jq; jq's pretty-printing checks tapcat -V's).
  jq
  # Independent readers of the fixture pcaps in tests: tshark (requests, codes, http.time for
  # tapcat --stat and the selection flags, tools/select_capture_test.py) and tcpdump (packet
  # times for tapcat's time column).
  tshark tcpdump
  # hexdump -C, the independent printer tapcat -V's hex dumps are checked against (verbose_test).
  bsdextrautils
  # -o har checked against HAR 1.2's schema by har-validator (a node library with no CLI:
  # scripts/har/check.js calls it; httpsnippet comes from npm, pinned in
  # scripts/har/package-lock.json and installed below). tshark (above) reads -o pcap back.
  node-har-validator
  # tapreplay (replay/): libcurl's multi interface sends the recorded requests; dtl (a header-only
  # diff library) makes the unified diffs of mismatched bodies; wrk is the load generator
  # bench/ compares tapreplay --max with.
  libcurl4-openssl-dev libdtl-dev wrk
  # replay/compare_test checks UnifiedDiff against GNU diff -u and applies its hunks with patch.
  diffutils patch
  # tapreplay --serve's HTTP/1.1 server: Boost.Beast (header-only, in libboost-dev). The other
  # candidates bench/serve_spike measured are installed by its run.sh, not here.
  libboost-dev
)

# Extra packages from the environment and the command line.
if [[ -n "${TAPKIT_EXTRA_PACKAGES:-}" ]]; then
  read -r -a extra_env <<<"${TAPKIT_EXTRA_PACKAGES}"
  packages+=("${extra_env[@]}")
fi
packages+=("$@")

log "checking ${#packages[@]} packages"
missing=()
for pkg in "${packages[@]}"; do
  status="$(dpkg-query -W -f='${Status}' "${pkg}" 2>/dev/null || true)"
  if [[ "${status}" != "install ok installed" ]]; then
    missing+=("${pkg}")
  fi
done

install_missing() {

sudo_cmd=()
if [[ "$(id -u)" -ne 0 ]]; then
  if command -v sudo >/dev/null 2>&1; then
    sudo_cmd=(sudo)
  else
    log "not root and no sudo: cannot install: ${missing[*]}"
    exit 1
  fi
fi

export DEBIAN_FRONTEND=noninteractive
log "apt-get update"
"${sudo_cmd[@]}" env DEBIAN_FRONTEND=noninteractive apt-get update -q >&2
log "installing ${missing[*]}"
"${sudo_cmd[@]}" env DEBIAN_FRONTEND=noninteractive \
  apt-get install -y -q --no-install-recommends "${missing[@]}" >&2
log "done"
}

if [[ ${#missing[@]} -eq 0 ]]; then
  log "all packages installed"
else
  install_missing
fi

# httpsnippet, the HAR consumer of tools/export_test.py, pinned by scripts/har/package-lock.json.
# npm comes with Debian's nodejs (or a newer nodejs that bundles it); without npm the test skips.
har_dir="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)/har"
if ! command -v npm >/dev/null 2>&1; then
  # A machine whose nodejs came from elsewhere (NodeSource) has its npm already; on plain Debian
  # npm is a package of its own.
  missing=(npm)
  install_missing
fi
if command -v npm >/dev/null 2>&1; then
  if [[ ! -d "${har_dir}/node_modules/httpsnippet" ]]; then
    log "npm ci in ${har_dir}"
    # The npm registry may be out of reach (no network, or a TLS proxy whose CA this machine does
    # not trust): say so and go on; the export test then skips, or fails under CI=true.
    if ! (cd "${har_dir}" && npm ci --no-audit --no-fund >&2); then
      log "npm ci failed: httpsnippet is not installed; the HAR consumer test (export) will skip" \
        "(and fail under CI=true)"
    fi
  fi
else
  log "npm not found: the HAR consumer test (export) will skip; install npm and rerun"
fi
