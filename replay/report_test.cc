// report_test: tapreplay's text, JSON lines and JUnit reports (replay/report.h), on comparisons
// made by the Comparer, checked against diff -u and jq (the text report's body diff), jq (the JSON
// lines' member order) and Python's xml.etree (the JUnit file).
#include "replay/report.h"

#include <fcntl.h>
#include <gtest/gtest.h>
#include <malloc.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cerrno>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <fstream>
#include <nlohmann/json.hpp>
#include <sstream>
#include <string>
#include <thread>

#include "absl/strings/escaping.h"
#include "absl/strings/str_split.h"
#include "format/test_dir.h"
#include "format/testutil.h"

namespace tapkit::replay {
namespace {

using tapkit::testing::Shell;
using tapkit::testing::TestDir;
using tapkit::testing::WriteTestFile;

// Owns the recorded exchanges the ReplayedExchanges point into.
struct Scenario {
  std::vector<std::unique_ptr<Exchange>> recorded;
  std::vector<ReplayedExchange> replayed;
  std::shared_ptr<const Comparer> comparer = *Comparer::Create({});

  ReplayedExchange& Add(uint64_t stream, std::string method, std::string path, uint16_t rec_status,
                        std::vector<Header> rec_headers, std::string rec_body) {
    auto x = std::make_unique<Exchange>();
    x->stream_id = stream;
    x->request.emplace();
    x->request->method = std::move(method);
    x->request->path = std::move(path);
    x->response.emplace();
    x->response->status = rec_status;
    x->response->headers = std::move(rec_headers);
    x->response->body.data = std::move(rec_body);
    recorded.push_back(std::move(x));
    ReplayedExchange r;
    r.recorded = recorded.back().get();
    r.live.destination.ip = IpAddress::V4(127, 0, 0, 1);
    r.live.destination.port = 8080;
    r.live.request = recorded.back()->request;
    r.live.response_end_ns = 1'500'000;
    replayed.push_back(std::move(r));
    return replayed.back();
  }
  // The live answer, and the comparison the Comparer makes of it.
  void Answer(ReplayedExchange& r, uint16_t status, std::vector<Header> headers, std::string body) {
    r.live.response.emplace();
    r.live.response->status = status;
    r.live.response->headers = std::move(headers);
    r.live.response->body.data = std::move(body);
    r.comparison = comparer->Compare(*r.recorded, *r.live.response);
  }
};

const std::vector<Header> kJson = {{"Content-Type", "application/json"}};

// Three exchanges: one differs (status, a header, a JSON member), one failed, one matched.
Scenario Mixed() {
  Scenario s;
  s.replayed.reserve(3);
  std::vector<Header> rh = kJson, lh = kJson;
  rh.push_back({"X-V", "1"});
  lh.push_back({"X-V", "2"});
  ReplayedExchange& a = s.Add(17, "GET", "/api/items?id=7", 200, rh, R"({"b":[1,2],"a":1})");
  s.Answer(a, 500, lh, R"({"a":2,"b":[1,2]})");
  ReplayedExchange& b = s.Add(18, "POST", "/x", 201, {}, "");
  b.error = "Connection refused";
  ReplayedExchange& c = s.Add(19, "GET", "/ok", 200, {}, "fine");
  s.Answer(c, 200, {}, "fine");
  return s;
}

ReplaySummary Summary() {
  ReplaySummary s;
  s.read = 9;
  s.selected_out = 4;
  s.skipped_incomplete = 2;
  s.sent = 3;
  s.matched = 1;
  s.mismatched = 1;
  s.errors = 1;
  s.elapsed_ns = 2'500'000'000;
  return s;
}

TEST(TextReport, MismatchFailureMatchAndSummary) {
  TAPKIT_REQUIRE_TOOL("jq");
  TAPKIT_REQUIRE_TOOL("diff");
  Scenario s = Mixed();
  std::ostringstream out;
  std::unique_ptr<ReplayReport> r = MakeTextReport(out, {.show_matches = true});
  for (const ReplayedExchange& x : s.replayed) r->Add(x);
  ASSERT_TRUE(r->Finish(Summary()).ok());

  // The body diff, made independently: jq -S pretty-prints with sorted members, diff -u.
  std::string rec = WriteTestFile("r.json", R"({"b":[1,2],"a":1})");
  std::string live = WriteTestFile("l.json", R"({"a":2,"b":[1,2]})");
  Shell("jq -S . " + rec + " > " + rec + ".pretty && jq -S . " + live + " > " + live + ".pretty");
  std::string gnu =
      Shell("diff -u --label recorded --label live " + rec + ".pretty " + live + ".pretty");
  ASSERT_NE(gnu, "");
  std::string diff;  // indented under the exchange
  for (absl::string_view line : absl::StrSplit(gnu, '\n', absl::SkipEmpty())) {
    diff += "    " + std::string(line) + "\n";
  }
  EXPECT_EQ(out.str(),
            "DIFF GET /api/items?id=7 [0:17] status 200 -> 500\n"
            "  status: 200 -> 500\n"
            "  header x-v: 1 -> 2\n"
            "  body /a: 1 -> 2\n" +
                diff +
                "FAIL POST /x [0:18]: Connection refused\n"
                "OK GET /ok [0:19] status 200\n"
                "replayed 3: 1 matched, 1 differ, 1 failed; skipped: 2 incomplete, 0 sampled out, "
                "4 selected out\n");
}

TEST(TextReport, MatchesHiddenByDefaultRoundsAndExtras) {
  Scenario s;
  ReplayedExchange& a = s.Add(5, "GET", "/a b", 200, {}, "x\x01");
  s.Answer(a, 200, {}, "y\x01");
  a.round = 1;
  ReplayedExchange& b = s.Add(6, "GET", "/ok", 200, {}, "same");
  s.Answer(b, 200, {}, "same");
  std::ostringstream out;
  std::unique_ptr<ReplayReport> r = MakeTextReport(out, {.diff_context = 0});
  r->Add(s.replayed[0]);
  r->Add(s.replayed[1]);
  ReplaySummary sum;
  sum.sent = 2;
  sum.matched = 1;
  sum.mismatched = 1;
  sum.redacted_headers_dropped = 3;
  sum.stopped = true;
  ASSERT_TRUE(r->Finish(sum).ok());
  EXPECT_EQ(out.str(),
            "DIFF GET /a\\x20b [0:5] round 2 status 200\n"
            "  body: x\\x01 (2 bytes) -> y\\x01 (2 bytes)\n"
            "    --- recorded\n"
            "    +++ live\n"
            "    @@ -1 +1 @@\n"
            "    -x\\x01\n"
            "    \\ No newline at end of file\n"
            "    +y\\x01\n"
            "    \\ No newline at end of file\n"
            "replayed 2: 1 matched, 1 differ, 0 failed; skipped: 0 incomplete, 0 sampled out, 0 "
            "selected out; 3 redacted request fields dropped; stopped\n");
}

// Terminal escapes in a body reach the report as text (ESC, and the C1 CSI as UTF-8), and a
// one-line body that changed in one place shows 512 bytes around the change, not the whole line.
TEST(TextReport, DiffEscapesControlBytesAndCutsLongLines) {
  TAPKIT_REQUIRE_TOOL("diff");
  Scenario s;
  s.replayed.reserve(2);
  const std::vector<Header> text = {{"Content-Type", "text/plain"}};
  // A header field's value too, on its line (a tab there as \x09).
  std::vector<Header> rec_h = text, live_h = text;
  rec_h.push_back({"X-Color",
                   "\xc2\x9b"
                   "31m\tred"});
  live_h.push_back({"X-Color",
                    "\xc2\x9b"
                    "32m\tgreen"});
  ReplayedExchange& a = s.Add(1, "GET", "/color", 200, rec_h,
                              "\x1b[31mred\x1b[0m\n\xc2\x9b"
                              "2J\n");
  s.Answer(a, 200, live_h,
           "\x1b[32mgreen\x1b[0m\n\xc2\x9b"
           "2J\n");
  // 9500 bytes on one line, differing at byte 5000.
  const std::string rec = std::string(5000, 'a') + "X" + std::string(4499, 'a');
  const std::string live = std::string(5000, 'a') + "Y" + std::string(4499, 'a');
  ReplayedExchange& b = s.Add(2, "GET", "/long", 200, text, rec);
  s.Answer(b, 200, text, live);
  std::ostringstream out;
  std::unique_ptr<ReplayReport> r = MakeTextReport(out, {.diff_context = 0});
  r->Add(s.replayed[0]);
  r->Add(s.replayed[1]);
  const std::string report = out.str();
  EXPECT_EQ(report.find('\x1b'), std::string::npos) << report;
  EXPECT_EQ(report.find("\xc2\x9b"), std::string::npos) << report;
  EXPECT_NE(report.find("  header x-color: \\xc2\\x9b31m\\x09red -> \\xc2\\x9b32m\\x09green\n"),
            std::string::npos)
      << report;
  EXPECT_NE(report.find("    -\\x1b[31mred\\x1b[0m\n    +\\x1b[32mgreen\\x1b[0m\n"),
            std::string::npos)
      << report;
  // The long lines: bytes 4744..5255 of each (256 before the change), "..." both sides.
  const std::string cut_rec =
      "    -..." + std::string(256, 'a') + "X" + std::string(255, 'a') + "...\n";
  const std::string cut_live =
      "    +..." + std::string(256, 'a') + "Y" + std::string(255, 'a') + "...\n";
  EXPECT_NE(report.find(cut_rec + "    \\ No newline at end of file\n" + cut_live),
            std::string::npos)
      << report;
  EXPECT_LT(report.size(), size_t{2000});
  // GNU diff -u agrees on the lines before the cut: the kept part is a piece of its line.
  std::string gnu =
      Shell("diff -u " + WriteTestFile("rec.txt", rec) + " " + WriteTestFile("live.txt", live));
  EXPECT_NE(gnu.find("-" + rec.substr(0, 5000) + "X"), std::string::npos);
  EXPECT_NE(gnu.find(rec.substr(4744, 512)), std::string::npos);
}

// An exchange recorded without a response (sent with --include-incomplete) is answered but not
// compared: not "OK", not a passed JUnit case, and counted apart so the summary adds up.
TEST(TextReport, NotComparedIsNotAPass) {
  TAPKIT_REQUIRE_TOOL("python3");
  Scenario s;
  ReplayedExchange& a = s.Add(3, "GET", "/hang", 200, {}, "");
  s.recorded.back()->response.reset();
  s.recorded.back()->completion = Completion::kNoResponse;
  a.live.response.emplace();
  a.live.response->status = 200;
  ReplaySummary sum;
  sum.sent = 1;
  sum.not_compared = 1;
  sum.redacted_values_sent = 2;
  std::ostringstream out;
  std::unique_ptr<ReplayReport> text = MakeTextReport(out, {.show_matches = true});
  text->Add(a);
  ASSERT_TRUE(text->Finish(sum).ok());
  EXPECT_EQ(out.str(),
            "SENT GET /hang [0:3] status 200 (not compared: recorded without a response)\n"
            "replayed 1: 0 matched, 0 differ, 0 failed, 1 not compared; skipped: 0 incomplete, 0 "
            "sampled out, 0 selected out; 2 redaction markers sent as recorded\n");

  std::string path = TestDir() + "/skipped.xml";
  absl::StatusOr<std::unique_ptr<ReplayReport>> junit = MakeJUnitReport(path);
  ASSERT_TRUE(junit.ok()) << junit.status();
  (*junit)->Add(a);
  ASSERT_TRUE((*junit)->Finish(sum).ok());
  std::string script = WriteTestFile("skipped.py", R"(
import sys
import xml.etree.ElementTree as ET
suite = ET.parse(sys.argv[1]).getroot().find('testsuite')
case = suite.find('testcase')
print(suite.get('tests'), suite.get('skipped'), suite.get('failures'), suite.get('errors'),
      case.find('skipped').get('message'))
)");
  EXPECT_EQ(Shell("python3 " + script + " " + path),
            "1 1 0 0 not compared: recorded without a response\n");
}

// A recorded body cut by the connection's end (not the body limit) is named by its cause.
TEST(TextReport, IncompleteRecordedBodyNamesItsCause) {
  Scenario s;
  s.replayed.reserve(2);
  ReplayedExchange& a = s.Add(4, "GET", "/partial", 200, {}, "abc");
  s.recorded.back()->completion = Completion::kGap;
  s.recorded.back()->response->body.truncated = true;
  s.recorded.back()->response->body.length = 10;
  s.Answer(a, 500, {}, "abcdefghij");
  a.live.response->body.length = 10;
  a.comparison = s.comparer->Compare(*a.recorded, *a.live.response);
  ReplayedExchange& b = s.Add(5, "GET", "/limit", 200, {}, "abc");
  s.recorded.back()->response->body.truncated = true;
  s.recorded.back()->response->body.length = 10;
  s.Answer(b, 500, {}, "abcdefghij");
  b.live.response->body.length = 10;
  b.comparison = s.comparer->Compare(*b.recorded, *b.live.response);
  std::ostringstream out;
  std::unique_ptr<ReplayReport> r = MakeTextReport(out);
  r->Add(a);
  r->Add(b);
  const std::string report = out.str();
  const size_t limit = report.find("DIFF GET /limit");
  ASSERT_NE(limit, std::string::npos) << report;
  EXPECT_EQ(report.substr(0, limit),
            "DIFF GET /partial [0:4] status 200 -> 500\n"
            "  status: 200 -> 500\n"
            "  (recorded body incomplete (gap): compared on its stored bytes)\n");
  EXPECT_TRUE(report.ends_with(
      "  (the recorded body was cut at the body limit: compared on its stored prefix)\n"))
      << report;
}

TEST(JsonReport, LinesAndSummary) {
  TAPKIT_REQUIRE_TOOL("jq");
  Scenario s = Mixed();
  // A path that is not UTF-8 goes as base64.
  ReplayedExchange& d = s.Add(20, "GET", "/caf\xe9", 200, {}, "a");
  s.Answer(d, 200, {}, "b");
  std::ostringstream out;
  std::unique_ptr<ReplayReport> r = MakeJsonReport(out);
  for (const ReplayedExchange& x : s.replayed) r->Add(x);
  ReplaySummary sum = Summary();
  sum.sampled_out = 5;
  sum.redacted_headers_dropped = 6;
  sum.body_prefix_compared = 7;
  sum.redacted_values_sent = 8;
  ASSERT_TRUE(r->Finish(sum).ok());
  std::vector<std::string> lines = absl::StrSplit(out.str(), '\n', absl::SkipEmpty());
  ASSERT_EQ(lines.size(), 4u) << out.str();
  // Each line is compact JSON with its members sorted: jq -cS prints it unchanged.
  std::string path = WriteTestFile("report.jsonl", out.str());
  EXPECT_EQ(Shell("jq -cS . " + path), out.str());

  nlohmann::json diff = nlohmann::json::parse(lines[0], nullptr, false);
  EXPECT_EQ(diff, nlohmann::json::parse(R"({"type":"diff","id":{"capturePoint":0,"stream":17},
      "round":0,"method":"GET","path":"/api/items?id=7","recordedStatus":200,"liveStatus":500,
      "bodyPrefixOnly":false,
      "diffs":[{"field":"status","kind":"status","recorded":"200","live":"500"},
               {"field":"header x-v","kind":"header","recorded":"1","live":"2"},
               {"field":"body /a","kind":"json","recorded":"1","live":"2"}]})"));
  nlohmann::json error = nlohmann::json::parse(lines[1], nullptr, false);
  EXPECT_EQ(error, nlohmann::json::parse(R"({"type":"error","id":{"capturePoint":0,"stream":18},
      "round":0,"method":"POST","path":"/x","recordedStatus":201,"liveStatus":null,
      "error":"Connection refused"})"));
  nlohmann::json binary = nlohmann::json::parse(lines[2], nullptr, false);
  ASSERT_TRUE(binary.contains("pathEncoding")) << lines[2];
  EXPECT_EQ(binary["pathEncoding"], "base64");
  std::string decoded;
  ASSERT_TRUE(absl::Base64Unescape(binary["path"].get<std::string>(), &decoded));
  EXPECT_EQ(decoded, "/caf\xe9");
  EXPECT_EQ(binary["diffs"][0]["recorded"], "a (1 bytes)");
  nlohmann::json summary = nlohmann::json::parse(lines[3], nullptr, false);
  EXPECT_EQ(summary, nlohmann::json::parse(R"({"type":"summary","read":9,"selectedOut":4,
      "sampledOut":5,"skippedIncomplete":2,"sent":3,"matched":1,"mismatched":1,"errors":1,
      "redactedHeadersDropped":6,"bodyPrefixCompared":7,"elapsedNs":2500000000,
      "stopped":false,"notCompared":0,"redactedValuesSent":8,"skippedTruncatedBody":0})"));
}

TEST(JUnitReport, ParsedByPythonsXmlReader) {
  TAPKIT_REQUIRE_TOOL("python3");
  Scenario s = Mixed();
  // Bytes XML cannot hold, markup, and a CDATA end in the error and the path.
  s.replayed[1].error = "reset \x01]]>&<\"' \xff caf\xc3\xa9";
  ReplayedExchange& e = s.Add(21, "GET", "/q?a=1&b=<2>", 200, {}, "");
  e.error = "timeout";
  std::string path = TestDir() + "/junit.xml";
  absl::StatusOr<std::unique_ptr<ReplayReport>> r = MakeJUnitReport(path);
  ASSERT_TRUE(r.ok()) << r.status();
  for (const ReplayedExchange& x : s.replayed) (*r)->Add(x);
  ReplaySummary sum = Summary();
  ASSERT_TRUE((*r)->Finish(sum).ok());
  std::string script = WriteTestFile("read.py", R"(
import json, sys
import xml.etree.ElementTree as ET
root = ET.parse(sys.argv[1]).getroot()
suite = root.find('testsuite')
out = {'root': root.tag, 'suite': dict(suite.attrib), 'cases': []}
for c in suite.findall('testcase'):
    case = dict(c.attrib)
    for kind in ('failure', 'error'):
        el = c.find(kind)
        if el is not None:
            case[kind] = {'message': el.get('message'), 'text': el.text}
    out['cases'].append(case)
print(json.dumps(out, sort_keys=True))
)");
  int st = 0;
  std::string parsed = Shell("python3 " + script + " " + path, &st);
  ASSERT_EQ(st, 0) << parsed;
  nlohmann::json j = nlohmann::json::parse(parsed, nullptr, false);
  ASSERT_FALSE(j.is_discarded()) << parsed;
  EXPECT_EQ(j["root"], "testsuites");
  EXPECT_EQ(j["suite"], nlohmann::json::parse(R"({"name":"tapreplay","tests":"4","failures":"1",
      "errors":"2","skipped":"0","time":"2.500000"})"));
  ASSERT_EQ(j["cases"].size(), 4u);
  const nlohmann::json& c0 = j["cases"][0];
  EXPECT_EQ(c0["name"], "GET /api/items?id=7 [0:17]");
  EXPECT_EQ(c0["classname"], "http://127.0.0.1:8080");
  EXPECT_EQ(c0["time"], "0.001500");
  EXPECT_EQ(c0["failure"]["message"], "differs: status, header x-v, body /a");
  std::string text = c0["failure"]["text"];
  EXPECT_TRUE(
      text.starts_with("status 200 -> 500\n  status: 200 -> 500\n  header x-v: 1 -> 2\n"
                       "  body /a: 1 -> 2\n    --- recorded\n    +++ live\n"))
      << text;
  EXPECT_EQ(j["cases"][1]["error"]["message"], "reset \\x01]]>&<\"' \\xff caf\xc3\xa9");
  EXPECT_EQ(j["cases"][1]["error"]["text"], "reset \\x01]]>&<\"' \\xff caf\xc3\xa9");
  EXPECT_FALSE(j["cases"][2].contains("failure"));
  EXPECT_FALSE(j["cases"][2].contains("error"));
  EXPECT_EQ(j["cases"][3]["name"], "GET /q?a=1&b=<2> [0:21]");
  EXPECT_EQ(j["cases"][3]["error"]["message"], "timeout");
}

TEST(JUnitReport, UnwritablePathNamesTheFile) {
  absl::StatusOr<std::unique_ptr<ReplayReport>> r =
      MakeJUnitReport(TestDir() + "/no/such/dir/junit.xml");
  ASSERT_FALSE(r.ok());
  EXPECT_EQ(r.status().message(), "--junit " + TestDir() +
                                      "/no/such/dir/junit.xml: cannot create: No such file or "
                                      "directory");
}

// A path that exists and is not a regular file (a FIFO, a device, /dev/stdout) is written
// into, never replaced: the FIFO stays a FIFO and its reader gets the whole XML.
TEST(JUnitReport, FifoIsWrittenIntoNotReplaced) {
  std::string fifo = TestDir() + "/junit.fifo";
  std::string keep = TestDir() + "/junit.fifo.keep";  // a second name, to free a stuck reader
  ::unlink(fifo.c_str());
  ::unlink(keep.c_str());
  ASSERT_EQ(::mkfifo(fifo.c_str(), 0600), 0) << std::strerror(errno);
  ASSERT_EQ(::link(fifo.c_str(), keep.c_str()), 0) << std::strerror(errno);
  std::string got;
  std::thread reader([&] {
    int fd = ::open(fifo.c_str(), O_RDONLY | O_CLOEXEC);
    if (fd < 0) return;
    char buf[4096];
    ssize_t n;
    while ((n = ::read(fd, buf, sizeof buf)) > 0) got.append(buf, static_cast<size_t>(n));
    ::close(fd);
  });
  Scenario s = Mixed();
  absl::StatusOr<std::unique_ptr<ReplayReport>> r = MakeJUnitReport(fifo);
  absl::Status finished = r.status();
  if (r.ok()) {
    for (const ReplayedExchange& x : s.replayed) (*r)->Add(x);
    finished = (*r)->Finish(Summary());
  }
  struct stat st {};
  EXPECT_EQ(::lstat(fifo.c_str(), &st), 0);
  EXPECT_TRUE(S_ISFIFO(st.st_mode)) << "the FIFO was replaced";
  // Had the FIFO been replaced, the reader still waits in open(): release it.
  int release = ::open(keep.c_str(), O_WRONLY | O_NONBLOCK | O_CLOEXEC);
  if (release >= 0) ::close(release);
  reader.join();
  ASSERT_TRUE(finished.ok()) << finished;
  EXPECT_TRUE(got.starts_with("<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n<testsuites ")) << got;
  EXPECT_NE(got.find("<testcase name=\"GET /api/items?id=7 [0:17]\""), std::string::npos);
  EXPECT_TRUE(got.ends_with("</testsuites>\n")) << got;
}

// /dev/full, reached through a symbolic link in the test's directory (so that even a broken
// writer could only replace the link, never the device): the error names the path given, the
// link stays a link and the device a character device.
TEST(JUnitReport, DeviceBehindALinkGivesAnErrorAndStaysADevice) {
  struct stat dev {};
  if (::stat("/dev/full", &dev) != 0 || !S_ISCHR(dev.st_mode)) {
    GTEST_SKIP() << "no /dev/full character device here";
  }
  std::string link = TestDir() + "/full";
  ::unlink(link.c_str());
  ASSERT_EQ(::symlink("/dev/full", link.c_str()), 0) << std::strerror(errno);
  Scenario s = Mixed();
  absl::StatusOr<std::unique_ptr<ReplayReport>> r = MakeJUnitReport(link);
  ASSERT_TRUE(r.ok()) << r.status();
  for (const ReplayedExchange& x : s.replayed) (*r)->Add(x);
  absl::Status finished = (*r)->Finish(Summary());
  EXPECT_EQ(finished.message(), "--junit " + link + ": write failed: No space left on device");
  struct stat st {};
  ASSERT_EQ(::lstat(link.c_str(), &st), 0);
  EXPECT_TRUE(S_ISLNK(st.st_mode)) << "the link was replaced";
  ASSERT_EQ(::stat("/dev/full", &st), 0);
  EXPECT_TRUE(S_ISCHR(st.st_mode));
  EXPECT_EQ(st.st_rdev, dev.st_rdev);
}

// The test cases go to a spool file as they come: the heap does not grow with the failures'
// diffs (40 of about 800 KB each were held until Finish before).
TEST(JUnitReport, CasesAreNotKeptInMemory) {
  Scenario s;
  constexpr int kCases = 40;
  s.replayed.reserve(kCases);
  const std::vector<Header> text = {{"Content-Type", "text/plain"}};
  for (int i = 0; i < kCases; ++i) {
    // 4000 lines of 100 bytes each side (a diff line is cut at 512 bytes: long lines would not
    // make a big diff).
    auto lines = [](char c) {
      std::string body;
      for (int l = 0; l < 4000; ++l) body += std::string(99, c) + "\n";
      return body;
    };
    ReplayedExchange& x = s.Add(100 + i, "GET", "/big/" + std::to_string(i), 200, text, lines('a'));
    s.Answer(x, 200, text, lines('b'));
    ASSERT_FALSE(x.comparison->matched());
  }
  std::string path = TestDir() + "/big.xml";
  absl::StatusOr<std::unique_ptr<ReplayReport>> r = MakeJUnitReport(path);
  ASSERT_TRUE(r.ok()) << r.status();
  // In use: the arena's chunks and the mmap'd ones (large strings).
  auto heap = [] {
    struct mallinfo2 m = ::mallinfo2();
    return m.uordblks + m.hblkhd;
  };
  const size_t before = heap();
  for (const ReplayedExchange& x : s.replayed) (*r)->Add(x);
  const size_t after = heap();
  EXPECT_LT(after, before + (size_t{4} << 20)) << "heap grew by " << (after - before) << " bytes";
  ASSERT_TRUE((*r)->Finish(Summary()).ok());
  std::ifstream in(path, std::ios::binary);
  std::string xml((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
  EXPECT_GT(xml.size(), size_t{kCases} * 800'000);
  EXPECT_NE(xml.find("tests=\"40\" failures=\"40\""), std::string::npos);
  EXPECT_NE(xml.find("<testcase name=\"GET /big/39 [0:139]\""), std::string::npos);
  EXPECT_TRUE(xml.ends_with("</testsuites>\n"));
}

}  // namespace
}  // namespace tapkit::replay
