// run_test: tapreplay's flags as PlanReplay checks them (replay/run.h), and the tool's process
// where only a process shows it (a write error on standard output). The replay itself, the
// reports and the exit codes against real nginx servers are tools/replay_e2e_test.py's.
#include "replay/run.h"

#include <gtest/gtest.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cstdio>
#include <fstream>
#include <sstream>
#include <string>
#include <vector>

#include "absl/strings/str_cat.h"
#include "format/test_dir.h"
#include "format/testutil.h"
#include "replay/nginx_testutil.h"

namespace tapkit::replay {
namespace {

// Flags with an input and a target, and `given` filled as tapreplay's main fills it.
ReplayToolFlags Flags(std::initializer_list<std::pair<std::string, std::string>> set = {}) {
  ReplayToolFlags f;
  f.inputs = {"in.tap"};
  f.target = "http://127.0.0.1:8080";
  f.given = {"target"};
  for (const auto& [name, value] : set) {
    f.given.insert(name);
    if (name == "speed") f.speed = value;
    if (name == "rate") f.rate = value;
    if (name == "max") f.max = true;
    if (name == "concurrency") f.concurrency = value;
    if (name == "loop") f.loop = value;
    if (name == "sample") f.sample = value;
    if (name == "sample-seed") f.sample_seed = value;
    if (name == "timeout") f.timeout = value;
    if (name == "no-compare") f.no_compare = true;
    if (name == "rules") f.rules_file = value;
    if (name == "verbose") f.verbose = true;
    if (name == "output") f.output = value;
    if (name == "write") f.write = value;
    if (name == "junit") f.junit = value;
    if (name == "redact-key-file") f.redact_key_file = value;
    if (name == "no-redact") f.no_redact = true;
    if (name == "ignore-header") f.ignore_headers.push_back(value);
  }
  return f;
}

std::string Error(const ReplayToolFlags& f) {
  absl::StatusOr<ReplayPlan> p = PlanReplay(f);
  EXPECT_FALSE(p.ok());
  return p.ok() ? "" : std::string(p.status().message());
}

TEST(ParseSetHeader, TrimsOptionalWhitespaceAndKeepsTheNameAsWritten) {
  absl::StatusOr<Header> h = ParseSetHeader("X-Env: \t staging blue \t");
  ASSERT_TRUE(h.ok()) << h.status();
  EXPECT_EQ(h->name, "X-Env");
  EXPECT_EQ(h->value, "staging blue");
  h = ParseSetHeader("Authorization:Bearer abc:def");
  ASSERT_TRUE(h.ok()) << h.status();
  EXPECT_EQ(h->name, "Authorization");
  EXPECT_EQ(h->value, "Bearer abc:def");
  h = ParseSetHeader("X-Empty:");
  ASSERT_TRUE(h.ok()) << h.status();
  EXPECT_EQ(h->value, "");
}

TEST(ParseSetHeader, RefusesWhatIsNotAFieldLine) {
  EXPECT_EQ(ParseSetHeader("X-Env staging").status().message(),
            "--set-header X-Env staging: give 'Name: value'");
  EXPECT_EQ(ParseSetHeader("X Env: a").status().message(),
            "--set-header X Env: a: the name is not a field name (RFC 9110 section 5.6.2: a "
            "token)");
  EXPECT_EQ(ParseSetHeader(": a").status().message(),
            "--set-header : a: the name is not a field name (RFC 9110 section 5.6.2: a token)");
  EXPECT_EQ(ParseSetHeader("X-A: a\r\nX-B: b").status().message(),
            "--set-header X-A: the value holds CR, LF or NUL (RFC 9110 section 5.5 forbids them)");
}

TEST(ParseSetHeader, RefusesFramingAndHopByHopFields) {
  // The replay frames the body with a Content-Length of its own: a second one, or a
  // Transfer-Encoding beside it (RFC 9112 section 6.1), would break the request.
  for (std::string_view name : {"Content-Length", "transfer-encoding", "Connection", "Upgrade",
                                "TE", "Trailer", "Keep-Alive", "Proxy-Connection"}) {
    SCOPED_TRACE(name);
    std::string line = std::string(name) + ": 10";
    EXPECT_EQ(ParseSetHeader(line).status().message(),
              absl::StrCat("--set-header ", line,
                           ": tapreplay frames each message itself; a framing or hop-by-hop "
                           "field cannot be set (RFC 9110 section 7.6.1, RFC 9112 section 6)"));
  }
  // Host replaces the Host sent (a virtual host); --keep-authority keeps the recorded one.
  absl::StatusOr<Header> h = ParseSetHeader("Host: shop.example");
  ASSERT_TRUE(h.ok()) << h.status();
  EXPECT_EQ(h->name, "Host");
}

TEST(WrittenFlag, ShortFormsWhereTheToolHasThem) {
  EXPECT_EQ(WrittenFlag("verbose"), "-v");
  EXPECT_EQ(WrittenFlag("output"), "-o");
  EXPECT_EQ(WrittenFlag("write"), "-w");
  EXPECT_EQ(WrittenFlag("match-body"), "--match-body");
}

TEST(SameFile, ThroughAHardLinkAndASymlink) {
  const std::string dir = ::tapkit::testing::TestDir();
  const std::string a = dir + "/same-a.tap", hard = dir + "/same-hard.tap",
                    sym = dir + "/same-sym.tap", other = dir + "/same-other.tap";
  for (const std::string& p : {a, hard, sym, other}) ::unlink(p.c_str());
  std::ofstream(a) << "x";
  std::ofstream(other) << "x";
  ASSERT_EQ(::link(a.c_str(), hard.c_str()), 0);
  ASSERT_EQ(::symlink(a.c_str(), sym.c_str()), 0);
  EXPECT_TRUE(SameFile(a, hard));
  EXPECT_TRUE(SameFile(sym, a));
  EXPECT_FALSE(SameFile(a, other));  // same content, another file
  EXPECT_FALSE(SameFile(a, dir + "/same-missing.tap"));
}

TEST(ParsePathRewrite, SplitsAtTheFirstUnescapedEquals) {
  absl::StatusOr<PathRewrite> rw = ParsePathRewrite("^/v1/=/v2/");
  ASSERT_TRUE(rw.ok()) << rw.status();
  EXPECT_EQ(rw->regex, "^/v1/");
  EXPECT_EQ(rw->replacement, "/v2/");
  // The replacement may hold "=" (a query); the regex writes it "\=".
  rw = ParsePathRewrite(R"(^/q\?a\=([0-9]+)=/p?a=\1&b=2)");
  ASSERT_TRUE(rw.ok()) << rw.status();
  EXPECT_EQ(rw->regex, R"(^/q\?a\=([0-9]+))");
  EXPECT_EQ(rw->replacement, R"(/p?a=\1&b=2)");
  rw = ParsePathRewrite("/old=");
  ASSERT_TRUE(rw.ok()) << rw.status();
  EXPECT_EQ(rw->replacement, "");
}

TEST(ParsePathRewrite, RefusesBadRegexesAndGroups) {
  EXPECT_EQ(ParsePathRewrite("/a/b").status().message(),
            "--rewrite-path /a/b: give 'REGEX=REPLACEMENT' (\\= for a literal =)");
  EXPECT_EQ(ParsePathRewrite("=/x").status().message(), "--rewrite-path =/x: the regex is empty");
  EXPECT_EQ(ParsePathRewrite("(/a=/b").status().message(),
            "--rewrite-path (/a=/b: regex: missing ): (/a");
  std::string group = std::string(ParsePathRewrite(R"(/(a)=/\2)").status().message());
  EXPECT_EQ(group.rfind(R"(--rewrite-path /(a)=/\2: replacement: )", 0), 0u) << group;
}

TEST(PlanReplay, PacingFlagsAreExclusiveAndNamedTogether) {
  EXPECT_EQ(Error(Flags({{"speed", "2"}, {"rate", "10"}})),
            "--speed and --rate cannot be used together (one pacing: the recorded gaps divided "
            "by --speed, --rate requests per second, or --max)");
  EXPECT_EQ(Error(Flags({{"rate", "10"}, {"max", ""}})).substr(0, 42),
            "--rate and --max cannot be used together (");
  EXPECT_EQ(Error(Flags({{"speed", "1"}, {"max", ""}})).substr(0, 43),
            "--speed and --max cannot be used together (");
}

TEST(PlanReplay, PacingValues) {
  absl::StatusOr<ReplayPlan> p = PlanReplay(Flags({{"no-compare", ""}}));
  ASSERT_TRUE(p.ok()) << p.status();
  EXPECT_EQ(p->replay.pacing, Pacing::kRecorded);
  EXPECT_EQ(p->replay.speed, 1.0);
  EXPECT_EQ(p->replay.concurrency, 0);
  EXPECT_EQ(p->replay.loop, 1);
  EXPECT_FALSE(p->replay.compare);

  p = PlanReplay(Flags({{"speed", "0.5"}, {"no-compare", ""}}));
  ASSERT_TRUE(p.ok()) << p.status();
  EXPECT_EQ(p->replay.pacing, Pacing::kRecorded);
  EXPECT_EQ(p->replay.speed, 0.5);

  p = PlanReplay(Flags({{"rate", "250"}, {"concurrency", "8"}, {"loop", "3"}, {"no-compare", ""}}));
  ASSERT_TRUE(p.ok()) << p.status();
  EXPECT_EQ(p->replay.pacing, Pacing::kRate);
  EXPECT_EQ(p->replay.rate, 250.0);
  EXPECT_EQ(p->replay.concurrency, 8);
  EXPECT_EQ(p->replay.loop, 3);

  // --concurrency 0 is the default written out (a lane per recorded connection), as
  // ReplayOptions::concurrency and docs/architecture.md have it; the bounds ends are taken.
  p = PlanReplay(Flags({{"concurrency", "0"}, {"speed", "0.001"}, {"no-compare", ""}}));
  ASSERT_TRUE(p.ok()) << p.status();
  EXPECT_EQ(p->replay.concurrency, 0);
  EXPECT_EQ(p->replay.speed, 0.001);
  p = PlanReplay(Flags({{"concurrency", "256"}, {"rate", "10000000"}, {"no-compare", ""}}));
  ASSERT_TRUE(p.ok()) << p.status();
  EXPECT_EQ(p->replay.concurrency, 256);
  EXPECT_EQ(p->replay.rate, 1e7);

  p = PlanReplay(Flags({{"max", ""},
                        {"sample", "12.5%"},
                        {"sample-seed", "18446744073709551615"},
                        {"timeout", "250ms"},
                        {"no-compare", ""}}));
  ASSERT_TRUE(p.ok()) << p.status();
  EXPECT_EQ(p->replay.pacing, Pacing::kMax);
  EXPECT_EQ(p->replay.sample_percent, 12.5);
  EXPECT_EQ(p->replay.sample_seed, 18446744073709551615ull);
  EXPECT_EQ(p->replay.timeout_ns, 250'000'000);
}

TEST(PlanReplay, BadValuesNameTheirFlag) {
  EXPECT_EQ(Error(Flags({{"speed", "0"}})), "--speed 0: not a number from 0.001 to 1000");
  EXPECT_EQ(Error(Flags({{"speed", "inf"}})), "--speed inf: not a number from 0.001 to 1000");
  // Past the bounds a due time overflows: a 1 s gap at 1e-10 is 1e19 ns.
  EXPECT_EQ(Error(Flags({{"speed", "1e-10"}})), "--speed 1e-10: not a number from 0.001 to 1000");
  EXPECT_EQ(Error(Flags({{"speed", "1001"}})), "--speed 1001: not a number from 0.001 to 1000");
  EXPECT_EQ(Error(Flags({{"rate", "fast"}})), "--rate fast: not a number from 0.001 to 10000000");
  EXPECT_EQ(Error(Flags({{"rate", "1e-12"}})), "--rate 1e-12: not a number from 0.001 to 10000000");
  EXPECT_EQ(Error(Flags({{"rate", "10000001"}})),
            "--rate 10000001: not a number from 0.001 to 10000000");
  EXPECT_EQ(Error(Flags({{"concurrency", "-1"}})),
            "--concurrency -1: not a whole number from 0 to 256");
  EXPECT_EQ(Error(Flags({{"concurrency", "257"}})),
            "--concurrency 257: not a whole number from 0 to 256");
  EXPECT_EQ(Error(Flags({{"loop", "0"}})), "--loop 0: not a whole number from 1 to 1000000000");
  EXPECT_EQ(Error(Flags({{"sample", "0"}})),
            "--sample 0: not a percentage above 0 and at most 100");
  EXPECT_EQ(Error(Flags({{"sample", "100.5"}})),
            "--sample 100.5: not a percentage above 0 and at most 100");
  EXPECT_EQ(Error(Flags({{"sample", "50"}, {"sample-seed", "-1"}})),
            "--sample-seed -1: not a whole number from 0 to 2^64-1");
  EXPECT_EQ(Error(Flags({{"timeout", "5"}})),
            "--timeout '5': not a duration (a number and a unit: 10s, 500ms, 1.5s)");
  EXPECT_EQ(Error(Flags({{"timeout", "0"}})), "--timeout 0: must be above 0");
  EXPECT_EQ(Error(Flags({{"output", "yaml"}})), "-o yaml: not text or json");
}

TEST(PlanReplay, FlagsThatWouldBeIgnoredAreRefused) {
  EXPECT_EQ(Error(Flags({{"no-compare", ""}, {"rules", "r.yaml"}})),
            "--no-compare and --rules cannot be used together (--no-compare sends only; nothing "
            "is compared)");
  EXPECT_EQ(Error(Flags({{"no-compare", ""}, {"ignore-header", "x-a"}})).substr(0, 52),
            "--no-compare and --ignore-header cannot be used toge");
  EXPECT_EQ(Error(Flags({{"no-compare", ""}, {"verbose", ""}})).substr(0, 37),
            "--no-compare and -v cannot be used to");
  EXPECT_EQ(Error(Flags({{"verbose", ""}, {"output", "json"}})),
            "-v and -o json cannot be used together (-o json prints the exchanges that differ or "
            "failed, and a summary)");
  EXPECT_EQ(Error(Flags({{"sample-seed", "7"}})), "--sample-seed 7: goes with --sample PERCENT");
  ReplayToolFlags f = Flags();
  f.selection.incomplete = {"gap", "reset"};
  EXPECT_EQ(Error(f),
            "--incomplete gap,reset: selects exchanges that did not complete, which tapreplay "
            "skips unless --include-incomplete is given too");
  f.include_incomplete = true;
  f.no_compare = true;
  absl::StatusOr<ReplayPlan> p = PlanReplay(f);
  ASSERT_TRUE(p.ok()) << p.status();
  EXPECT_TRUE(p->replay.include_incomplete);
}

TEST(PlanReplay, InputsTargetAndOutputs) {
  ReplayToolFlags f = Flags({{"no-compare", ""}});
  f.inputs.clear();
  EXPECT_EQ(Error(f), "no input file (give IN.tap, or - for standard input)");
  f = Flags({{"no-compare", ""}});
  f.target.clear();
  EXPECT_EQ(Error(f), "--target is required (--target http://HOST:PORT)");

  char dir[] = "/tmp/run_test.XXXXXX";
  ASSERT_NE(mkdtemp(dir), nullptr);
  const std::string in = std::string(dir) + "/in.tap";
  std::ofstream(in) << "x";
  f = Flags({{"no-compare", ""}, {"write", std::string(dir) + "/./in.tap"}});
  f.inputs = {in};
  EXPECT_EQ(Error(f), "-w " + std::string(dir) + "/./in.tap: is an input; it would be overwritten");
  f = Flags({{"no-compare", ""}, {"junit", in}});
  f.inputs = {in};
  EXPECT_EQ(Error(f), "--junit " + in + ": is an input; it would be overwritten");
  EXPECT_EQ(Error(Flags({{"no-compare", ""}, {"junit", "-"}})),
            "--junit -: give a file name (the XML is written whole at the end)");
  EXPECT_EQ(Error(Flags({{"no-compare", ""}, {"junit", "a.xml"}, {"write", "a.xml"}})),
            "--junit a.xml: is -w's file too");

  EXPECT_EQ(Error(Flags({{"redact-key-file", std::string(dir) + "/nokey"}}))
                .rfind("--redact-key-file " + std::string(dir) + "/nokey", 0),
            0u);

  f = Flags({{"no-compare", ""}, {"write", "-"}, {"junit", std::string(dir) + "/r.xml"}});
  f.inputs = {"-"};
  absl::StatusOr<ReplayPlan> p = PlanReplay(f);
  ASSERT_TRUE(p.ok()) << p.status();
  EXPECT_EQ(p->capture_path, "-");
  EXPECT_EQ(p->junit_path, std::string(dir) + "/r.xml");
  EXPECT_EQ(p->replay.inputs, std::vector<std::string>{"-"});
  std::remove(in.c_str());
  rmdir(dir);
}

TEST(PlanReplay, RequestEditsAndSelection) {
  ReplayToolFlags f = Flags({{"no-compare", ""}});
  f.set_headers = {"X-Env: staging", "Authorization: Bearer t"};
  f.drop_headers = {"X-Debug"};
  f.rewrite_paths = {"^/v1/=/v2/"};
  f.selection.method = {"GET"};
  absl::StatusOr<ReplayPlan> p = PlanReplay(f);
  ASSERT_TRUE(p.ok()) << p.status();
  ASSERT_EQ(p->replay.set_headers.size(), 2u);
  EXPECT_EQ(p->replay.set_headers[1], (Header{"Authorization", "Bearer t"}));
  EXPECT_EQ(p->replay.drop_headers, std::vector<std::string>{"X-Debug"});
  ASSERT_EQ(p->replay.path_rewrites.size(), 1u);
  EXPECT_EQ(p->replay.path_rewrites[0].replacement, "/v2/");
  EXPECT_FALSE(p->replay.selection.empty());

  f.drop_headers = {"X Debug"};
  EXPECT_EQ(Error(f), "--drop-header X Debug: not a field name (RFC 9110 section 5.6.2: a token)");
  f.drop_headers.clear();
  f.selection.status = {"7xx"};
  EXPECT_EQ(Error(f), "--status 7xx: unknown status class (1xx..5xx)");
}

TEST(PlanReplay, ComparisonFlagsReachTheComparer) {
  char dir[] = "/tmp/run_test.XXXXXX";
  ASSERT_NE(mkdtemp(dir), nullptr);
  ReplayToolFlags f = Flags({{"ignore-header", "x-trace"}});
  f.ignore_json_paths = {"/meta/at"};
  f.unordered_json_paths = {"/tags"};
  f.no_default_ignore = true;
  absl::StatusOr<ReplayPlan> p = PlanReplay(f);
  ASSERT_TRUE(p.ok()) << p.status();
  EXPECT_TRUE(p->replay.compare);
  EXPECT_FALSE(p->replay.compare_options.default_ignore_headers);
  EXPECT_EQ(p->replay.compare_options.flags.ignore_headers, std::vector<std::string>{"x-trace"});
  EXPECT_EQ(p->replay.compare_options.flags.ignore_json_paths,
            std::vector<std::string>{"/meta/at"});
  EXPECT_EQ(p->replay.compare_options.flags.unordered_json_paths,
            std::vector<std::string>{"/tags"});
  // A rules file that does not exist is refused before anything runs.
  f = Flags({{"rules", std::string(dir) + "/none.yaml"}});
  std::string e = Error(f);
  EXPECT_NE(e.find(std::string(dir) + "/none.yaml"), std::string::npos) << e;
  rmdir(dir);
}

// -w redacts by default (review finding 10): the default policy, keyed with --redact-key-file
// (which then goes with --no-compare too); --no-redact turns it off and needs -w.
TEST(PlanReplay, CaptureIsRedactedUnlessNoRedact) {
  absl::StatusOr<ReplayPlan> p = PlanReplay(Flags({{"no-compare", ""}, {"write", "out.tap"}}));
  ASSERT_TRUE(p.ok()) << p.status();
  ASSERT_TRUE(p->capture_redactor.has_value());
  EXPECT_EQ(p->capture_redactor->policy(), DefaultRedactionPolicy());

  p = PlanReplay(Flags({{"no-compare", ""}, {"write", "out.tap"}, {"no-redact", ""}}));
  ASSERT_TRUE(p.ok()) << p.status();
  EXPECT_FALSE(p->capture_redactor.has_value());
  EXPECT_FALSE(PlanReplay(Flags({{"no-compare", ""}})).value().capture_redactor.has_value());

  EXPECT_EQ(Error(Flags({{"no-redact", ""}})),
            "--no-redact goes with -w (only the -w capture is redacted; the reports show values "
            "as they are)");

  char dir[] = "/tmp/run_test.XXXXXX";
  ASSERT_NE(mkdtemp(dir), nullptr);
  const std::string key = std::string(dir) + "/key";
  { std::ofstream(key) << std::string(32, 'k'); }
  ::chmod(key.c_str(), 0600);
  p = PlanReplay(Flags({{"no-compare", ""}, {"write", "out.tap"}, {"redact-key-file", key}}));
  ASSERT_TRUE(p.ok()) << p.status();
  ASSERT_TRUE(p->capture_redactor.has_value());
  EXPECT_TRUE(p->capture_redactor->policy().keyed);
  EXPECT_EQ(p->capture_redactor->key(), std::string(32, 'k'));
  // Without -w (or with --no-redact) the key file keys nothing when nothing is compared.
  EXPECT_EQ(Error(Flags({{"no-compare", ""}, {"redact-key-file", key}})).substr(0, 56),
            "--no-compare and --redact-key-file cannot be used togeth");
  std::remove(key.c_str());
  rmdir(dir);
}

// Exchange ids are unique within one capture only: two inputs would report two exchanges as
// [0:1]. The tool and the engine refuse a second input, naming it and saying how to merge.
TEST(PlanReplay, OneInputOnly) {
  ReplayToolFlags f = Flags();
  f.inputs = {"seg.tap", "gaps.tap"};
  EXPECT_EQ(Error(f),
            "gaps.tap: tapreplay takes one capture (or -); merge several first: tapfilter a.tap "
            "b.tap -w - | tapreplay - ...");
  f.inputs = {"-", "-"};
  EXPECT_EQ(Error(f).rfind("-: tapreplay takes one capture", 0), 0u);

  ReplayOptions o;
  o.inputs = {"seg.tap", "gaps.tap"};
  o.target = "http://127.0.0.1:9";
  absl::StatusOr<ReplaySummary> s = Replay(o, [](const ReplayedExchange&) {});
  ASSERT_FALSE(s.ok());
  EXPECT_EQ(s.status().message(),
            "gaps.tap: tapreplay takes one capture (or -); merge several first: tapfilter a.tap "
            "b.tap -w - | tapreplay - ...");
}

// A full disk under standard output (the kernel's /dev/full: every write fails with ENOSPC) is
// an error with tapcat's words, not a silent success: the report's last lines sit in the stdio
// buffer until the final flush. Nothing is selected, so nothing is sent.
TEST(RunReplayTool, WriteErrorOnStandardOutput) {
  const std::string err = testing::TestDir() + "/full.err";
  for (const char* output : {"json", "text"}) {
    const std::string cmd = absl::StrCat("'", TAPREPLAY_BIN, "' '", TAPKIT_SOURCE_DIR,
                                         "/fixtures/golden/v1.0.tap' --target http://127.0.0.1:9 "
                                         "--method NONE -o ",
                                         output, " > /dev/full 2> '", err, "'");
    const int status = std::system(cmd.c_str());
    EXPECT_EQ(WIFEXITED(status) ? WEXITSTATUS(status) : -1, 2) << output;
    EXPECT_EQ(testing::ReadFileBytes(err),
              "tapreplay: write error on standard output: No space left on device\n")
        << output;
  }
}

// An exchange recorded without a response, sent with --include-incomplete to a real nginx that
// answers 200: answered but not compared. Not "OK", a skipped JUnit case, and the summary adds
// up (1 sent = 0 matched + 0 differ + 0 failed + 1 not compared). nginx's access log shows the
// request arrived.
TEST(RunReplayTool, RecordedWithoutResponseIsNotCompared) {
  if (std::system("command -v nginx >/dev/null 2>&1") != 0) {
    if (testing::InCi()) FAIL() << "nginx missing; CI=true (scripts/deps.sh)";
    GTEST_SKIP() << "nginx not installed (scripts/deps.sh installs it); skipping";
  }
  const std::string dir = testing::TestDir() + "/nginx_not_compared";
  testing::Nginx nginx(
      "127.0.94.1", dir,
      "@NGINX_USER@ worker_processes 1; daemon on; pid @WORK@/nginx.pid; "
      "error_log @WORK@/error.log;\n"
      "events { worker_connections 64; }\n"
      "http { client_body_temp_path @WORK@/body; log_format r '$request $status';\n"
      "  server { listen @ADDRESS@:@PORT@; access_log @WORK@/access.log r; "
      "location / { return 200 \"ok\\n\"; } } }\n");
  ASSERT_TRUE(nginx.Start()) << nginx.StartError();

  Exchange x;
  x.sort_key_ns = 1'000'000'000;
  x.capture_point = 0;
  x.stream_id = 1;
  x.source.ip = IpAddress::V4(10, 1, 0, 1);
  x.source.port = 40000;
  x.destination.ip = IpAddress::V4(10, 1, 0, 2);
  x.destination.port = 80;
  x.completion = Completion::kNoResponse;
  Request& q = x.request.emplace();
  q.version = HttpVersion::kHttp11;
  q.method = "GET";
  q.path = "/hang";
  q.authority = "shop.example";
  q.headers = {{"Host", "shop.example"}};
  const std::string capture = testing::TestDir() + "/no_response.tap";
  std::ofstream(capture, std::ios::binary) << testing::WriteToString({x});

  ReplayToolFlags f = Flags({{"verbose", ""}, {"junit", dir + "/r.xml"}});
  f.inputs = {capture};
  f.target = nginx.url();
  f.include_incomplete = true;
  f.given.insert("include-incomplete");
  std::ostringstream out, err;
  EXPECT_EQ(RunReplayTool(f, out, err), 0) << err.str();
  EXPECT_EQ(out.str(),
            "SENT GET /hang [0:1] status 200 (not compared: recorded without a response)\n"
            "replayed 1: 0 matched, 0 differ, 0 failed, 1 not compared; skipped: 0 incomplete, 0 "
            "sampled out, 0 selected out\n");
  // nginx logs a request after its answer went out: wait for the line.
  EXPECT_EQ(nginx.AccessLog(1), std::vector<std::string>{"GET /hang HTTP/1.1 200"});
  const std::string xml = testing::ReadFileBytes(dir + "/r.xml");
  EXPECT_NE(xml.find("tests=\"1\" failures=\"0\" errors=\"0\" skipped=\"1\""), std::string::npos)
      << xml;

  f = Flags({{"output", "json"}});
  f.inputs = {capture};
  f.target = nginx.url();
  f.include_incomplete = true;
  f.given.insert("include-incomplete");
  std::ostringstream json;
  EXPECT_EQ(RunReplayTool(f, json, err), 0) << err.str();
  EXPECT_NE(json.str().find("\"matched\":0,\"mismatched\":0,\"notCompared\":1,"), std::string::npos)
      << json.str();
  EXPECT_NE(json.str().find("\"sent\":1,"), std::string::npos) << json.str();
}

}  // namespace
}  // namespace tapkit::replay
