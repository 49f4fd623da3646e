// tapcat as a user runs it: exit codes, stdout and stderr on good, damaged and foreign input.
#include <gtest/gtest.h>
#include <signal.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <chrono>
#include <fstream>
#include <sstream>
#include <thread>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"
#include "format/block.h"
#include "format/test_dir.h"
#include "format/testutil.h"
#include "format/writer.h"

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

// Runs a shell command; its standard output, or "" (and a test failure) when it fails.
std::string Shell(const std::string& cmd) {
  std::string out = absl::StrCat(testing::TestDir(), "/shell.out");
  int status = std::system(absl::StrCat("(", cmd, ") > '", out, "'").c_str());
  EXPECT_TRUE(WIFEXITED(status) && WEXITSTATUS(status) == 0) << cmd;
  return testing::ReadFileBytes(out);
}

std::vector<std::string> SortedLines(const std::string& s) {
  std::vector<std::string> v = absl::StrSplit(s, '\n', absl::SkipEmpty());
  std::sort(v.begin(), v.end());
  return v;
}

// The order key jq sorts by: requestTime (RFC 3339 with nanoseconds, fixed width), then the id.
constexpr char kJqKey[] = "[.requestTime,.id.capturePoint,.id.stream]";

// On a file whose completion order differs from request-start order, tapcat's output is the
// --file-order output sorted by requestTime (jq), with nothing missing; the same from a pipe.
TEST(Tapcat, SortKeyOrderIsFileOrderSortedByRequestTime) {
  TAPKIT_REQUIRE_TOOL("jq");
  std::string tap = absl::StrCat(testing::TestDir(), "/synth.tap");
  Shell(absl::StrCat("'", TAPSYNTH_BIN, "' -n 5000 --seed 3 -w '", tap, "'"));
  std::string tapcat = absl::StrCat("'", TAPCAT_BIN, "' -o json ");
  std::string stored = Shell(tapcat + "--file-order '" + tap + "'");
  std::string sorted = Shell(tapcat + "'" + tap + "'");
  std::string piped = Shell("cat '" + tap + "' | " + tapcat + "-");
  ASSERT_EQ(Lines(stored), 5000u);
  EXPECT_EQ(SortedLines(sorted), SortedLines(stored)) << "the same exchanges, nothing missing";
  EXPECT_EQ(piped, sorted) << "the 10 s window puts a pipe in the same order";
  std::string stored_keys = Shell(tapcat + "--file-order '" + tap + "' | jq -c '" + kJqKey + "'");
  std::string want = Shell(tapcat + "--file-order '" + tap + "' | jq -c -s 'sort_by(" + kJqKey +
                           ")[] | " + kJqKey + "'");
  ASSERT_NE(stored_keys, want) << "completion order must differ from request-start order here";
  EXPECT_EQ(Shell(tapcat + "'" + tap + "' | jq -c '" + kJqKey + "'"), want);
}

// Two captures merged equal the sort of their union.
TEST(Tapcat, MergeOfTwoCapturesIsTheSortOfTheirUnion) {
  TAPKIT_REQUIRE_TOOL("jq");
  std::string a = absl::StrCat(testing::TestDir(), "/a.tap");
  std::string b = absl::StrCat(testing::TestDir(), "/b.tap");
  Shell(absl::StrCat("'", TAPSYNTH_BIN, "' -n 3000 --seed 1 -w '", a, "'"));
  Shell(absl::StrCat("'", TAPSYNTH_BIN, "' -n 2000 --seed 2 -w '", b, "'"));
  std::string tapcat = absl::StrCat("'", TAPCAT_BIN, "' -o json ");
  std::string merged = Shell(tapcat + "'" + a + "' '" + b + "'");
  std::string both = Shell(tapcat + "--file-order '" + a + "' '" + b + "'");
  EXPECT_EQ(Lines(merged), 5000u);
  EXPECT_EQ(SortedLines(merged), SortedLines(both));
  // Ties between the files (same requestTime, capture point and stream) keep the input order,
  // as jq's stable sort of the concatenation does.
  EXPECT_EQ(Shell(tapcat + "'" + a + "' '" + b + "' | jq -c '" + kJqKey + "'"),
            Shell(tapcat + "--file-order '" + a + "' '" + b + "' | jq -c -s 'sort_by(" + kJqKey +
                  ")[] | " + kJqKey + "'"));
}

// From a pipe, an exchange that arrives after the window has passed it prints at once, and one
// notice line at the end counts it.
TEST(Tapcat, LateExchangeOnAPipeIsCounted) {
  std::vector<uint64_t> secs = {0, 30, 25, 40, 5, 45};
  std::vector<Exchange> xs;
  for (size_t i = 0; i < secs.size(); ++i) {
    xs.push_back(testing::SmallExchange(i, 1'764'460'800'000'000'000 + secs[i] * 1'000'000'000));
  }
  std::string path = Temp("late.tap", testing::WriteToString(xs, 1, true));
  // Standard input must be a pipe: a file there is seekable and read through its index.
  std::string out = path + ".out", err = path + ".err";
  CmdResult r;
  int status = std::system(
      absl::StrCat("cat '", path, "' | '", TAPCAT_BIN, "' -o json - > '", out, "' 2> '", err, "'")
          .c_str());
  r.rc = WIFEXITED(status) ? WEXITSTATUS(status) : -1;
  r.out = testing::ReadFileBytes(out);
  r.err = testing::ReadFileBytes(err);
  EXPECT_EQ(r.rc, 0) << r.err;
  EXPECT_EQ(r.err,
            "tapcat: notice: 1 exchange arrived after the 10s reorder window and printed out of "
            "order\n");
  std::vector<std::string> lines = absl::StrSplit(r.out, '\n', absl::SkipEmpty());
  std::vector<std::string> got;
  for (const std::string& l : lines) got.push_back(l.substr(l.find("\"requestTime\":") + 32, 2));
  EXPECT_EQ(got, (std::vector<std::string>{"00", "25", "30", "05", "40", "45"})) << r.out;
  // -o pcap leaves the late one out (its packets would go back in time), and says so.
  EXPECT_EQ(Shell(absl::StrCat("cat '", path, "' | '", TAPCAT_BIN, "' -o pcap - 2>&1 >/dev/null")),
            "tapcat: notice: pcap: left out 1 exchange that came after the reorder window (their "
            "packets would go back in time); a larger --reorder-window keeps them\n"
            "tapcat: notice: 1 exchange arrived after the 10s reorder window and printed out of "
            "order\n");
  // The file itself has an index: exact order, no notice.
  CmdResult exact = Tapcat("-o json '" + path + "'");
  EXPECT_EQ(exact.err, "");
  // A window wide enough for the pipe too.
  EXPECT_EQ(Shell(absl::StrCat("cat '", path, "' | '", TAPCAT_BIN,
                               "' -o json --reorder-window 1m - 2>&1")),
            exact.out);
  CmdResult bad = Tapcat("--reorder-window 10 -", path);
  EXPECT_EQ(bad.rc, 2);
  EXPECT_NE(bad.err.find("--reorder-window '10': not a duration"), std::string::npos) << bad.err;
}

// tapcat -f prints an exchange a running writer appends within the flush interval, and SIGINT
// (or SIGTERM) ends it with exit 0.
void FollowOnce(int signal) {
  std::string path = absl::StrCat(testing::TestDir(), "/growing", signal, ".tap");
  std::string out = path + ".out", err = path + ".err";
  auto file = OpenWritableFile(path);
  ASSERT_TRUE(file.ok());
  WriterOptions wo;
  wo.flush_interval_ns = 200'000'000;
  auto writer = Writer::Open(*std::move(file), testing::SampleMetadata(), wo);
  ASSERT_TRUE(writer.ok());
  ASSERT_TRUE((*writer)->Append(testing::SmallExchange(1, 1'764'460'800'000'000'000)).ok());
  ASSERT_TRUE((*writer)->Flush().ok());
  pid_t pid = fork();
  ASSERT_GE(pid, 0);
  if (pid == 0) {
    if (!freopen(out.c_str(), "w", stdout) || !freopen(err.c_str(), "w", stderr)) _exit(127);
    execl(TAPCAT_BIN, "tapcat", "-f", "-o", "json", path.c_str(), nullptr);
    _exit(127);
  }
  auto wait_for_lines = [&](size_t n) {
    auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(5);
    while (Lines(testing::ReadFileBytes(out)) < n && std::chrono::steady_clock::now() < deadline) {
      std::this_thread::sleep_for(std::chrono::milliseconds(20));
    }
    return Lines(testing::ReadFileBytes(out));
  };
  EXPECT_EQ(wait_for_lines(1), 1u) << testing::ReadFileBytes(err);
  // The writer appends, and its flush timer writes the segment (Tick, as a live writer does).
  auto appended = std::chrono::steady_clock::now();
  ASSERT_TRUE((*writer)->Append(testing::SmallExchange(2, 1'764'460'801'000'000'000)).ok());
  while (std::chrono::steady_clock::now() - appended < std::chrono::milliseconds(250)) {
    std::this_thread::sleep_for(std::chrono::milliseconds(10));
    ASSERT_TRUE((*writer)->Tick().ok());
  }
  EXPECT_EQ(wait_for_lines(2), 2u) << testing::ReadFileBytes(err);
  // Flush interval (200 ms) plus tapcat's poll (100 ms), with room for a loaded machine.
  EXPECT_LT(std::chrono::steady_clock::now() - appended, std::chrono::milliseconds(1500));
  kill(pid, signal);
  int status = 0;
  ASSERT_EQ(waitpid(pid, &status, 0), pid);
  EXPECT_TRUE(WIFEXITED(status)) << "killed by the signal instead of ending cleanly";
  EXPECT_EQ(WIFEXITED(status) ? WEXITSTATUS(status) : -1, 0);
  EXPECT_EQ(testing::ReadFileBytes(err), "") << "a growing file is no torn tail";
  EXPECT_NE(testing::ReadFileBytes(out).find("\"stream\":2"), std::string::npos);
  ASSERT_TRUE((*writer)->Close().ok());
}

// The ordering flags that would silently ignore another exit 2 naming both.
TEST(Tapcat, OrderingFlagConflicts) {
  for (auto [args, want] : std::vector<std::pair<std::string, std::string>>{
           {"-f --info", "-f and --info cannot be used together"},
           {"--file-order --reorder-window 1s", "--file-order and --reorder-window cannot"},
           {"--reindex --file-order", "--file-order and --reindex cannot"},
           {"-o pcap --file-order",
            "tapcat: --file-order and -o pcap cannot be used together (-o pcap writes packets in "
            "time order, --file-order gives exchanges as stored)\n"}}) {
    CmdResult r = Tapcat(args + " '" + kGolden + "'");
    EXPECT_EQ(r.rc, 2) << args;
    EXPECT_NE(r.err.find(want), std::string::npos) << args << ": " << r.err;
    EXPECT_EQ(r.out, "");
  }
}

TEST(Tapcat, FollowPrintsAppendedExchangeAndEndsOnSigint) { FollowOnce(SIGINT); }
TEST(Tapcat, FollowEndsOnSigterm) { FollowOnce(SIGTERM); }

// Starts `tapcat -f -o json PATH` with stdout and stderr to PATH.out and PATH.err.
pid_t StartFollowing(const std::string& path) {
  std::string out = path + ".out", err = path + ".err";
  pid_t pid = fork();
  if (pid == 0) {
    if (!freopen(out.c_str(), "w", stdout) || !freopen(err.c_str(), "w", stderr)) _exit(127);
    execl(TAPCAT_BIN, "tapcat", "-f", "-o", "json", path.c_str(), nullptr);
    _exit(127);
  }
  return pid;
}

// Still running after `ms` milliseconds (not exited at once with an error).
bool RunsAfter(pid_t pid, int ms) {
  std::this_thread::sleep_for(std::chrono::milliseconds(ms));
  int status = 0;
  return waitpid(pid, &status, WNOHANG) == 0;
}

// The exit status after `signal`; -1 when a signal killed it.
int StopWith(pid_t pid, int signal) {
  kill(pid, signal);
  int status = 0;
  if (waitpid(pid, &status, 0) != pid) return -2;
  return WIFEXITED(status) ? WEXITSTATUS(status) : -1;
}

// tapcat -f on an empty file, then on one whose file header is cut short, waits for the header
// as tail -f waits for data (no error), then prints what the writer appends; Ctrl+C: exit 0.
TEST(Tapcat, FollowWaitsForAnEmptyOrShortFile) {
  std::string path = Temp("not-yet.tap", "");
  pid_t pid = StartFollowing(path);
  ASSERT_GT(pid, 0);
  EXPECT_TRUE(RunsAfter(pid, 300)) << testing::ReadFileBytes(path + ".err");
  // 10 bytes: a prefix of the 24-byte file header (magic, version, metadata length).
  std::string whole =
      testing::WriteToString({testing::SmallExchange(1, 1'764'460'800'000'000'000)});
  std::ofstream(path, std::ios::binary | std::ios::app) << whole.substr(0, 10);
  EXPECT_TRUE(RunsAfter(pid, 300)) << testing::ReadFileBytes(path + ".err");
  // A writer that has not finished its file: header and one flushed segment, no trailer.
  auto file = OpenWritableFile(path);
  ASSERT_TRUE(file.ok());
  auto writer = Writer::Open(*std::move(file), testing::SampleMetadata(), WriterOptions());
  ASSERT_TRUE(writer.ok());
  ASSERT_TRUE((*writer)->Append(testing::SmallExchange(1, 1'764'460'800'000'000'000)).ok());
  ASSERT_TRUE((*writer)->Flush().ok());
  auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(5);
  while (Lines(testing::ReadFileBytes(path + ".out")) < 1 &&
         std::chrono::steady_clock::now() < deadline) {
    std::this_thread::sleep_for(std::chrono::milliseconds(20));
  }
  EXPECT_EQ(Lines(testing::ReadFileBytes(path + ".out")), 1u);
  EXPECT_EQ(StopWith(pid, SIGINT), 0);
  EXPECT_EQ(testing::ReadFileBytes(path + ".err"), "");
  ASSERT_TRUE((*writer)->Close().ok());
}

// tapcat -f on a FIFO no writer has opened yet: Ctrl+C (or SIGTERM) ends the wait with exit 0
// and nothing on stderr, as the README says of -f.
TEST(Tapcat, FollowFifoWithoutWriterEndsOnSignal) {
  for (int signal : {SIGINT, SIGTERM}) {
    std::string path = absl::StrCat(testing::TestDir(), "/fifo", signal);
    unlink(path.c_str());
    ASSERT_EQ(mkfifo(path.c_str(), 0600), 0);
    pid_t pid = StartFollowing(path);
    ASSERT_GT(pid, 0);
    EXPECT_TRUE(RunsAfter(pid, 300));
    EXPECT_EQ(StopWith(pid, signal), 0) << signal;
    EXPECT_EQ(testing::ReadFileBytes(path + ".err"), "") << signal;
  }
}

}  // namespace
}  // namespace tapkit
