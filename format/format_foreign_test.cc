// Real captures written by other tools (the shared corpus of pcap and pcapng files) are not .tap
// files: the reader refuses every one with one clear error that points at taprec, and never
// crashes or reads them as data.
#include <dirent.h>
#include <gtest/gtest.h>

#include <fstream>

#include "format/testutil.h"

namespace tapkit {
namespace {

TEST(Foreign, CorpusCapturesAreRefusedWithAHint) {
  std::string corpus = testing::CorpusDir();
  TAPKIT_REQUIRE_CORPUS(corpus);
  std::string dir = corpus + "/pcaps";
  DIR* d = opendir(dir.c_str());
  ASSERT_NE(d, nullptr) << dir;
  int files = 0;
  while (dirent* e = readdir(d)) {
    std::string name = e->d_name;
    if (name == "." || name == "..") continue;
    std::ifstream in(dir + "/" + name, std::ios::binary);
    std::string bytes((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
    testing::ReadResult r = testing::ReadAll(bytes);
    ++files;
    EXPECT_TRUE(absl::IsInvalidArgument(r.open)) << name << ": " << r.open;
    EXPECT_NE(std::string(r.open.message()).find("taprec -r"), std::string::npos)
        << name << ": " << r.open;
  }
  closedir(d);
  EXPECT_GE(files, 40) << "the corpus MANIFEST lists 45 captures";
}

}  // namespace
}  // namespace tapkit
