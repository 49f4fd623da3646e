// resolver_test: the local runtime's resolver follows its inventory file: a pod added to or
// removed from the file is seen after the change (a new version); a file that no longer loads
// keeps the last good inventory, says why, and keeps the version.
#include "controlplane/resolver.h"
#include "format/test_dir.h"

#include <gmock/gmock.h>
#include <gtest/gtest.h>
#include <stdlib.h>

#include <cstdio>
#include <filesystem>
#include <fstream>
#include <string>

namespace tapkit {
namespace {

using ::testing::ElementsAre;
using ::testing::HasSubstr;

// A directory of this test's own (mkdtemp under TestDir()), removed at the end.
class TempDir : public tapkit::testing::ScopedTempDir {
 public:
  TempDir() : ScopedTempDir("resolver_test") {}
};

std::string PodYaml(const std::string& name, const std::string& ip) {
  return "---\napiVersion: v1\nkind: Pod\nmetadata:\n  name: " + name +
         "\n  namespace: demo\n  labels: {app: backend}\nstatus:\n  podIP: " + ip + "\n";
}

// Writes `content` to `path` as an editor would: a new file renamed over the old one.
void Replace(const std::string& path, const std::string& content) {
  std::string tmp = path + ".new";
  {
    std::ofstream out(tmp);
    out << content;
  }
  ASSERT_EQ(std::rename(tmp.c_str(), path.c_str()), 0);
}

std::vector<std::string> Names(Resolver& r) {
  std::vector<std::string> out;
  absl::StatusOr<std::vector<PodInfo>> pods = r.Resolve("namespace/demo", "demo", "app=backend");
  if (pods.ok()) {
    for (const PodInfo& p : *pods) out.push_back(p.name);
  }
  return out;
}

// A pod added to the file, then one removed, each seen with a new version.
TEST(InventoryFileResolver, FollowsPodsAddedAndRemovedInTheFile) {
  TempDir dir;
  ASSERT_FALSE(dir.path().empty());
  std::string path = dir.path() + "/inventory.yaml";
  Replace(path, PodYaml("backend-1", "127.0.10.2"));
  absl::StatusOr<std::unique_ptr<InventoryFileResolver>> r = InventoryFileResolver::Open(path);
  ASSERT_TRUE(r.ok()) << r.status();
  uint64_t v1 = (*r)->Version();
  EXPECT_EQ((*r)->Version(), v1);  // unchanged file, same version
  EXPECT_THAT(Names(**r), ElementsAre("backend-1"));

  Replace(path, PodYaml("backend-1", "127.0.10.2") + PodYaml("backend-2", "127.0.10.3"));
  uint64_t v2 = (*r)->Version();
  EXPECT_GT(v2, v1);
  EXPECT_THAT(Names(**r), ElementsAre("backend-1", "backend-2"));
  EXPECT_EQ((*r)->LabelsFor("127.0.10.3").pod, "backend-2");

  Replace(path, PodYaml("backend-2", "127.0.10.3"));
  uint64_t v3 = (*r)->Version();
  EXPECT_GT(v3, v2);
  EXPECT_THAT(Names(**r), ElementsAre("backend-2"));
  EXPECT_TRUE((*r)->LabelsFor("127.0.10.2").empty());
  EXPECT_EQ((*r)->LastError(), "");
}

// A broken file keeps the last good inventory and its version, with the error kept; fixing
// the file is seen.
TEST(InventoryFileResolver, BadReloadKeepsTheLastGoodInventory) {
  TempDir dir;
  ASSERT_FALSE(dir.path().empty());
  std::string path = dir.path() + "/inventory.yaml";
  Replace(path, PodYaml("backend-1", "127.0.10.2"));
  absl::StatusOr<std::unique_ptr<InventoryFileResolver>> r = InventoryFileResolver::Open(path);
  ASSERT_TRUE(r.ok()) << r.status();
  uint64_t v1 = (*r)->Version();
  Replace(path, PodYaml("backend-1", "not-an-ip"));
  EXPECT_EQ((*r)->Version(), v1);
  EXPECT_THAT((*r)->LastError(), HasSubstr("is not an IP address"));
  EXPECT_THAT(Names(**r), ElementsAre("backend-1"));
  Replace(path, PodYaml("backend-9", "127.0.10.9"));
  EXPECT_GT((*r)->Version(), v1);
  EXPECT_THAT(Names(**r), ElementsAre("backend-9"));
  EXPECT_EQ((*r)->LastError(), "");
}

}  // namespace
}  // namespace tapkit
