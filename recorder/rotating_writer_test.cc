// RotatingWriter: tcpdump's -C, -W and -G file naming and limits; every file a whole .tap.
#include "recorder/rotating_writer.h"

#include <gtest/gtest.h>

#include <algorithm>
#include <chrono>
#include <filesystem>
#include <thread>

#include "format/test_dir.h"
#include "format/testutil.h"

namespace tapkit {
namespace {

namespace fs = std::filesystem;

std::string Dir(const std::string& name) {
  std::string d = testing::TestDir() + "/rotate-" + name;
  fs::remove_all(d);
  fs::create_directories(d);
  return d;
}

std::vector<std::string> Files(const std::string& dir) {
  std::vector<std::string> out;
  for (const auto& e : fs::directory_iterator(dir)) out.push_back(e.path().filename().string());
  std::sort(out.begin(), out.end());
  return out;
}

uint64_t Exchanges(const std::string& path) {
  testing::ReadResult r = testing::ReadAll(testing::ReadFileBytes(path));
  EXPECT_TRUE(r.status.ok()) << path << ": " << r.status;
  EXPECT_TRUE(r.stats.trailer_read) << path;
  return r.exchanges.size();
}

TEST(RotatingWriter, SizeRotationNamesFilesLikeTcpdump) {
  std::string d = Dir("size");
  RotationOptions o;
  o.max_bytes = 200 << 10;
  RotatingWriter w(d + "/out.tap", testing::SampleMetadata(), o, [] { return TrailerInput{}; });
  ASSERT_TRUE(w.Open().ok());
  for (uint64_t i = 0; i < 6000; ++i) ASSERT_TRUE(w.Append(testing::RichExchange(i)).ok());
  ASSERT_TRUE(w.Close().ok());
  std::vector<std::string> files = Files(d);
  ASSERT_GE(files.size(), 2u);
  EXPECT_EQ(files[0], "out.tap");
  EXPECT_EQ(files[1], "out.tap1");
  uint64_t total = 0;
  for (const std::string& f : files) total += Exchanges(d + "/" + f);
  EXPECT_EQ(total, 6000u) << "every exchange in exactly one file";
}

TEST(RotatingWriter, RingOfCountFiles) {
  std::string d = Dir("ring");
  RotationOptions o;
  o.max_bytes = 100 << 10;
  o.count = 3;
  RotatingWriter w(d + "/r.tap", testing::SampleMetadata(), o, [] { return TrailerInput{}; });
  ASSERT_TRUE(w.Open().ok());
  for (uint64_t i = 0; i < 12000; ++i) ASSERT_TRUE(w.Append(testing::RichExchange(i)).ok());
  ASSERT_TRUE(w.Close().ok());
  EXPECT_GT(w.files(), 3u) << "the ring went round";
  EXPECT_EQ(Files(d), (std::vector<std::string>{"r.tap0", "r.tap1", "r.tap2"}));
  for (const std::string& f : Files(d)) EXPECT_GT(Exchanges(d + "/" + f), 0u);
}

TEST(RotatingWriter, TimeRotationStopsAfterCountFiles) {
  std::string d = Dir("time");
  RotationOptions o;
  o.seconds = 1;
  o.count = 2;
  RotatingWriter w(d + "/t.tap", testing::SampleMetadata(), o, [] { return TrailerInput{}; });
  ASSERT_TRUE(w.Open().ok());
  absl::Status s;
  auto end = std::chrono::steady_clock::now() + std::chrono::seconds(10);
  uint64_t i = 0;
  while (s.ok() && std::chrono::steady_clock::now() < end) {
    s = w.Append(testing::RichExchange(i++));
    std::this_thread::sleep_for(std::chrono::milliseconds(20));
  }
  EXPECT_TRUE(absl::IsOutOfRange(s)) << s;
  EXPECT_EQ(w.files(), 2u);
  EXPECT_EQ(Files(d), (std::vector<std::string>{"t.tap", "t.tap1"}));
  EXPECT_EQ(Exchanges(d + "/t.tap") + Exchanges(d + "/t.tap1"), i - 1);
}

}  // namespace
}  // namespace tapkit
