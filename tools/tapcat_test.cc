// tapcat as a user runs it: exit codes, stdout and stderr on good, damaged and foreign input.
#include <gtest/gtest.h>
#include <sys/wait.h>

#include <fstream>
#include <sstream>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"
#include "format/block.h"
#include "format/test_dir.h"
#include "format/testutil.h"

namespace tapkit {
namespace {

const std::string kGolden = TAPKIT_SOURCE_DIR "/fixtures/golden/v1.0.tap";

struct CmdResult {
  int rc = -1;
  std::string out, err;
};

std::string Temp(const std::string& name, const std::string& content) {
  std::string path = absl::StrCat(testing::TestDir(), "/", name);
  std::ofstream(path, std::ios::binary) << content;
  return path;
}

// Runs tapcat with `args` (shell words) and standard input from `in`.
CmdResult Tapcat(const std::string& args, const std::string& in = "/dev/null") {
  // One pair of files per test: ctest runs the tests of this binary in parallel processes.
  std::string base = absl::StrCat(testing::TestDir(), "/tapcat.",
                                  ::testing::UnitTest::GetInstance()->current_test_info()->name());
  std::string out = base + ".out";
  std::string err = base + ".err";
  std::string cmd =
      absl::StrCat("'", TAPCAT_BIN, "' ", args, " < '", in, "' > '", out, "' 2> '", err, "'");
  int status = std::system(cmd.c_str());
  CmdResult r;
  r.rc = WIFEXITED(status) ? WEXITSTATUS(status) : -1;
  r.out = testing::ReadFileBytes(out);
  r.err = testing::ReadFileBytes(err);
  return r;
}

size_t Lines(const std::string& s) { return std::count(s.begin(), s.end(), '\n'); }

TEST(Tapcat, PrintsGoldenFile) {
  CmdResult r = Tapcat("'" + kGolden + "'");
  EXPECT_EQ(r.rc, 0) << r.err;
  EXPECT_EQ(r.err, "");
  EXPECT_EQ(Lines(r.out), 14u);  // 3 + 4 + 2 + 2 + 3 lines for the five exchanges
  // The time column: absolute by default, the request's first byte (json.md's example
  // requestTime 2025-11-30T00:00:00.123456789Z) cut to microseconds.
  EXPECT_EQ(r.out.substr(0, 32), "2025-11-30T00:00:00.123456Z req ");
  CmdResult bare = Tapcat("-t '" + kGolden + "'");
  EXPECT_EQ(bare.rc, 0) << bare.err;
  EXPECT_EQ(bare.out.substr(0, 4), "req ") << "-t: linkerd's layout";
}

TEST(Tapcat, StdinCountAndJson) {
  CmdResult all = Tapcat("'" + kGolden + "'");
  CmdResult piped = Tapcat("-", kGolden);
  EXPECT_EQ(piped.rc, 0);
  EXPECT_EQ(piped.out, all.out) << "a pipe reads the same as the file";
  CmdResult two = Tapcat("-c 2 '" + kGolden + "'");
  EXPECT_EQ(two.rc, 0);
  EXPECT_EQ(Lines(two.out), 7u);
  EXPECT_EQ(all.out.substr(0, two.out.size()), two.out);
  CmdResult json = Tapcat("-o json '" + kGolden + "'");
  EXPECT_EQ(json.rc, 0);
  EXPECT_EQ(Lines(json.out), 5u);
  EXPECT_EQ(json.out.substr(0, 8), "{\"destin");  // keys in sorted order
}

// A capture written to a pipe (`-w -`) is read from a pipe (`-`): every exchange, no notice.
TEST(Tapcat, PipeToPipe) {
  std::string out = absl::StrCat(testing::TestDir(), "/pipe.out");
  std::string err = absl::StrCat(testing::TestDir(), "/pipe.err");
  std::string cmd = absl::StrCat("'", TAPSYNTH_BIN, "' -n 3000 --seed 5 -w - | '", TAPCAT_BIN,
                                 "' -o json - > '", out, "' 2> '", err, "'");
  ASSERT_EQ(std::system(cmd.c_str()), 0) << testing::ReadFileBytes(err);
  EXPECT_EQ(Lines(testing::ReadFileBytes(out)), 3000u);
  EXPECT_EQ(testing::ReadFileBytes(err), "");
}

TEST(Tapcat, Info) {
  CmdResult r = Tapcat("--info '" + kGolden + "'");
  EXPECT_EQ(r.rc, 0) << r.err;
  for (const char* want :
       {"Format:           .tap 1.0\n", "Exchanges:        5\n",
        "Segments:         ", "First request:    2025-11-30T00:00:00.123456789Z\n",
        "Last request:     2025-11-30T00:00:02.000000000Z\n",
        "Drops:            body_limit=1 kernel=2\n", "Counters:         opaque_connections=1\n",
        "Damage:           none\n", "Target:           deploy/backend (namespace demo)\n",
        "Redaction:        on (authorization, cookie, set-cookie; random key)\n"}) {
    EXPECT_NE(r.out.find(want), std::string::npos) << want << "\n" << r.out;
  }
}

TEST(Tapcat, ForeignEmptyAndMissingFiles) {
  CmdResult text = Tapcat("'" + Temp("notes.txt", "hello, not a capture\n") + "'");
  EXPECT_EQ(text.rc, 2);
  EXPECT_NE(text.err.find("notes.txt: offset 0: not a .tap file"), std::string::npos) << text.err;
  EXPECT_EQ(Lines(text.err), 1u);
  CmdResult empty = Tapcat("'" + Temp("empty.tap", "") + "'");
  EXPECT_EQ(empty.rc, 2);
  EXPECT_NE(empty.err.find("empty.tap: empty file"), std::string::npos) << empty.err;
  CmdResult missing = Tapcat("/nonexistent/x.tap");
  EXPECT_EQ(missing.rc, 2);
  EXPECT_NE(missing.err.find("/nonexistent/x.tap"), std::string::npos);
  CmdResult flag = Tapcat("--no-such-flag x");
  EXPECT_EQ(flag.rc, 2);
  CmdResult output = Tapcat("-o yaml '" + kGolden + "'");
  EXPECT_EQ(output.rc, 2);
  EXPECT_NE(output.err.find("-o yaml"), std::string::npos);
}

// A write error on standard output (a full disk) is an error, not a silent success.
TEST(Tapcat, WriteErrorOnStdout) {
  std::string err = absl::StrCat(testing::TestDir(), "/full.err");
  std::string cmd = absl::StrCat("'", TAPCAT_BIN, "' '", kGolden, "' > /dev/full 2> '", err, "'");
  int status = std::system(cmd.c_str());
  EXPECT_EQ(WIFEXITED(status) ? WEXITSTATUS(status) : -1, 2);
  EXPECT_NE(testing::ReadFileBytes(err).find("write error on standard output"), std::string::npos)
      << testing::ReadFileBytes(err);
}

// A mistyped -o that swallowed the file name says what is wrong with -o.
TEST(Tapcat, BadOutputNamedFirst) {
  CmdResult r = Tapcat("-o '" + kGolden + "'");
  EXPECT_EQ(r.rc, 2);
  EXPECT_NE(r.err.find("unknown output"), std::string::npos) << r.err;
}

TEST(Tapcat, FutureMajorVersion) {
  std::string v = testing::ReadFileBytes(kGolden);
  format::Put16(v.data() + 8, 3);
  CmdResult r = Tapcat("'" + Temp("future.tap", v) + "'");
  EXPECT_EQ(r.rc, 2);
  EXPECT_NE(r.err.find("future.tap: offset 8: .tap version 3.0 is newer"), std::string::npos)
      << r.err;
  EXPECT_EQ(r.out, "");
}

TEST(Tapcat, CorruptMiddleSegment) {
  std::vector<Exchange> xs;
  for (int i = 0; i < 30; ++i) xs.push_back(testing::RichExchange(i));
  std::string file = testing::WriteToString(xs, 2000);
  std::vector<uint64_t> blocks = testing::BlockOffsets(file);
  ASSERT_GE(blocks.size(), 4u);
  file[blocks[1] + 90] ^= 0x55;
  uint32_t lost = format::DecodeBlockHeader(file.data() + blocks[1]).count;
  CmdResult r = Tapcat("-o json '" + Temp("corrupt.tap", file) + "'");
  EXPECT_EQ(r.rc, 2);
  EXPECT_EQ(Lines(r.out), xs.size() - lost) << "every other exchange is printed";
  EXPECT_EQ(Lines(r.err), 1u) << r.err;
  EXPECT_NE(r.err.find(absl::StrCat("corrupt.tap: offset ", blocks[1], ": ")), std::string::npos)
      << r.err;
}

TEST(Tapcat, TornTailIsANotice) {
  std::vector<Exchange> xs;
  for (int i = 0; i < 30; ++i) xs.push_back(testing::RichExchange(i));
  std::string file = testing::WriteToString(xs, 2000, /*close=*/false);
  std::vector<uint64_t> blocks = testing::BlockOffsets(file);
  std::string torn = file.substr(0, blocks.back() + 100);  // killed inside the last segment
  uint32_t lost = format::DecodeBlockHeader(file.data() + blocks.back()).count;
  std::string path = Temp("torn.tap", torn);
  CmdResult r = Tapcat("-o json '" + path + "'");
  EXPECT_EQ(r.rc, 0) << r.err;
  EXPECT_EQ(Lines(r.out), xs.size() - lost);
  EXPECT_EQ(Lines(r.err), 1u);
  EXPECT_NE(r.err.find("notice: torn tail"), std::string::npos) << r.err;
  // --reindex gives it an index; afterwards it reads with no notice at all.
  CmdResult fix = Tapcat("--reindex '" + path + "'");
  EXPECT_EQ(fix.rc, 0) << fix.err;
  CmdResult again = Tapcat("-o json '" + path + "'");
  EXPECT_EQ(again.rc, 0);
  EXPECT_EQ(again.err, "");
  EXPECT_EQ(again.out, r.out);
}

}  // namespace
}  // namespace tapkit
