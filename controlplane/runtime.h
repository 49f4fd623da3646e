// runtime.h: where the control plane finds pods and how it starts and stops their tap sidecars
// (docs/architecture.md section 5). LocalRuntime is the default: an inventory file in Kubernetes'
// shape (inventory.h) and sidecars as child processes on this machine; a Kubernetes runtime
// would implement the same interface with the API server and ephemeral containers. Which pods
// exist, and their labels, a Runtime answers through its Resolver (resolver.h), which may change
// its answers while taps run.
//
// Thread-safety: a Runtime is called from many RPC threads at once; implementations lock what
// they share. A Sidecar handle belongs to one tap.
#ifndef TAPKIT_CONTROLPLANE_RUNTIME_H_
#define TAPKIT_CONTROLPLANE_RUNTIME_H_

#include <sys/types.h>

#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "controlplane/access.h"  // DefaultRuntimeDir
#include "controlplane/inventory.h"
#include "controlplane/resolver.h"
#include "format/format.h"  // kDefaultBodyLimit

namespace tapkit {

// A running sidecar: where to reach it, and how to stop it (the destructor stops it).
class Sidecar {
 public:
  virtual ~Sidecar() = default;
  virtual const std::string& address() const = 0;  // gRPC target, e.g. "unix:/tmp/x.sock"
  virtual const PodInfo& pod() const = 0;
  // Stops it: SIGTERM, then SIGKILL after `grace_ms` (milliseconds). Idempotent.
  virtual void Stop(int grace_ms = 2000) = 0;
  // Asks it to finish without waiting (SIGTERM): it sends its open exchanges as "capture ended"
  // and its last stats, then ends its streams OK and exits.
  virtual void Terminate() = 0;
  // Whether it is still running, and if not, how it ended ("exited with status 1", "killed by
  // signal 9").
  virtual bool Running(std::string* how) = 0;
};

struct SidecarSpec {
  uint32_t capture_point_id = 0;  // number of the capture point in the tap (files, events)
  uint64_t body_limit = format::kDefaultBodyLimit;  // bytes of each body the sidecar keeps
};

class Runtime {
 public:
  virtual ~Runtime() = default;
  // Where pods are found (target resolution, labels, pods joining and leaving); lives as long
  // as the Runtime.
  virtual Resolver* resolver() = 0;
  // Starts the sidecar for `pod`, ready to serve when this returns. Errors: Unavailable with
  // what went wrong (no binary, it exited at once, its socket never came up).
  virtual absl::StatusOr<std::unique_ptr<Sidecar>> StartSidecar(const PodInfo& pod,
                                                                const SidecarSpec& spec) = 0;
};

struct LocalRuntimeOptions {
  std::string inventory_path;
  std::string sidecar_binary;  // tap-sidecar; empty = beside this program's binary, then PATH
  std::string runtime_dir;     // where sidecar sockets go (created mode 0700, CheckRuntimeDir)
  int ready_timeout_ms = 5000;
  int sidecar_nice = 10;  // the sidecars' nice value (setpriority): below the pods they tap
  // The user a sidecar started as root becomes once its capture is open (tap-sidecar -Z,
  // sidecar/privileges.h); empty = the sidecar's default (nobody); "root" keeps root.
  std::string sidecar_user;
};


// Loads the inventory (Inventory::Load errors; the file is then reloaded when it changes, see
// InventoryFileResolver), checks the sidecar binary (NotFound) and creates or checks the runtime
// directory (CheckRuntimeDir errors).
absl::StatusOr<std::unique_ptr<Runtime>> NewLocalRuntime(const LocalRuntimeOptions& options);

// The tap-sidecar binary beside `self` (a program's path) or in ../sidecar/ of a build tree,
// else "tap-sidecar" from PATH; empty when none is found.
std::string FindSidecarBinary(const std::string& self);

}  // namespace tapkit

#endif  // TAPKIT_CONTROLPLANE_RUNTIME_H_
