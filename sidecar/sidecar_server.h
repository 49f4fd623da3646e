// sidecar_server.h: the tap sidecar as a library: capture a pod's interfaces, run the capture
// engine (observer.h) and serve Sidecar.Observe (controlplane/api/tap.proto) until told to stop.
// tap-sidecar's main is option parsing plus RunSidecar.
//
// Thread-safety: RunSidecar runs on the calling thread (the capture loop) plus gRPC's threads; one
// call per process, from the main thread before any other thread starts (the privilege drop's
// Prepare needs that: privileges.h).
#ifndef TAPKIT_SIDECAR_SIDECAR_SERVER_H_
#define TAPKIT_SIDECAR_SIDECAR_SERVER_H_

#include <atomic>
#include <cstdint>
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "format/format.h"
#include "sidecar/live_capture.h"

namespace tapkit {

struct SidecarServerOptions {
  std::string listen;                   // unix:PATH (created mode 0600) or HOST:PORT
  std::vector<std::string> interfaces;  // at least one
  std::vector<std::string> pod_addresses;  // the BPF filter (PodFilter); empty: no filter
  std::string capture_point;               // namespace/pod; empty: the first interface
  uint32_t capture_point_id = 0;
  uint64_t body_limit = format::kDefaultBodyLimit;  // bytes of each body kept
  LiveOptions live;                                 // libpcap: immediate mode, block timeout
  // -Z: the user to become once the capture is open and the socket listens (privileges.h);
  // empty: the default (nobody when root).
  std::string user;
};

// Opens the capture, listens, drops privileges, then captures and serves until `stop` is set
// (SIGTERM or SIGINT in tap-sidecar): every stream then gets its last stats and ends OK.
// Progress and the start line go to stderr, prefixed "tap-sidecar CAPTURE_POINT:".
// Errors: InvalidArgument for the options (an unknown -Z user); Unavailable when the capture
// cannot be opened or fails, or the address cannot be listened on; Internal when the
// privilege drop fails.
absl::Status RunSidecar(const SidecarServerOptions& options, const std::atomic<bool>& stop);

}  // namespace tapkit

#endif  // TAPKIT_SIDECAR_SIDECAR_SERVER_H_
