// tapfilter as a user runs it: standard input and output, exit codes, error lines.
#include <gtest/gtest.h>
#include <sys/wait.h>

#include <algorithm>
#include <fstream>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"
#include "format/test_dir.h"
#include "format/testutil.h"

namespace tapkit {
namespace {

struct CmdResult {
  int rc = -1;
  std::string out, err;
};

// Runs `cmd` under sh with stdout and stderr captured.
CmdResult Sh(const std::string& cmd) {
  std::string out = absl::StrCat(testing::TestDir(), "/sh.out");
  std::string err = absl::StrCat(testing::TestDir(), "/sh.err");
  int status = std::system(absl::StrCat("(", cmd, ") > '", out, "' 2> '", err, "'").c_str());
  CmdResult r;
  r.rc = WIFEXITED(status) ? WEXITSTATUS(status) : -1;
  r.out = testing::ReadFileBytes(out);
  r.err = testing::ReadFileBytes(err);
  return r;
}

std::string Q(const std::string& s) { return "'" + s + "'"; }
const std::string kTapfilter = Q(TAPFILTER_BIN), kTapcat = Q(TAPCAT_BIN),
                  kTapsynth = Q(TAPSYNTH_BIN);

std::vector<std::string> SortedLines(const std::string& s) {
  std::vector<std::string> v = absl::StrSplit(s, '\n', absl::SkipEmpty());
  std::sort(v.begin(), v.end());
  return v;
}

// `-` reads a pipe and writes one; merged with a file, the result is the sort of the union, the
// same as tapcat's merge of the two.
TEST(Tapfilter, StdinToStdoutMerged) {
  std::string a = absl::StrCat(testing::TestDir(), "/a.tap");
  std::string b = absl::StrCat(testing::TestDir(), "/b.tap");
  ASSERT_EQ(Sh(kTapsynth + " -n 2000 --seed 1 -w " + Q(a)).rc, 0);
  ASSERT_EQ(Sh(kTapsynth + " -n 1500 --seed 2 -w " + Q(b)).rc, 0);
  CmdResult piped = Sh("cat " + Q(a) + " | " + kTapfilter + " - " + Q(b) + " -w - | " + kTapcat +
                       " -o json --file-order -");
  EXPECT_EQ(piped.rc, 0) << piped.err;
  EXPECT_EQ(piped.err, "");
  CmdResult merged = Sh(kTapcat + " -o json " + Q(a) + " " + Q(b));
  ASSERT_EQ(merged.rc, 0);
  // tapcat numbers nothing: the capture points of the second input differ after tapfilter's
  // renumbering, so compare what does not name them.
  auto strip = [](const std::string& s) {
    std::string o;
    for (const std::string& l :
         std::vector<std::string>(absl::StrSplit(s, '\n', absl::SkipEmpty()))) {
      size_t at = l.find("\"id\":{\"capturePoint\":");
      size_t end = l.find(',', at);
      o += absl::StrCat(l.substr(0, at), l.substr(end), "\n");
    }
    return o;
  };
  EXPECT_EQ(strip(piped.out), strip(merged.out));
  EXPECT_EQ(SortedLines(piped.out).size(), 3500u);
}

TEST(Tapfilter, BadInputAndUsage) {
  std::string bad = absl::StrCat(testing::TestDir(), "/bad.tap");
  std::ofstream(bad) << "hello";
  std::string out = absl::StrCat(testing::TestDir(), "/o.tap");
  CmdResult r = Sh(kTapfilter + " " + Q(bad) + " -w " + Q(out));
  EXPECT_EQ(r.rc, 2);
  EXPECT_NE(r.err.find(bad + ": offset 0: not a .tap file"), std::string::npos) << r.err;
  CmdResult none = Sh(kTapfilter + " -w " + Q(out));
  EXPECT_EQ(none.rc, 2);
  EXPECT_NE(none.err.find("no input file"), std::string::npos) << none.err;
  CmdResult split = Sh(kTapfilter + " " + Q(bad) + " -C 1 -w -");
  EXPECT_EQ(split.rc, 2);
  EXPECT_NE(split.err.find("-C needs -w FILE"), std::string::npos) << split.err;
  CmdResult size = Sh(kTapfilter + " " + Q(bad) + " -C lots -w " + Q(out));
  EXPECT_EQ(size.rc, 2);
  EXPECT_NE(size.err.find("-C lots: not a size"), std::string::npos) << size.err;
}

// -c N keeps the first N in sort-key order, and the header says so.
TEST(Tapfilter, CountIsRecorded) {
  std::string a = absl::StrCat(testing::TestDir(), "/c.tap");
  std::string out = absl::StrCat(testing::TestDir(), "/c-out.tap");
  ASSERT_EQ(Sh(kTapsynth + " -n 500 -w " + Q(a)).rc, 0);
  ASSERT_EQ(Sh(kTapfilter + " -c 10 " + Q(a) + " -w " + Q(out)).rc, 0);
  CmdResult first = Sh(kTapcat + " -o json -c 10 " + Q(a));
  CmdResult got = Sh(kTapcat + " -o json " + Q(out));
  EXPECT_EQ(got.out, first.out);
  CmdResult info = Sh(kTapcat + " --info " + Q(out));
  EXPECT_NE(info.out.find("count=10"), std::string::npos) << info.out;
  EXPECT_NE(info.out.find("selected_out=0"), std::string::npos) << info.out;
}

// SIGINT or SIGTERM in the middle of a run: the output is finished (tapcat --info reads its
// trailer), one line says how many exchanges were written, and the exit status is 2. The input
// takes seconds to copy (300000 exchanges, about 120 MB); the signal goes once the output has
// grown past 1 MB.
TEST(Tapfilter, SignalFinishesTheOutput) {
  std::string in = absl::StrCat(testing::TestDir(), "/big.tap");
  ASSERT_EQ(Sh(kTapsynth + " -n 300000 --seed 3 -w " + Q(in)).rc, 0);
  for (const char* sig : {"INT", "TERM"}) {
    std::string out = absl::StrCat(testing::TestDir(), "/cut-", sig, ".tap");
    std::string err = absl::StrCat(testing::TestDir(), "/cut-", sig, ".err");
    // sh: start tapfilter, wait for its output to pass 1 MB, signal it, print its exit status.
    CmdResult r = Sh(absl::StrCat(
        kTapfilter, " ", Q(in), " -w ", Q(out), " 2> ", Q(err), " & p=$!; ",
        "while [ \"$(stat -c %s ", Q(out), " 2>/dev/null || echo 0)\" -lt 1000000 ]; do ",
        "sleep 0.01; done; kill -", sig, " $p; wait $p; echo $?"));
    EXPECT_EQ(r.out, "2\n") << sig << ": " << r.err;
    std::string said = testing::ReadFileBytes(err);
    std::vector<std::string> lines = absl::StrSplit(said, '\n', absl::SkipEmpty());
    ASSERT_EQ(lines.size(), 1u) << said;
    const std::string prefix = absl::StrCat("tapfilter: interrupted by SIG", sig, ": ");
    ASSERT_EQ(lines[0].rfind(prefix, 0), 0u) << said;
    uint64_t written = std::stoull(lines[0].substr(prefix.size()));
    EXPECT_GT(written, 0u);
    EXPECT_LT(written, 300000u);
    EXPECT_NE(lines[0].find(" exchanges written; the output ends there, with its index and "
                            "trailer"),
              std::string::npos)
        << said;
    // The output reads back whole: a trailer, and as many exchanges as the line says.
    CmdResult info = Sh(kTapcat + " --info " + Q(out));
    EXPECT_EQ(info.rc, 0) << info.err;
    EXPECT_EQ(info.err, "");
    EXPECT_NE(info.out.find("\nTrailer:          present, closed "), std::string::npos)
        << info.out;
    EXPECT_NE(info.out.find("\nDamage:           none\n"), std::string::npos) << info.out;
    EXPECT_NE(info.out.find(absl::StrCat("\nExchanges:        ", written, "\n")),
              std::string::npos)
        << info.out;
    CmdResult n = Sh(kTapcat + " -o json " + Q(out) + " | wc -l");
    EXPECT_EQ(n.rc, 0);
    EXPECT_EQ(std::stoull(n.out), written);
  }
}

}  // namespace
}  // namespace tapkit

namespace tapkit {
namespace {

// Regression (fresh-user trial): a workload selection on tapfilter's merge of labelled captures
// was refused as "no endpoint labels" once the merge had dropped the inputs' differing targets.
// The output says its endpoints are labelled, and the selection counts what jq counts.
TEST(Tapfilter, MergedLabelledCapturesKeepWorkloadSelection) {
  std::string a = absl::StrCat(testing::TestDir(), "/la.tap");
  std::string b = absl::StrCat(testing::TestDir(), "/lb.tap");
  std::string ab = absl::StrCat(testing::TestDir(), "/lab.tap");
  ASSERT_EQ(Sh(kTapsynth + " -n 800 --seed 5 -w " + Q(a)).rc, 0);
  ASSERT_EQ(Sh(kTapsynth + " -n 600 --seed 6 -w " + Q(b)).rc, 0);
  ASSERT_EQ(Sh(kTapfilter + " " + Q(a) + " " + Q(b) + " -w " + Q(ab)).rc, 0);
  CmdResult info = Sh(kTapcat + " --info -o json " + Q(ab) +
                      " | jq -r '.metadata.extra[] | select(.name == \"endpoint-labels\") | .value'");
  EXPECT_EQ(info.out, "yes\n") << info.err;
  CmdResult selected = Sh(kTapcat + " -o json --to deploy/backend --method POST " + Q(ab) +
                          " | wc -l");
  ASSERT_EQ(selected.rc, 0) << selected.err;
  CmdResult want = Sh(kTapcat + " -o json " + Q(a) + " " + Q(b) +
                      " | jq -c 'select(.destination.metadata.deployment == \"backend\" and "
                      ".request.method == \"POST\")' | wc -l");
  EXPECT_EQ(selected.out, want.out);
  EXPECT_NE(want.out, "0\n");
}

}  // namespace
}  // namespace tapkit
