#include "controlplane/resolver.h"

#include <sys/stat.h>

#include <cstdio>
#include <utility>

namespace tapkit {

absl::StatusOr<std::vector<std::string>> Resolver::PeerAddresses(const std::string& resource,
                                                                 const std::string& ns) {
  absl::StatusOr<std::vector<PodInfo>> pods = Resolve(resource, ns, "");
  if (!pods.ok()) return pods.status();
  std::vector<std::string> out;
  for (const PodInfo& p : *pods) out.push_back(p.ip);
  return out;
}

InventoryFileResolver::InventoryFileResolver(std::string path, Inventory inv, FileId id)
    : path_(std::move(path)), inventory_(std::move(inv)), seen_(id) {}

bool InventoryFileResolver::Stat(const std::string& path, FileId* id) {
  struct stat st;
  if (::stat(path.c_str(), &st) != 0) return false;
  id->dev = st.st_dev;
  id->ino = st.st_ino;
  id->size = st.st_size;
  id->mtime_ns = int64_t{st.st_mtim.tv_sec} * 1000000000 + st.st_mtim.tv_nsec;
  return true;
}

absl::StatusOr<std::unique_ptr<InventoryFileResolver>> InventoryFileResolver::Open(
    const std::string& path) {
  FileId id;
  Stat(path, &id);  // before the load: a change during it is seen at the next Version()
  absl::StatusOr<Inventory> inv = Inventory::Load(path);
  if (!inv.ok()) return inv.status();
  return std::unique_ptr<InventoryFileResolver>(
      new InventoryFileResolver(path, *std::move(inv), id));
}

uint64_t InventoryFileResolver::Version() {
  std::lock_guard<std::mutex> l(mu_);
  FileId now;
  if (!Stat(path_, &now)) {
    // Gone (or being replaced): keep what we have; a new file is seen when it appears.
    if (seen_ == FileId{}) return version_;
    seen_ = FileId{};
    last_error_ = path_ + ": cannot be read; keeping the last good inventory";
    std::fprintf(stderr, "tap-controlplane: inventory %s\n", last_error_.c_str());
    return version_;
  }
  if (now == seen_) return version_;
  seen_ = now;
  absl::StatusOr<Inventory> inv = Inventory::Load(path_);
  if (!inv.ok()) {
    last_error_ = std::string(inv.status().message());
    std::fprintf(stderr,
                 "tap-controlplane: inventory %s changed but cannot be used (keeping the last "
                 "good one): %s\n",
                 path_.c_str(), last_error_.c_str());
    return version_;
  }
  inventory_ = *std::move(inv);
  last_error_.clear();
  return ++version_;
}

Inventory InventoryFileResolver::Current() {
  std::lock_guard<std::mutex> l(mu_);
  return inventory_;
}

std::string InventoryFileResolver::LastError() {
  std::lock_guard<std::mutex> l(mu_);
  return last_error_;
}

absl::StatusOr<std::vector<PodInfo>> InventoryFileResolver::Resolve(
    const std::string& target, const std::string& ns, const std::string& label_selector) {
  return Current().Resolve(target, ns.empty() ? "default" : ns, label_selector);
}

Labels InventoryFileResolver::LabelsFor(const std::string& ip) { return Current().LabelsFor(ip); }

}  // namespace tapkit
