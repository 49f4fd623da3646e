// taprec -r as a user runs it: exit codes, messages and the file it writes (read back by tapcat).
#include <gtest/gtest.h>
#include <sys/wait.h>

#include <fstream>

#include "absl/strings/str_cat.h"
#include "format/testutil.h"

namespace tapkit {
namespace {

const std::string kFixture = TAPKIT_SOURCE_DIR "/fixtures/captures/pipelined-3-gets.pcap";

struct Result {
  int rc = -1;
  std::string out, err;
};

Result Sh(const std::string& cmd) {
  std::string base = absl::StrCat(::testing::TempDir(), "/taprec.",
                                  ::testing::UnitTest::GetInstance()->current_test_info()->name());
  int status = std::system(absl::StrCat(cmd, " > '", base, ".out' 2> '", base, ".err'").c_str());
  return {WIFEXITED(status) ? WEXITSTATUS(status) : -1, testing::ReadFileBytes(base + ".out"),
          testing::ReadFileBytes(base + ".err")};
}

std::string Taprec(const std::string& args) { return absl::StrCat("'", TAPREC_BIN, "' ", args); }

TEST(Taprec, WritesWhatTapcatReads) {
  std::string tap = absl::StrCat(::testing::TempDir(), "/pipelined.tap");
  Result w = Sh(Taprec("-r '" + kFixture + "' -w '" + tap + "'"));
  EXPECT_EQ(w.rc, 0) << w.err;
  EXPECT_EQ(w.err, "");
  testing::ReadResult r = testing::ReadAll(testing::ReadFileBytes(tap));
  ASSERT_TRUE(r.open.ok());
  ASSERT_EQ(r.exchanges.size(), 3u);
  EXPECT_EQ(r.exchanges[2].request->path, "/missing");
  EXPECT_EQ(r.exchanges[2].response->status, 404);
  auto reader = Reader::Open(NewStringReadableFile(testing::ReadFileBytes(tap)));
  ASSERT_TRUE(reader.ok());
  EXPECT_EQ((*reader)->metadata().writer_name, "taprec");
  ASSERT_TRUE((*reader)->summary().has_value());
  EXPECT_EQ((*reader)->summary()->counters.at("http1_requests"), 3u);
}

TEST(Taprec, CountZeroAndBpf) {
  EXPECT_EQ(Sh(Taprec("-r '" + kFixture + "' -c 0")).out, "");
  Result one = Sh(Taprec("-r '" + kFixture + "' -c 1"));
  EXPECT_EQ(std::count(one.out.begin(), one.out.end(), '\n'), 3) << one.out;  // req, rsp, end
  EXPECT_EQ(Sh(Taprec("-r '" + kFixture + "' tcp port 9")).out, "") << "BPF filters everything";
  Result bad = Sh(Taprec("-r '" + kFixture + "' 'tcp port'"));
  EXPECT_EQ(bad.rc, 2);
  EXPECT_NE(bad.err.find("BPF expression"), std::string::npos) << bad.err;
}

TEST(Taprec, InputErrors) {
  Result missing = Sh(Taprec("-r /nonexistent.pcap"));
  EXPECT_EQ(missing.rc, 2);
  EXPECT_NE(missing.err.find("/nonexistent.pcap"), std::string::npos);
  std::string text = absl::StrCat(::testing::TempDir(), "/notes.txt");
  std::ofstream(text) << "not a capture\n";
  Result not_pcap = Sh(Taprec("-r '" + text + "'"));
  EXPECT_EQ(not_pcap.rc, 2);
  EXPECT_NE(not_pcap.err.find("not a pcap or pcapng capture"), std::string::npos) << not_pcap.err;
  Result full = Sh("(" + Taprec("-r '" + kFixture + "'") + " > /dev/full)");
  EXPECT_EQ(full.rc, 2);
  EXPECT_NE(full.err.find("write error"), std::string::npos) << full.err;
  Result negative = Sh(Taprec("-r '" + kFixture + "' --snaplen-body -1"));
  EXPECT_EQ(negative.rc, 2);
}

TEST(Taprec, RefusesToOverwriteItsInput) {
  std::string copy = absl::StrCat(::testing::TempDir(), "/input.pcap");
  std::ofstream(copy, std::ios::binary) << testing::ReadFileBytes(kFixture);
  Result r = Sh(Taprec("-r '" + copy + "' -w '" + copy + "'"));
  EXPECT_EQ(r.rc, 2);
  EXPECT_EQ(testing::ReadFileBytes(copy), testing::ReadFileBytes(kFixture))
      << "the capture is untouched";
}

// A capture damaged mid-file: what came before is written, the damage is named, exit 2, and the
// .tap records it as a drop.
TEST(Taprec, DamagedCaptureKeepsWhatCameBefore) {
  std::string corpus = testing::CorpusDir();
  TAPKIT_REQUIRE_CORPUS(corpus);
  std::string tap = absl::StrCat(::testing::TempDir(), "/corrupted.tap");
  Result r = Sh(Taprec("-r '" + corpus + "/pcaps/pcapfileex__corrupted.pcap' -w '" + tap + "'"));
  EXPECT_EQ(r.rc, 2);
  EXPECT_NE(r.err.find("after 27 frames"), std::string::npos) << r.err;
  auto reader = Reader::Open(NewStringReadableFile(testing::ReadFileBytes(tap)));
  ASSERT_TRUE(reader.ok());
  ASSERT_TRUE((*reader)->summary().has_value());
  EXPECT_EQ((*reader)->summary()->exchanges, 2u);
  EXPECT_EQ((*reader)->summary()->drops.at("input_read_error"), 1u);
}

// Standard input cannot be reopened: a pcapng that libpcap refuses (interfaces of different link
// types) is read by the project's pcapng reader from the start. Regression from the taprec trial.
TEST(Taprec, MixedLinkPcapngOnStdin) {
  std::string corpus = testing::CorpusDir();
  TAPKIT_REQUIRE_CORPUS(corpus);
  std::string file = corpus + "/pcaps/pcapfileex__sample_multi_nanosecond.pcap";
  Result piped = Sh("cat '" + file + "' | " + Taprec("-r - -o json"));
  Result direct = Sh(Taprec("-r '" + file + "' -o json"));
  EXPECT_EQ(piped.rc, 0) << piped.err;
  EXPECT_EQ(std::count(piped.out.begin(), piped.out.end(), '\n'), 4);
  EXPECT_EQ(piped.out, direct.out);
  Result plain = Sh("cat '" + kFixture + "' | " + Taprec("-r - -o json"));
  EXPECT_EQ(std::count(plain.out.begin(), plain.out.end(), '\n'), 3) << plain.err;
}

}  // namespace
}  // namespace tapkit
