// RotatingWriter: tcpdump's -C, -W and -G file naming and limits; every file a whole .tap.
#include "recorder/rotating_writer.h"

#include <gtest/gtest.h>

#include <algorithm>
#include <chrono>
#include <filesystem>
#include <thread>

#include <stdlib.h>

#include "format/test_dir.h"
#include "format/testutil.h"

namespace tapkit {
namespace {

namespace fs = std::filesystem;

// A directory of this test's own (mkdtemp), under the test temporary directory.
std::string Dir(const std::string& name) {
  std::string tmpl = testing::TestDir() + "/rotate-" + name + "-XXXXXX";
  EXPECT_NE(::mkdtemp(tmpl.data()), nullptr) << tmpl;
  return tmpl;
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
  // The number goes before the extension: every file ends in .tap (tapcat out*.tap).
  EXPECT_EQ(files[0], "out.tap");
  EXPECT_EQ(files[1], "out1.tap");
  uint64_t total = 0;
  for (const std::string& f : files) total += Exchanges(d + "/" + f);
  EXPECT_EQ(total, 6000u) << "every exchange in exactly one file";
}

// tcpdump's -C: a file is closed once it reaches the size, so each file but the last is at least
// the size and at most the size plus what one exchange adds. A producer much faster than the
// writer (taprec -r) once overshot -C 5k by 380 times: the size was known only for segments
// already written, with dozens of large exchanges in flight.
TEST(RotatingWriter, SizeRotationHoldsAFastProducerToTheSize) {
  std::string d = Dir("fast");
  RotationOptions o;
  o.max_bytes = 20 << 10;
  RotatingWriter w(d + "/out.tap", testing::SampleMetadata(), o, [] { return TrailerInput{}; });
  ASSERT_TRUE(w.Open().ok());
  uint64_t largest = 0;  // the most one exchange can add: its kept bytes, uncompressed
  for (uint64_t i = 0; i < 400; ++i) {
    Exchange x = testing::RichExchange(i);
    // Bodies that barely compress (a simple LCG), 3 KiB each way.
    std::string body(3 << 10, '\0');
    uint32_t state = static_cast<uint32_t>(i) * 2654435761u + 1;
    for (char& c : body) c = static_cast<char>((state = state * 1664525u + 1013904223u) >> 24);
    x.request->body.data = body;
    x.request->body.length = body.size();
    x.response->body.data = body;
    x.response->body.length = body.size();
    largest = std::max<uint64_t>(largest, 2 * body.size() + 4096);
    ASSERT_TRUE(w.Append(std::move(x)).ok());
  }
  ASSERT_TRUE(w.Close().ok());
  std::vector<std::string> files = Files(d);
  ASSERT_GE(files.size(), 10u);
  uint64_t total = 0;
  for (const std::string& f : files) {
    uint64_t size = fs::file_size(d + "/" + f);
    total += Exchanges(d + "/" + f);
    EXPECT_LE(size, o.max_bytes + largest) << f;
    if (f != "out" + std::to_string(files.size() - 1) + ".tap") {
      EXPECT_GE(size, o.max_bytes) << f;  // a file closes only once it reached -C
    }
  }
  EXPECT_EQ(total, 400u);
}

TEST(RotatingWriter, RingOfCountFiles) {
  std::string d = Dir("ring");
  RotationOptions o;
  o.max_bytes = 100 << 10;
  o.count = 3;
  std::vector<std::string> notices;
  o.notice = [&](const std::string& m) { notices.push_back(m); };
  RotatingWriter w(d + "/r.tap", testing::SampleMetadata(), o, [] { return TrailerInput{}; });
  ASSERT_TRUE(w.Open().ok());
  for (uint64_t i = 0; i < 12000; ++i) ASSERT_TRUE(w.Append(testing::RichExchange(i)).ok());
  ASSERT_TRUE(w.Close().ok());
  EXPECT_GT(w.files(), 3u) << "the ring went round";
  EXPECT_EQ(Files(d), (std::vector<std::string>{"r0.tap", "r1.tap", "r2.tap"}));
  // Every file opened after the first three overwrote an older one, and said so, in order.
  ASSERT_EQ(notices.size(), w.files() - 3);
  EXPECT_EQ(notices[0], "-W 3: overwriting " + d + "/r0.tap, the oldest file of the ring");
  if (notices.size() > 1) {
    EXPECT_EQ(notices[1], "-W 3: overwriting " + d + "/r1.tap, the oldest file of the ring");
  }
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
  EXPECT_EQ(Files(d), (std::vector<std::string>{"t.tap", "t1.tap"}));
  EXPECT_EQ(Exchanges(d + "/t.tap") + Exchanges(d + "/t1.tap"), i - 1);
}

// -G with capture_clock (taprec -r) cuts by the exchanges' timestamps, not by the wall clock:
// each file's period starts at the exchange that opened it, and all is written in a few
// milliseconds of wall clock.
TEST(RotatingWriter, TimeRotationFollowsCaptureTime) {
  std::string d = Dir("capture-time");
  RotationOptions o;
  o.seconds = 1;
  o.capture_clock = true;
  RotatingWriter w(d + "/c.tap", testing::SampleMetadata(), o, [] { return TrailerInput{}; });
  ASSERT_TRUE(w.Open().ok());
  const uint64_t t0 = 1'700'000'000'000'000'000ull;
  // Milliseconds: 0, 400, 800 | 1200, 1600 | 2300, 2700 | 9000 (a silence makes no empty files).
  for (uint64_t ms : {0, 400, 800, 1200, 1600, 2300, 2700, 9000}) {
    ASSERT_TRUE(w.Append(testing::SmallExchange(0, t0 + ms * 1'000'000)).ok());
    ASSERT_TRUE(w.Tick().ok());  // the wall clock plays no part
  }
  ASSERT_TRUE(w.Close().ok());
  EXPECT_EQ(Files(d), (std::vector<std::string>{"c.tap", "c1.tap", "c2.tap", "c3.tap"}));
  EXPECT_EQ(Exchanges(d + "/c.tap"), 3u);
  EXPECT_EQ(Exchanges(d + "/c1.tap"), 2u);
  EXPECT_EQ(Exchanges(d + "/c2.tap"), 2u);
  EXPECT_EQ(Exchanges(d + "/c3.tap"), 1u);
}

TEST(RotatingWriter, NumberedNames) {
  EXPECT_EQ(NumberedName("out.tap", 1), "out1.tap");
  EXPECT_EQ(NumberedName("dir.d/out.tap", 12), "dir.d/out12.tap");
  EXPECT_EQ(NumberedName("dir.d/out", 2), "dir.d/out2");
  EXPECT_EQ(NumberedName("out", 2), "out2");
  EXPECT_EQ(NumberedName("d/.tap", 2), "d/.tap2");
  EXPECT_EQ(NumberedName("x.y.tap", 7, 3), "x.y007.tap");
}

}  // namespace
}  // namespace tapkit
