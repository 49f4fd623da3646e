// serve_run_test: tapreplay --serve as RunServeTool runs it (replay/serve_run.h): the flags as
// PlanServe checks them, the log lines (serve_log.h), and whole runs on a thread against a
// capture the Writer wrote, with curl as the client (its own report of what it sent and got is
// the independent source), stopped by SIGTERM as the tool is; -w of passed-through exchanges
// against a python3 http.server upstream, read back with the Reader.
#include "replay/serve_run.h"

#include "format/http_text.h"

#include <gtest/gtest.h>
#include <signal.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <cstdlib>
#include <fstream>
#include <map>
#include <mutex>
#include <nlohmann/json.hpp>
#include <regex>
#include <sstream>
#include <streambuf>
#include <string>
#include <thread>
#include <vector>

#include "absl/strings/ascii.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"
#include "format/file.h"
#include "format/program.h"
#include "format/reader.h"
#include "format/redact.h"
#include "format/test_dir.h"
#include "format/testutil.h"
#include "replay/serve_log.h"

namespace tapkit::replay {
namespace {

using ::tapkit::testing::Shell;

ServeToolFlags Flags(std::initializer_list<std::pair<std::string, std::string>> set = {}) {
  ServeToolFlags f;
  f.inputs = {"in.tap"};
  f.serve = "127.0.0.1:0";
  f.given = {"serve"};
  for (const auto& [name, value] : set) {
    f.given.insert(name);
    if (name == "serve") f.serve = value;
    if (name == "match-header") f.match_headers.push_back(value);
    if (name == "ignore-param") f.ignore_params.push_back(value);
    if (name == "session-header") f.session_header = value;
    if (name == "miss-status") f.miss_status = value;
    if (name == "delay") f.delay = value;
    if (name == "threads") f.threads = value;
    if (name == "idle-timeout") f.idle_timeout = value;
    if (name == "set-header") f.set_headers.push_back(value);
    if (name == "upstream") f.upstream = value;
    if (name == "keep-authority") f.keep_authority = true;
    if (name == "timeout") f.timeout = value;
    if (name == "write") f.write = value;
    if (name == "no-redact") f.no_redact = true;
    if (name == "redact-key-file") f.redact_key_file = value;
    if (name == "output") f.output = value;
  }
  return f;
}

std::string Error(const ServeToolFlags& f) {
  absl::StatusOr<ServePlan> p = PlanServe(f);
  EXPECT_FALSE(p.ok());
  return p.ok() ? "" : std::string(p.status().message());
}

TEST(PlanServe, BuildsTheServerOptions) {
  absl::StatusOr<ServePlan> p =
      PlanServe(Flags({{"serve", "[::1]:8080"},
                       {"match-header", "X-Tenant"},
                       {"ignore-param", "ts"},
                       {"session-header", "X-Client"},
                       {"miss-status", "501"},
                       {"delay", "50ms"},
                       {"threads", "4"},
                       {"idle-timeout", "1.5s"},
                       {"set-header", "Set-Cookie: s=1"},
                       {"upstream", "http://127.0.0.1:9/base"},
                       {"timeout", "2s"},
                       {"write", ::tapkit::testing::TestDir() + "/pass.tap"},
                       {"output", "json"}}));
  ASSERT_TRUE(p.ok()) << p.status();
  const ServeOptions& o = p->serve;
  EXPECT_EQ(o.listen, "[::1]:8080");
  EXPECT_EQ(o.match.match_headers, std::vector<std::string>{"X-Tenant"});
  EXPECT_EQ(o.match.ignore_params, std::vector<std::string>{"ts"});
  EXPECT_TRUE(o.match.ignore_host);  // no --match-host
  EXPECT_FALSE(o.match.strict);
  EXPECT_EQ(o.session_header, "X-Client");
  EXPECT_EQ(o.miss_status, 501);
  EXPECT_EQ(o.delay, ServeDelay::kFixed);
  EXPECT_EQ(o.delay_ns, 50'000'000u);
  EXPECT_EQ(o.threads, 4);
  EXPECT_EQ(o.keepalive_timeout_ns, 1'500'000'000u);
  ASSERT_EQ(o.set_headers.size(), 1u);
  EXPECT_EQ(o.set_headers[0], (Header{"Set-Cookie", "s=1"}));
  EXPECT_EQ(o.upstream, "http://127.0.0.1:9/base");
  EXPECT_EQ(o.upstream_timeout_ns, 2'000'000'000u);
  EXPECT_EQ(p->log, ServeLog::kJson);
  EXPECT_TRUE(p->capture_redactor.has_value());  // -w redacts unless --no-redact

  ServeToolFlags f = Flags({{"delay", "recorded"}});
  f.match_host = true;
  f.strict = true;
  f.match_body = true;
  p = PlanServe(f);
  ASSERT_TRUE(p.ok()) << p.status();
  EXPECT_EQ(p->serve.delay, ServeDelay::kRecorded);
  EXPECT_FALSE(p->serve.match.ignore_host);
  EXPECT_TRUE(p->serve.match.strict);
  EXPECT_TRUE(p->serve.match.match_body);
  EXPECT_EQ(p->serve.miss_status, 404);
  // Without --idle-timeout, nginx's keepalive_timeout default (serve.h).
  EXPECT_EQ(p->serve.keepalive_timeout_ns, 75'000'000'000u);
}

TEST(PlanServe, EachErrorNamesItsFlag) {
  EXPECT_EQ(Error(Flags({{"serve", "localhost:8080"}})),
            "--serve localhost:8080: not a literal IP address and port (the mock listens on "
            "exactly the address given; no name is resolved; IPv6 in brackets: [::1]:8080)");
  EXPECT_EQ(Error(Flags({{"serve", "127.0.0.1"}})),
            "--serve 127.0.0.1: give ADDRESS:PORT (127.0.0.1:8080, [::1]:8080)");
  EXPECT_EQ(Error(Flags({{"serve", "127.0.0.1:65536"}})),
            "--serve 127.0.0.1:65536: the port is not a number from 0 to 65535");
  EXPECT_EQ(Error(Flags({{"serve", "::1:80"}})).rfind("--serve ::1:80: not a literal", 0), 0u);
  // One parser with MockServer::Start (serve.h ParseListenAddress): leading zeros are the port.
  EXPECT_TRUE(CheckListenAddress("127.0.113.1:000080").ok());
  EXPECT_EQ(CheckListenAddress("127.0.113.1:+80").message(),
            "--serve 127.0.113.1:+80: the port is not a number from 0 to 65535");
  EXPECT_EQ(Error(Flags({{"match-header", "X Tenant"}})),
            "--match-header X Tenant: not a field name (RFC 9110 section 5.6.2: a token)");
  EXPECT_EQ(Error(Flags({{"session-header", ""}})),
            "--session-header \"\": not a field name (RFC 9110 section 5.6.2: a token)");
  EXPECT_EQ(Error(Flags({{"ignore-param", ""}})),
            "--ignore-param \"\": give a query parameter name");
  // Each refused value gets the reason that fits it.
  EXPECT_EQ(Error(Flags({{"miss-status", "100"}})),
            "--miss-status 100: 1xx is interim (RFC 9110 section 15.2): it cannot end an "
            "exchange; give a final status from 200 to 599");
  EXPECT_EQ(Error(Flags({{"miss-status", "199"}})).rfind("--miss-status 199: 1xx is interim", 0),
            0u);
  for (const char* bad : {"600", "99", "0", "-404", "70000"}) {
    EXPECT_EQ(Error(Flags({{"miss-status", bad}})),
              absl::StrCat("--miss-status ", bad,
                           ": out of range: give a status from 200 to 599 (RFC 9110 section 15)"));
  }
  for (const char* bad : {"abc", "4o4", "2e2"}) {
    EXPECT_EQ(
        Error(Flags({{"miss-status", bad}})),
        absl::StrCat("--miss-status ", bad, ": not a number (give a status from 200 to 599)"));
  }
  EXPECT_EQ(Error(Flags({{"miss-status", ""}})),
            "--miss-status \"\": not a number (give a status from 200 to 599)");
  for (const char* good : {"200", "599", "503"}) {
    ServeToolFlags f = Flags({{"miss-status", good}});
    absl::StatusOr<ServePlan> p = PlanServe(f);
    ASSERT_TRUE(p.ok()) << p.status();
    EXPECT_EQ(p->serve.miss_status, std::stoi(good));
  }
  EXPECT_EQ(Error(Flags({{"delay", "fast"}})),
            "--delay fast: give recorded, or a duration (50ms, 1.5s)");
  // A fixed delay is capped as the server caps a recorded one: 1 h.
  for (const char* bad : {"100000h", "61m", "3600.001s", "3600000001us"}) {
    EXPECT_EQ(
        Error(Flags({{"delay", bad}})),
        absl::StrCat("--delay ", bad, ": above the cap of 1h (give recorded, or 50ms, 1.5s)"));
  }
  for (const char* good : {"1h", "60m", "3600s"}) {
    absl::StatusOr<ServePlan> p = PlanServe(Flags({{"delay", good}}));
    ASSERT_TRUE(p.ok()) << good << ": " << p.status();
    EXPECT_EQ(p->serve.delay, ServeDelay::kFixed);
    EXPECT_EQ(p->serve.delay_ns, uint64_t{3600} * 1'000'000'000) << good;
  }
  EXPECT_EQ(Error(Flags({{"threads", "17"}})), "--threads 17: not a whole number from 1 to 16");
  EXPECT_EQ(Error(Flags({{"threads", "0"}})), "--threads 0: not a whole number from 1 to 16");
  for (const char* bad : {"0", "0s", "-1s", "25h", "soon"}) {
    EXPECT_EQ(Error(Flags({{"idle-timeout", bad}})),
              absl::StrCat("--idle-timeout ", bad,
                           ": give a duration above 0 and at most 24h (75s, 500ms)"));
  }
  EXPECT_EQ(Error(Flags({{"set-header", "X-A"}})), "--set-header X-A: give 'Name: value'");
  // The mock frames each response itself (serve.h): a framing field cannot be set.
  EXPECT_EQ(Error(Flags({{"set-header", "Content-Length: 5"}})),
            "--set-header Content-Length: 5: tapreplay frames each message itself; a framing or "
            "hop-by-hop field cannot be set (RFC 9110 section 7.6.1, RFC 9112 section 6)");
  EXPECT_EQ(Error(Flags({{"upstream", "https://api.example:443"}})),
            "--upstream https://api.example:443: give http://HOST:PORT, optionally with a path "
            "prefix (https is not supported)");
  EXPECT_EQ(Error(Flags({{"output", "wide"}})), "-o wide: not text or json");
  EXPECT_EQ(Error(Flags({{"timeout", "1s"}})),
            "--timeout goes with --upstream in --serve mode (it concerns the requests passed "
            "through to the upstream)");
  EXPECT_EQ(Error(Flags({{"write", "out.tap"}})),
            "-w goes with --upstream in --serve mode (it concerns the requests passed through "
            "to the upstream)");
  EXPECT_EQ(Error(Flags({{"upstream", "http://127.0.0.1:9"}, {"write", "-"}})),
            "-w -: give a file name (standard output carries the log)");
  EXPECT_EQ(Error(Flags({{"upstream", "http://127.0.0.1:9"}, {"write", "in.tap"}})),
            "-w in.tap: is an input; it would be overwritten");
  EXPECT_EQ(Error(Flags({{"upstream", "http://127.0.0.1:9"}, {"timeout", "0"}})),
            "--timeout 0: must be above 0");
  EXPECT_EQ(Error(Flags({{"no-redact", ""}})),
            "--no-redact goes with -w (only the -w capture of passed-through exchanges is "
            "redacted; recorded values are served as stored)");
  EXPECT_EQ(Error(Flags({{"upstream", "http://127.0.0.1:9"},
                         {"write", "o.tap"},
                         {"no-redact", ""},
                         {"redact-key-file", "k"}})),
            "--no-redact and --redact-key-file cannot be used together (the key keys a "
            "redaction --no-redact turns off)");
  ServeToolFlags f = Flags();
  f.inputs.clear();
  EXPECT_EQ(Error(f), "no input file (give IN.tap..., or - for standard input)");
  f = Flags();
  f.selection.status = {"7xx"};
  EXPECT_EQ(Error(f).rfind("--status 7xx: ", 0), 0u);
}

TEST(CheckModeFlags, RefusesTheOtherModesFlagsNamingBoth) {
  EXPECT_TRUE(CheckModeFlags({"serve", "match-body", "write", "output"}).ok());
  EXPECT_TRUE(CheckModeFlags({"target", "speed", "write"}).ok());
  EXPECT_EQ(CheckModeFlags({"serve", "target"}).message(),
            "--target cannot be used with --serve (it belongs to replaying against --target; "
            "--serve stands in for the recorded service)");
  EXPECT_EQ(
      CheckModeFlags({"serve", "verbose"}).message().rfind("-v cannot be used with --serve", 0),
      0u);
  EXPECT_EQ(CheckModeFlags({"serve", "junit"}).message().rfind("--junit cannot be used", 0), 0u);
  EXPECT_EQ(CheckModeFlags({"serve", "rate"}).message().rfind("--rate cannot be used", 0), 0u);
  EXPECT_EQ(CheckModeFlags({"target", "match-body"}).message(),
            "--match-body goes with --serve ADDR:PORT (it is an option of the mock server)");
  EXPECT_EQ(CheckModeFlags({"target", "upstream"}).message().rfind("--upstream goes with", 0), 0u);
  EXPECT_EQ(CheckModeFlags({"target", "idle-timeout"}).message(),
            "--idle-timeout goes with --serve ADDR:PORT (it is an option of the mock server)");
}

// The log lines of hand-made events, checked against lines written out by hand.
TEST(ServeLog, TextLines) {
  ServeEvent e;
  e.kind = ServeEvent::Kind::kHit;
  e.client.ip = IpAddress::V4(127, 0, 0, 1);
  e.client.port = 51234;
  e.method = "GET";
  e.target = "/api/price?id=7";
  e.status = 200;
  e.latency_ns = 412'000;
  e.recorded = {0, 17};
  e.position = 2;
  e.sequence_length = 3;
  EXPECT_EQ(ServeEventText(e, false),
            "HIT  200 GET /api/price?id=7  recorded 0:17 (2 of 3)  127.0.0.1:51234  0.4ms");
  e.session = "a";
  EXPECT_EQ(ServeEventText(e, true),
            "HIT  200 GET /api/price?id=7  recorded 0:17 (2 of 3)  127.0.0.1:51234  session=a  "
            "0.4ms");
  ServeEvent h = e;
  h.method = "HEAD";
  h.head_of_get = true;
  EXPECT_EQ(ServeEventText(h, false),
            "HIT  200 HEAD /api/price?id=7  recorded 0:17 (2 of 3, the GET's head)  "
            "127.0.0.1:51234  0.4ms");
  EXPECT_EQ(ServeEventText(e, false, "b.tap"),
            "HIT  200 GET /api/price?id=7  recorded b.tap#0:17 (2 of 3)  127.0.0.1:51234  0.4ms");
  ServeEvent m = e;
  m.kind = ServeEvent::Kind::kMiss;
  m.status = 404;
  m.target = "/x\x1b[31m";  // a terminal escape from the network is shown, not obeyed
  m.explanation = "no recorded request matches; closest: GET /y (differs on path)";
  EXPECT_EQ(ServeEventText(m, false),
            "MISS 404 GET /x\\x1b[31m  no recorded request matches; closest: GET /y (differs on "
            "path)  127.0.0.1:51234  0.4ms");
  ServeEvent p = e;
  p.kind = ServeEvent::Kind::kPassThrough;
  p.latency_ns = 12'049'999;
  EXPECT_EQ(ServeEventText(p, false),
            "PASS 200 GET /api/price?id=7  upstream  127.0.0.1:51234  12.0ms");
  ServeEvent b;
  b.kind = ServeEvent::Kind::kBadRequest;
  b.status = 400;
  b.client.ip = IpAddress::V4(127, 0, 0, 1);
  b.client.port = 1;
  b.explanation = "bad method";
  EXPECT_EQ(ServeEventText(b, false), "BAD  400 - -  bad method  127.0.0.1:1  0.0ms");
}

TEST(ServeLog, JsonObjects) {
  ServeEvent e;
  e.kind = ServeEvent::Kind::kMiss;
  e.time_ns = 1764460800123456789;
  e.client.ip = IpAddress::V4(127, 0, 0, 1);
  e.client.port = 51234;
  e.method = "GET";
  e.target = "/x";
  e.status = 404;
  e.latency_ns = 1'500'000;
  e.explanation = "nothing was recorded";
  nlohmann::json j = nlohmann::json::parse(ServeEventJson(e, false), nullptr, false);
  ASSERT_FALSE(j.is_discarded());
  EXPECT_EQ(j.dump(),
            R"({"client":{"ip":"127.0.0.1","port":51234},"event":"miss",)"
            R"("explanation":"nothing was recorded","latencyMs":1.5,"method":"GET",)"
            R"("position":0,"recorded":null,"sequenceLength":0,"session":null,"status":404,)"
            R"("target":"/x","time":"2025-11-30T00:00:00.123456789Z"})");
  e.recorded = {1, 9};
  e.target = std::string("/\xff", 2);
  j = nlohmann::json::parse(ServeEventJson(e, true), nullptr, false);
  ASSERT_FALSE(j.is_discarded());
  EXPECT_EQ(j["recorded"], (nlohmann::json{{"capturePoint", 1}, {"stream", 9}}));
  EXPECT_EQ(j["target"], "L/8=");  // base64 of "/\xff"
  EXPECT_EQ(j["targetEncoding"], "base64");
  EXPECT_EQ(j["session"], "");
  EXPECT_FALSE(j.contains("input"));  // one input: no key
  // Several inputs: the file of the recorded exchange, null when none is named.
  j = nlohmann::json::parse(ServeEventJson(e, false, "b.tap", true), nullptr, false);
  EXPECT_EQ(j["input"], "b.tap");
  e.recorded = {};
  j = nlohmann::json::parse(ServeEventJson(e, false, "", true), nullptr, false);
  EXPECT_TRUE(j["input"].is_null());
}

// A streambuf the server's threads write and the test reads, under one mutex.
class LockedBuf : public std::streambuf {
 public:
  std::string str() {
    std::lock_guard<std::mutex> l(mu_);
    return s_;
  }

 protected:
  int_type overflow(int_type c) override {
    if (c == traits_type::eof()) return traits_type::not_eof(c);
    std::lock_guard<std::mutex> l(mu_);
    s_.push_back(static_cast<char>(c));
    return c;
  }
  std::streamsize xsputn(const char* p, std::streamsize n) override {
    std::lock_guard<std::mutex> l(mu_);
    s_.append(p, static_cast<size_t>(n));
    return n;
  }

 private:
  std::mutex mu_;
  std::string s_;
};

// Three recorded answers to GET /api/price?id=7 (bodies "price 1".."price 3"), and one
// POST /api/order answered 201, on capture point 0, streams 1..4.
std::string WriteRecording() {
  std::vector<Exchange> xs;
  for (uint64_t i = 1; i <= 4; ++i) {
    Exchange x = ::tapkit::testing::SmallExchange(i, 1'000'000'000 * i);
    if (i == 4) {
      x.request->method = "POST";
      x.request->path = "/api/order";
      x.response->status = 201;
      x.response->reason = "Created";
      x.response->body.data = "ordered\n";
    } else {
      x.request->path = "/api/price?id=7&cur=eur";
      x.response->body.data = absl::StrCat("price ", i, "\n");
    }
    x.response->body.length = x.response->body.data.size();
    x.response->headers = {{"Content-Type", "text/plain"},
                           {"Content-Length", absl::StrCat(x.response->body.data.size())}};
    xs.push_back(std::move(x));
  }
  return ::tapkit::testing::WriteTestFile("recorded.tap", ::tapkit::testing::WriteToString(xs));
}

// RunServeTool on a thread; the serving line's port; SIGTERM to stop it.
class ToolRun {
 public:
  explicit ToolRun(ServeToolFlags flags)
      : flags_(std::move(flags)), out_(&out_buf_), err_(&err_buf_) {
    thread_ = std::thread([this] {
      code_ = RunServeTool(flags_, out_, err_);
      done_ = true;
    });
  }
  ~ToolRun() {
    if (thread_.joinable()) Stop();
  }
  // The port from "tapreplay: serving ... on http://ADDR:PORT"; 0 when the run ended first.
  int WaitForPort() {
    const std::regex serving(R"(tapreplay: serving .* on http://[0-9.]+:([0-9]+)\n)");
    for (int i = 0; i < 500; ++i) {
      std::smatch m;
      std::string err = err_buf_.str();
      if (std::regex_search(err, m, serving)) return std::stoi(m[1]);
      if (done_) return 0;
      std::this_thread::sleep_for(std::chrono::milliseconds(10));
    }
    return 0;
  }
  int Stop() {
    // Only while the run still has its handlers: afterwards SIGTERM would end the test.
    if (!done_) ::kill(::getpid(), SIGTERM);
    thread_.join();
    return code_;
  }
  std::string out() { return out_buf_.str(); }
  std::string err() { return err_buf_.str(); }
  // Waits until `n` lines were logged (the log line follows the response by a little).
  std::vector<std::string> Lines(size_t n) {
    for (int i = 0; i < 300; ++i) {
      std::vector<std::string> lines = absl::StrSplit(out(), '\n', absl::SkipEmpty());
      if (lines.size() >= n) return lines;
      std::this_thread::sleep_for(std::chrono::milliseconds(10));
    }
    return absl::StrSplit(out(), '\n', absl::SkipEmpty());
  }

 private:
  ServeToolFlags flags_;
  LockedBuf out_buf_, err_buf_;
  std::ostream out_, err_;
  std::atomic<bool> done_{false};
  int code_ = -1;
  std::thread thread_;
};

TEST(RunServeTool, ServesLogsAndStopsOnSigterm) {
  TAPKIT_REQUIRE_TOOL("curl");
  ServeToolFlags f = Flags({{"serve", "127.0.99.1:0"}});
  f.inputs = {WriteRecording()};
  ToolRun run(f);
  const int port = run.WaitForPort();
  ASSERT_NE(port, 0) << run.err();
  EXPECT_EQ(run.err(), absl::StrCat("tapreplay: serving 4 recorded exchanges (0 skipped) on "
                                    "http://127.0.99.1:",
                                    port, "\n"));
  const std::string base = absl::StrCat("http://127.0.99.1:", port);
  // The query in another order: the same key. curl's -w gives the client's own socket.
  std::string got = Shell(absl::StrCat("curl -s -w ' %{http_code} %{local_ip}:%{local_port}' '",
                                       base, "/api/price?cur=eur&id=7'"));
  const std::string client = got.substr(got.rfind(' ') + 1);
  EXPECT_EQ(got.substr(0, got.rfind(' ')), "price 1\n 200");
  got = Shell(absl::StrCat("curl -s -w ' %{http_code}' '", base, "/api/price?id=7&cur=eur'"));
  EXPECT_EQ(got, "price 2\n 200");
  got = Shell(absl::StrCat("curl -s -D - -o /dev/null '", base, "/api/prize?id=7&cur=eur'"));
  EXPECT_EQ(got.rfind("HTTP/1.1 404", 0), 0u) << got;
  std::vector<std::string> lines = run.Lines(3);
  ASSERT_EQ(lines.size(), 3u) << run.out();
  std::smatch m;
  EXPECT_TRUE(std::regex_match(
      lines[0], m,
      std::regex(absl::StrCat(R"(HIT  200 GET /api/price\?cur=eur&id=7  recorded 0:1 \(1 of 3\)  )",
                              client, R"(  [0-9]+\.[0-9]ms)"))))
      << lines[0];
  EXPECT_EQ(lines[1].rfind("HIT  200 GET /api/price?id=7&cur=eur  recorded 0:2 (2 of 3)  ", 0), 0u)
      << lines[1];
  EXPECT_EQ(lines[2].rfind("MISS 404 GET /api/prize?id=7&cur=eur  ", 0), 0u) << lines[2];
  EXPECT_NE(lines[2].find("differs on path"), std::string::npos) << lines[2];

  EXPECT_EQ(run.Stop(), kExitOk);
  EXPECT_NE(run.err().find("\ntapreplay: served 2 hits, 1 miss, 0 passed through\n"),
            std::string::npos)
      << run.err();
}

// A HEAD of a key recorded only as GET gets the GET's head (curl -I shows the recorded
// Content-Length, 8 for "price 1\n"); the log line says it was the GET's head.
TEST(RunServeTool, AHeadServedFromARecordedGetSaysSo) {
  TAPKIT_REQUIRE_TOOL("curl");
  ServeToolFlags f = Flags({{"serve", "127.0.110.2:0"}});
  f.inputs = {WriteRecording()};
  ToolRun run(f);
  const int port = run.WaitForPort();
  ASSERT_NE(port, 0) << run.err();
  std::string head =
      Shell(absl::StrCat("curl -s -I 'http://127.0.110.2:", port, "/api/price?id=7&cur=eur'"));
  EXPECT_EQ(head.rfind("HTTP/1.1 200 ", 0), 0u) << head;
  EXPECT_NE(absl::AsciiStrToLower(head).find("\r\ncontent-length: 8\r\n"), std::string::npos)
      << head;
  std::vector<std::string> lines = run.Lines(1);
  ASSERT_EQ(lines.size(), 1u) << run.out();
  EXPECT_EQ(lines[0].rfind("HIT  200 HEAD /api/price?id=7&cur=eur  recorded 0:1 (1 of 3, the "
                           "GET's head)  ",
                           0),
            0u)
      << lines[0];
  EXPECT_EQ(run.Stop(), kExitOk);
}

// Two inputs with the same ids (a copy of one recording): POST /api/order is recorded once in
// each, as 0:4; the first request is served the first file's, the second the second's, and the
// log names the file of each, in text and in JSON.
TEST(RunServeTool, SeveralInputsNameTheFileOfEachExchange) {
  TAPKIT_REQUIRE_TOOL("curl");
  const std::string a = WriteRecording();
  const std::string b = ::tapkit::testing::TestDir() + "/copy.tap";
  Shell(absl::StrCat("cp ", a, " ", b));
  for (const char* output : {"text", "json"}) {
    ServeToolFlags f = Flags({{"serve", "127.0.110.3:0"}, {"output", output}});
    f.inputs = {a, b};
    ToolRun run(f);
    const int port = run.WaitForPort();
    ASSERT_NE(port, 0) << run.err();
    EXPECT_NE(run.err().find("serving 8 recorded exchanges (0 skipped)"), std::string::npos)
        << run.err();
    const std::string url = absl::StrCat("http://127.0.110.3:", port, "/api/order");
    EXPECT_EQ(Shell("curl -s -X POST -d x=1 " + url), "ordered\n");
    EXPECT_EQ(Shell("curl -s -X POST -d x=1 " + url), "ordered\n");
    Shell(absl::StrCat("curl -s -o /dev/null http://127.0.110.3:", port, "/nope"));
    std::vector<std::string> lines = run.Lines(3);
    ASSERT_EQ(lines.size(), 3u) << run.out();
    if (std::string(output) == "text") {
      EXPECT_EQ(lines[0].rfind(
                    absl::StrCat("HIT  201 POST /api/order  recorded ", a, "#0:4 (1 of 2)  "), 0),
                0u)
          << lines[0];
      EXPECT_EQ(lines[1].rfind(
                    absl::StrCat("HIT  201 POST /api/order  recorded ", b, "#0:4 (2 of 2)  "), 0),
                0u)
          << lines[1];
    } else {
      std::vector<nlohmann::json> js;
      for (const std::string& line : lines) {
        js.push_back(nlohmann::json::parse(line, nullptr, false));
        ASSERT_FALSE(js.back().is_discarded()) << line;
      }
      EXPECT_EQ(js[0]["input"], a);
      EXPECT_EQ(js[0]["recorded"], (nlohmann::json{{"capturePoint", 0}, {"stream", 4}}));
      EXPECT_EQ(js[1]["input"], b);
      EXPECT_EQ(js[1]["recorded"], (nlohmann::json{{"capturePoint", 0}, {"stream", 4}}));
      EXPECT_EQ(js[1]["position"], 2);
      // The miss's closest recorded exchange is named with its file too.
      EXPECT_EQ(js[2]["event"], "miss");
      EXPECT_TRUE(js[2]["input"].is_string()) << lines[2];
    }
    EXPECT_EQ(run.Stop(), kExitOk);
  }
}

TEST(RunServeTool, JsonLogMatchesWhatCurlSent) {
  TAPKIT_REQUIRE_TOOL("curl");
  ServeToolFlags f =
      Flags({{"serve", "127.0.99.1:0"}, {"output", "json"}, {"session-header", "X-Client"}});
  f.inputs = {WriteRecording()};
  ToolRun run(f);
  const int port = run.WaitForPort();
  ASSERT_NE(port, 0) << run.err();
  const std::string url = absl::StrCat("http://127.0.99.1:", port, "/api/order");
  std::string got = Shell(absl::StrCat(
      "curl -s -X POST -d x=1 -H 'X-Client: b' -w ' %{local_ip} %{local_port}' ", url));
  std::vector<std::string> words = absl::StrSplit(got, ' ');
  ASSERT_EQ(words.size(), 3u) << got;
  EXPECT_EQ(words[0], "ordered\n");
  std::vector<std::string> lines = run.Lines(1);
  ASSERT_EQ(lines.size(), 1u);
  nlohmann::json j = nlohmann::json::parse(lines[0], nullptr, false);
  ASSERT_FALSE(j.is_discarded()) << lines[0];
  EXPECT_EQ(j["event"], "hit");
  EXPECT_EQ(j["method"], "POST");
  EXPECT_EQ(j["target"], "/api/order");
  EXPECT_EQ(j["status"], 201);
  EXPECT_EQ(j["client"]["ip"], words[1]);
  EXPECT_EQ(j["client"]["port"], std::stoi(words[2]));
  EXPECT_EQ(j["recorded"], (nlohmann::json{{"capturePoint", 0}, {"stream", 4}}));
  EXPECT_EQ(j["position"], 1);
  EXPECT_EQ(j["sequenceLength"], 1);
  EXPECT_EQ(j["session"], "b");
  EXPECT_EQ(j["explanation"], "matched recorded response 1 of 1");
  EXPECT_TRUE(j["latencyMs"].is_number());
  EXPECT_TRUE(std::regex_match(j["time"].get<std::string>(),
                               std::regex(R"(\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{9}Z)")));
  EXPECT_EQ(run.Stop(), kExitOk);
}

// The notice counts responses, not fields; names lower-cased and sorted, at most 5 then "...";
// a --set-header of the field (any case) takes it out; a value that merely begins with the
// prefix is no marker; request fields are not served and not counted.
TEST(RedactedHeadersNotice, CountsResponsesAndNamesTheFields) {
  const Redactor redactor({}, "fixed key");
  const std::string marker = redactor.Redact("sid=1");
  ASSERT_TRUE(IsRedactionMarker(marker)) << marker;
  std::vector<Exchange> xs;
  for (uint64_t i = 1; i <= 3; ++i) xs.push_back(::tapkit::testing::SmallExchange(i, i));
  EXPECT_EQ(RedactedHeadersNotice(xs, {}), "");
  xs[0].request->headers.push_back({"Authorization", marker});
  xs[1].response->headers.push_back({"X-Note", "tapkit-redacted:not a marker"});
  EXPECT_EQ(RedactedHeadersNotice(xs, {}), "");
  xs[0].response->headers.push_back({"Set-Cookie", marker});
  xs[0].response->headers.push_back({"Set-Cookie", marker});
  xs[2].response->headers.push_back({"X-Api-Key", marker});
  EXPECT_EQ(RedactedHeadersNotice(xs, {}),
            "2 recorded responses carry redacted header values (set-cookie, x-api-key): served "
            "as their markers; --set-header NAME: VALUE replaces them");
  EXPECT_EQ(RedactedHeadersNotice(xs, {{"set-COOKIE", "sid=test"}}),
            "1 recorded response carries redacted header values (x-api-key): served as their "
            "markers; --set-header NAME: VALUE replaces them");
  EXPECT_EQ(RedactedHeadersNotice(xs, {{"Set-Cookie", "a"}, {"X-Api-Key", "b"}}), "");
  for (const char* name : {"F-Six", "e-five", "D-Four", "c-three"}) {
    xs[1].response->headers.push_back({name, marker});
  }
  EXPECT_EQ(RedactedHeadersNotice(xs, {}),
            "3 recorded responses carry redacted header values (c-three, d-four, e-five, f-six, "
            "set-cookie, ...): served as their markers; --set-header NAME: VALUE replaces them");
}

// A capture redacted as taprec redacts by default (the Redactor applied, then written by the
// Writer): curl is served the Set-Cookie marker as stored, and the start says so once, after
// the serving line; with --set-header Set-Cookie the notice is gone and curl gets that value.
TEST(RunServeTool, SaysAtStartThatRedactedValuesAreServedAsMarkers) {
  TAPKIT_REQUIRE_TOOL("curl");
  Exchange x = ::tapkit::testing::SmallExchange(1, 1'000'000'000);
  x.request->path = "/login";
  x.response->headers.push_back({"Set-Cookie", "sid=s3cret; Path=/"});
  const Redactor redactor({}, "");
  ASSERT_EQ(redactor.Apply(&x), 1u);
  const std::string marker = x.response->headers.back().value;
  ASSERT_EQ(marker.rfind("tapkit-redacted:", 0), 0u) << marker;
  const std::string path =
      ::tapkit::testing::WriteTestFile("redacted.tap", ::tapkit::testing::WriteToString({x}));

  ServeToolFlags f = Flags({{"serve", "127.0.115.31:0"}});
  f.inputs = {path};
  {
    ToolRun run(f);
    const int port = run.WaitForPort();
    ASSERT_NE(port, 0) << run.err();
    EXPECT_EQ(run.err(),
              absl::StrCat("tapreplay: serving 1 recorded exchange (0 skipped) on "
                           "http://127.0.115.31:",
                           port,
                           "\ntapreplay: 1 recorded response carries redacted header values "
                           "(set-cookie): served as their markers; --set-header NAME: VALUE "
                           "replaces them\n"));
    const std::string head =
        Shell(absl::StrCat("curl -s -D - -o /dev/null 'http://127.0.115.31:", port, "/login'"));
    EXPECT_NE(head.find(absl::StrCat("\r\nSet-Cookie: ", marker, "\r\n")), std::string::npos)
        << head;
    EXPECT_EQ(run.Stop(), kExitOk);
  }
  f = Flags({{"serve", "127.0.115.32:0"}, {"set-header", "set-cookie: sid=test"}});
  f.inputs = {path};
  ToolRun run(f);
  const int port = run.WaitForPort();
  ASSERT_NE(port, 0) << run.err();
  EXPECT_EQ(run.err().find("redacted"), std::string::npos) << run.err();
  const std::string head =
      Shell(absl::StrCat("curl -s -D - -o /dev/null 'http://127.0.115.32:", port, "/login'"));
  EXPECT_NE(absl::AsciiStrToLower(head).find("\r\nset-cookie: sid=test\r\n"), std::string::npos)
      << head;
  EXPECT_EQ(head.find("tapkit-redacted"), std::string::npos) << head;
  EXPECT_EQ(run.Stop(), kExitOk);
}

TEST(RunServeTool, ABadInputOrAddressIsOneLineAndExit2) {
  ServeToolFlags f = Flags({{"serve", "127.0.99.1:0"}});
  f.inputs = {::tapkit::testing::TestDir() + "/missing.tap"};
  std::ostringstream out, err;
  EXPECT_EQ(RunServeTool(f, out, err), kExitError);
  EXPECT_EQ(err.str().rfind("tapreplay: " + f.inputs[0], 0), 0u) << err.str();
  const std::string e1 = err.str();
  EXPECT_EQ(std::count(e1.begin(), e1.end(), '\n'), 1) << e1;
  EXPECT_EQ(out.str(), "");

  // An address this host does not have cannot be bound.
  f = Flags({{"serve", "192.0.2.1:8080"}});  // TEST-NET-1, RFC 5737
  f.inputs = {WriteRecording()};
  std::ostringstream out2, err2;
  EXPECT_EQ(RunServeTool(f, out2, err2), kExitError);
  const std::string e2 = err2.str();
  EXPECT_EQ(std::count(e2.begin(), e2.end(), '\n'), 1) << e2;
  EXPECT_NE(e2.find("192.0.2.1:8080"), std::string::npos) << e2;
}

// python3's http.server on `address` serving `files` (name, content) from a fresh directory;
// killed when this goes out of scope.
struct Upstream {
  Upstream(std::string address, const std::vector<std::pair<std::string, std::string>>& files)
      : address(std::move(address)) {
    const std::string dir = ::tapkit::testing::TestDir() + "/www";
    pidfile = dir + "/../up.pid";
    if (std::system(("rm -rf " + dir + " && mkdir -p " + dir).c_str()) != 0) return;
    for (const auto& [name, content] : files) {
      std::ofstream(dir + "/" + name, std::ios::binary) << content;
    }
    port = ::tapkit::testing::FreePort(this->address);
    if (port == 0) return;
    Shell(absl::StrCat("cd ", dir, " && (python3 -m http.server ", port, " --bind ", this->address,
                       " >/dev/null 2>&1 & echo $! > ", pidfile, ")"));
    for (int i = 0; i < 300 && !::tapkit::testing::CanConnect(this->address, port); ++i) {
      std::this_thread::sleep_for(std::chrono::milliseconds(20));
    }
  }
  ~Upstream() { Kill(); }
  bool ok() const { return port != 0 && ::tapkit::testing::CanConnect(address, port); }
  void Kill() { Shell("kill $(cat " + pidfile + ") 2>/dev/null"); }
  std::string address;
  std::string pidfile;
  uint16_t port = 0;
};

TEST(RunServeTool, WritesPassedThroughExchangesRedacted) {
  TAPKIT_REQUIRE_TOOL("curl");
  TAPKIT_REQUIRE_TOOL("python3");
  Upstream upstream("127.0.99.2", {{"live.txt", "from upstream\n"}});
  ASSERT_TRUE(upstream.ok()) << "http.server did not start";
  const uint16_t up = upstream.port;

  const std::string pass = ::tapkit::testing::TestDir() + "/pass.tap";
  ServeToolFlags f = Flags({{"serve", "127.0.99.1:0"},
                            {"upstream", absl::StrCat("http://127.0.99.2:", up)},
                            {"write", pass}});
  f.inputs = {WriteRecording()};
  ToolRun run(f);
  const int port = run.WaitForPort();
  ASSERT_NE(port, 0) << run.err();
  std::string got =
      Shell(absl::StrCat("curl -s -H 'Authorization: Bearer s3cret' "
                         "http://127.0.99.1:",
                         port, "/live.txt"));
  EXPECT_EQ(got, "from upstream\n");
  std::vector<std::string> lines = run.Lines(1);
  ASSERT_EQ(lines.size(), 1u);
  EXPECT_EQ(lines[0].rfind("PASS 200 GET /live.txt  upstream  ", 0), 0u) << lines[0];
  EXPECT_EQ(run.Stop(), kExitOk);
  EXPECT_NE(run.err().find("tapreplay: served 0 hits, 0 misses, 1 passed through\n"),
            std::string::npos)
      << run.err();

  ::tapkit::testing::ReadResult r =
      ::tapkit::testing::ReadAll(::tapkit::testing::ReadFileBytes(pass));
  ASSERT_TRUE(r.open.ok()) << r.open;
  ASSERT_TRUE(r.status.ok()) << r.status;
  EXPECT_TRUE(r.report.notices.empty());  // closed whole: a trailer, no torn tail
  // The trailer's counts: every ServeStats counter under its serve_ key.
  auto reader = Reader::Open(NewStringReadableFile(::tapkit::testing::ReadFileBytes(pass)));
  ASSERT_TRUE(reader.ok()) << reader.status();
  ASSERT_TRUE((*reader)->summary().has_value());
  const std::map<std::string, uint64_t>& counters = (*reader)->summary()->counters;
  const std::map<std::string, uint64_t> want = {
      {"serve_hits", 0},          {"serve_misses", 0},          {"serve_passed_through", 1},
      {"serve_upstream_errors", 0}, {"serve_bad_requests", 0},  {"serve_bad_recorded", 0},
      {"serve_accept_errors", 0}, {"serve_internal_errors", 0}};
  for (const auto& [name, value] : want) {
    ASSERT_TRUE(counters.contains(name)) << name;
    EXPECT_EQ(counters.at(name), value) << name;
  }
  ASSERT_EQ(r.exchanges.size(), 1u);
  const Exchange& x = r.exchanges[0];
  ASSERT_TRUE(x.request && x.response);
  EXPECT_EQ(x.request->path, "/live.txt");
  EXPECT_EQ(x.response->status, 200);
  EXPECT_EQ(x.response->body.data, "from upstream\n");
  std::string auth;
  for (const Header& h : x.request->headers) {
    if (EqualsIgnoreCase(h.name, "Authorization")) auth = h.value;
  }
  EXPECT_EQ(auth.rfind(std::string(kRedactedPrefix), 0), 0u) << auth;
  EXPECT_EQ(auth.find("s3cret"), std::string::npos);

  // The upstream gone, a second mock given both captures serves what was passed through.
  upstream.Kill();
  ServeToolFlags second = Flags({{"serve", "127.0.99.1:0"}});
  second.inputs = {f.inputs[0], pass};
  ToolRun again(second);
  const int port2 = again.WaitForPort();
  ASSERT_NE(port2, 0) << again.err();
  EXPECT_NE(again.err().find("serving 5 recorded exchanges (0 skipped)"), std::string::npos)
      << again.err();
  got = Shell(absl::StrCat("curl -s -w ' %{http_code}' http://127.0.99.1:", port2, "/live.txt"));
  EXPECT_EQ(got, "from upstream\n 200");
  lines = again.Lines(1);
  ASSERT_EQ(lines.size(), 1u);
  // recorded.tap has a 0:1 too: with two inputs the line says which file's.
  EXPECT_EQ(
      lines[0].rfind(absl::StrCat("HIT  200 GET /live.txt  recorded ", pass, "#0:1 (1 of 1)  "), 0),
      0u)
      << lines[0];
  EXPECT_EQ(again.Stop(), kExitOk);
}

// -w stores a pass-through's whole body, not taprec's 64 KiB: a second mock serves a 200 KB
// answer byte for byte, without Tapkit-Truncated (curl's copy of what the upstream sent is the
// reference).
TEST(RunServeTool, WritesWholeBodiesPastTaprecsLimit) {
  TAPKIT_REQUIRE_TOOL("curl");
  TAPKIT_REQUIRE_TOOL("python3");
  std::string big;
  for (int i = 0; big.size() < 200'000; ++i) big += absl::StrCat("line ", i, " of a big answer\n");
  Upstream upstream("127.0.105.2", {{"big.txt", big}});
  ASSERT_TRUE(upstream.ok()) << "http.server did not start";
  const std::string dir = ::tapkit::testing::TestDir();
  const std::string pass = dir + "/big-pass.tap";
  ServeToolFlags f = Flags({{"serve", "127.0.105.1:0"},
                            {"upstream", absl::StrCat("http://127.0.105.2:", upstream.port)},
                            {"write", pass}});
  f.inputs = {WriteRecording()};
  ToolRun run(f);
  const int port = run.WaitForPort();
  ASSERT_NE(port, 0) << run.err();
  Shell(absl::StrCat("curl -s -o ", dir, "/big-first http://127.0.105.1:", port, "/big.txt"));
  EXPECT_EQ(::tapkit::testing::ReadFileBytes(dir + "/big-first"), big);
  run.Lines(1);
  EXPECT_EQ(run.Stop(), kExitOk) << run.err();
  upstream.Kill();

  ServeToolFlags second = Flags({{"serve", "127.0.105.1:0"}});
  second.inputs = {pass};
  ToolRun again(second);
  const int port2 = again.WaitForPort();
  ASSERT_NE(port2, 0) << again.err();
  const std::string head = Shell(
      absl::StrCat("curl -s -D - -o ", dir, "/big-second http://127.0.105.1:", port2, "/big.txt"));
  EXPECT_EQ(head.rfind("HTTP/1.1 200", 0), 0u) << head;
  EXPECT_EQ(absl::AsciiStrToLower(head).find("tapkit-truncated"), std::string::npos) << head;
  const std::string served = ::tapkit::testing::ReadFileBytes(dir + "/big-second");
  EXPECT_EQ(served.size(), big.size());
  EXPECT_TRUE(served == big);
  EXPECT_EQ(again.Stop(), kExitOk);
}

}  // namespace
}  // namespace tapkit::replay
