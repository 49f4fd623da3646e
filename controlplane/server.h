// server.h: the control plane as a library: check its options and environment, make the
// runtime directory, load the local runtime, serve Tap.Watch until a signal. tap-controlplane's
// main is option parsing plus RunControlPlane.
//
// Thread-safety: one call per process, from the main thread; gRPC serves on its own threads.
#ifndef TAPKIT_CONTROLPLANE_SERVER_H_
#define TAPKIT_CONTROLPLANE_SERVER_H_

#include <atomic>
#include <string>

#include "absl/status/status.h"

namespace tapkit {

struct ControlPlaneOptions {
  std::string inventory;     // the local runtime's inventory file (YAML, inventory.h)
  std::string listen;        // unix:PATH or HOST:PORT; empty: unix:RUNTIME_DIR/controlplane.sock
  std::string token_file;    // bearer token clients must present; required with HOST:PORT
  std::string sidecar;       // the tap-sidecar binary; empty: FindSidecarBinary(this program)
  std::string sidecar_user;  // the sidecars' -Z; empty: their default (nobody when root)
  bool sidecar_user_given = false;  // --sidecar-user was given (an empty value is an error)
  std::string runtime_dir;   // empty: SecureRuntimeDir (access.h); else checked as it is
};

// Checks the options, the token file (ReadTokenFile) and the runtime directory (created 0700,
// refused when another user could control it), loads the runtime, listens, prints one line on
// stderr ("tap-controlplane: INVENTORY; listening on ADDRESS"), and serves until `signal`
// becomes non-zero (SIGTERM or SIGINT): the running taps then end UNAVAILABLE naming the signal
// (TapService::StopAll) and every sidecar is stopped. Returns OK after a signal. Errors, each a
// message naming the flag, file or socket: InvalidArgument (options, token file, user),
// FailedPrecondition (runtime directory, a socket another control plane listens on), the
// runtime's (inventory), Unavailable (cannot listen).
absl::Status RunControlPlane(const ControlPlaneOptions& options, const std::atomic<int>& signal);

}  // namespace tapkit

#endif  // TAPKIT_CONTROLPLANE_SERVER_H_
