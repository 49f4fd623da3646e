// resolver.h: how the control plane learns which pods exist (DESIGN.md sections 4 and 5).
//
// A Resolver answers the questions a tap asks about the cluster: the pods a target names, the
// addresses --to and --from name, and the labels of an endpoint by address. Pods come and go
// while a tap runs (a Deployment scales, a pod is replaced, an inventory file is edited), so a
// Resolver has a version: a number that changes whenever its answers may have changed. A running
// tap polls Version() (about every 100 ms) and resolves its target again when it differs from
// the version it last resolved against; the pods that appeared get a sidecar, those that left
// have their streams ended (tap_session.h).
//
// InventoryFileResolver is the local runtime's: an inventory file (inventory.h), reloaded when
// the file changes (its mtime, size or inode). A reload that fails keeps the last good inventory,
// logs why once on stderr and keeps the version; the next change of the file is tried again. A
// Kubernetes runtime implements Resolver with the API server (a pod informer's resource version).
//
// Thread-safety: every method of a Resolver may be called from any number of threads at once.
#ifndef TAPKIT_CONTROLPLANE_RESOLVER_H_
#define TAPKIT_CONTROLPLANE_RESOLVER_H_

#include <sys/types.h>

#include <cstdint>
#include <memory>
#include <mutex>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "controlplane/inventory.h"
#include "format/exchange.h"  // Labels

namespace tapkit {

class Resolver {
 public:
  virtual ~Resolver() = default;

  // The pods `target` (inventory.h ParseTarget syntax, e.g. "deploy/backend") names in
  // namespace `ns` ("" = "default"), narrowed by `label_selector` (kubectl -l syntax; "" = all),
  // sorted by name. Errors as Inventory::Resolve: InvalidArgument for a malformed target or
  // selector; NotFound, listing what exists, for an unknown namespace or object or no pods.
  virtual absl::StatusOr<std::vector<PodInfo>> Resolve(const std::string& target,
                                                       const std::string& ns,
                                                       const std::string& label_selector) = 0;

  // The addresses (canonical text, e.g. "127.0.10.2") of --to or --from `resource` in `ns`.
  // Errors as Resolve. The default resolves the resource's pods.
  virtual absl::StatusOr<std::vector<std::string>> PeerAddresses(const std::string& resource,
                                                                 const std::string& ns);

  // The resource labels of the endpoint at `ip` (Inventory::LabelsFor): namespace, pod,
  // workload kind and name, service. Empty Labels for an address no pod has.
  virtual Labels LabelsFor(const std::string& ip) = 0;

  // A number that changes (grows) whenever the answers above may have changed. Cheap enough to
  // be called every 100 ms by each running tap.
  virtual uint64_t Version() = 0;
};

// The local runtime's resolver: the inventory file at `path`, reloaded on change (see above).
class InventoryFileResolver final : public Resolver {
 public:
  // Loads the file; errors as Inventory::Load.
  static absl::StatusOr<std::unique_ptr<InventoryFileResolver>> Open(const std::string& path);

  // Resolver:
  absl::StatusOr<std::vector<PodInfo>> Resolve(const std::string& target, const std::string& ns,
                                               const std::string& label_selector) override;
  Labels LabelsFor(const std::string& ip) override;
  // Checks the file (one stat) and reloads it when it changed; 1 for the first load.
  uint64_t Version() override;

  // The inventory in use (the last good one), as of the last Version() call.
  Inventory Current();
  // Why the last reload failed ("" when the inventory in use is the file's content).
  std::string LastError();

 private:
  struct FileId {
    dev_t dev = 0;
    ino_t ino = 0;
    off_t size = 0;
    int64_t mtime_ns = 0;
    bool operator==(const FileId&) const = default;
  };
  InventoryFileResolver(std::string path, Inventory inv, FileId id);
  static bool Stat(const std::string& path, FileId* id);

  const std::string path_;
  std::mutex mu_;
  Inventory inventory_;  // the last good one
  FileId seen_;          // the file as last loaded (or last tried)
  uint64_t version_ = 1;
  std::string last_error_;
};

}  // namespace tapkit

#endif  // TAPKIT_CONTROLPLANE_RESOLVER_H_
