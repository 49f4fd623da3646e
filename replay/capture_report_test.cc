// MakeCaptureReport (tapreplay -w): replayed exchanges built by hand are written, read back with
// the format's Reader field by field against values written out here, and printed by the tapcat
// binary, whose JSON is parsed with nlohmann::json.
#include "replay/capture_report.h"

#include <fcntl.h>
#include <gtest/gtest.h>
#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <fstream>
#include <nlohmann/json.hpp>
#include <sstream>

#include "absl/strings/str_cat.h"
#include "format/file.h"
#include "format/program.h"
#include "format/reader.h"
#include "format/redact.h"
#include "format/test_dir.h"
#include "format/testutil.h"
#include "replay/report.h"

namespace tapkit::replay {
namespace {

constexpr uint64_t kT = 1'796'000'000'000'000'000ull;  // 2026-11-29T23:33:20Z

uint64_t WallNs() {
  return static_cast<uint64_t>(std::chrono::duration_cast<std::chrono::nanoseconds>(
                                   std::chrono::system_clock::now().time_since_epoch())
                                   .count());
}

// Three recorded exchanges, as Replay would hand them over.
Exchange Recorded(uint32_t capture_point, uint64_t stream_id, std::string path) {
  Exchange x;
  x.sort_key_ns = kT - 86'400'000'000'000ull;
  x.capture_point = capture_point;
  x.stream_id = stream_id;
  x.request = Request{HttpVersion::kHttp11,       "GET", "http", "backend.demo", std::move(path),
                      {{"Host", "backend.demo"}}, {},    {}};
  x.response = Response{HttpVersion::kHttp11, 200, "OK", {}, {}, {}};
  return x;
}

struct Case {
  std::vector<Exchange> recorded;
  std::vector<ReplayedExchange> replayed;
};

Case MakeCase() {
  Case c;
  c.recorded = {Recorded(2, 41, "/api/items?id=7"), Recorded(0, 7, "/big"),
                Recorded(1, 9'007'199'254'740'993ull, "/api/orders/99")};
  c.replayed.resize(3);
  {  // Complete; the engine set replay_of, a stream id and a capture point of its own.
    ReplayedExchange& r = c.replayed[0];
    r.recorded = &c.recorded[0];
    Exchange& x = r.live;
    x.sort_key_ns = kT + 1'000;
    x.request_end_ns = 20'000;
    x.response_start_ns = 350'000;
    x.response_end_ns = 400'000;
    x.capture_point = 5;
    x.stream_id = 99;
    x.source = {IpAddress::V4(127, 0, 0, 1), 45678, {}};
    x.destination = {IpAddress::V4(127, 0, 0, 2), 8080, {}};
    x.tls = TlsState::kNo;
    x.request = Request{HttpVersion::kHttp11,
                        "GET",
                        "http",
                        "127.0.0.2:8080",
                        "/api/items?id=7",
                        {{"Host", "127.0.0.2:8080"}, {"Accept", "*/*"}},
                        {},
                        {}};
    x.response = Response{HttpVersion::kHttp11,
                          200,
                          "OK",
                          {{"Content-Type", "application/json"}, {"Content-Length", "27"}},
                          Body{"{\"id\":7,\"name\":\"sprocket\"}\n", 27, false},
                          {}};
    x.replay_of = ExchangeId{2, 41};
  }
  {  // Complete, a 100,000-byte body; the engine left replay_of unset.
    ReplayedExchange& r = c.replayed[1];
    r.recorded = &c.recorded[1];
    Exchange& x = r.live;
    x.sort_key_ns = kT + 2'000'000;
    x.request_end_ns = 10'000;
    x.response_start_ns = 500'000;
    x.response_end_ns = 9'000'000;
    x.stream_id = 0;
    x.source = {IpAddress::V4(127, 0, 0, 1), 45680, {}};
    x.destination = {IpAddress::V4(127, 0, 0, 2), 8080, {}};
    x.request = Request{HttpVersion::kHttp11,         "GET", "http", "127.0.0.2:8080", "/big",
                        {{"Host", "127.0.0.2:8080"}}, {},    {}};
    x.response = Response{HttpVersion::kHttp11,
                          200,
                          "OK",
                          {{"Content-Length", "100000"}},
                          Body{std::string(100'000, 'b'), 100'000, false},
                          {}};
  }
  {  // A transport error: whatever response the engine had is not written.
    ReplayedExchange& r = c.replayed[2];
    r.recorded = &c.recorded[2];
    r.error = "Operation timed out after 30000 milliseconds with 0 bytes received";
    Exchange& x = r.live;
    x.sort_key_ns = kT + 3'000'000;
    x.request_end_ns = 5'000;
    x.response_start_ns = 7'000;
    x.response_end_ns = 8'000;
    x.stream_id = 1;  // the same as the first one's number in the file
    x.source = {IpAddress::V4(127, 0, 0, 1), 45682, {}};
    x.destination = {IpAddress::V4(127, 0, 0, 2), 8080, {}};
    x.request =
        Request{HttpVersion::kHttp11,         "DELETE", "http", "127.0.0.2:8080", "/api/orders/99",
                {{"Host", "127.0.0.2:8080"}}, {},       {}};
    x.response = Response{HttpVersion::kHttp11, 200, "OK", {}, Body{"partial", 7, true}, {}};
    x.replay_of = ExchangeId{1, 9'007'199'254'740'993ull};
  }
  return c;
}

// What the file must hold for MakeCase(), written out field by field.
std::vector<Exchange> Expected(const Case& c) {
  std::vector<Exchange> want;
  Exchange a = c.replayed[0].live;
  a.capture_point = 0;
  a.stream_id = 1;
  want.push_back(a);

  Exchange b = c.replayed[1].live;
  b.stream_id = 2;
  b.replay_of = ExchangeId{0, 7};
  b.response->body = Body{std::string(65'536, 'b'), 100'000, true};  // cut at the 64 KiB limit
  want.push_back(b);

  Exchange e;
  e.sort_key_ns = kT + 3'000'000;
  e.request_end_ns = 5'000;
  e.stream_id = 3;
  e.source = {IpAddress::V4(127, 0, 0, 1), 45682, {}};
  e.destination = {IpAddress::V4(127, 0, 0, 2), 8080, {}};
  e.request =
      Request{HttpVersion::kHttp11,         "DELETE", "http", "127.0.0.2:8080", "/api/orders/99",
              {{"Host", "127.0.0.2:8080"}}, {},       {}};
  e.completion = Completion::kNoResponse;
  e.reason = "Operation timed out after 30000 milliseconds with 0 bytes received";
  e.replay_of = ExchangeId{1, 9'007'199'254'740'993ull};
  want.push_back(e);
  return want;
}

ReplayOptions Options() {
  ReplayOptions o;
  o.inputs = {"recorded.tap", "-"};
  o.target = "http://127.0.0.2:8080";
  o.command_line = {"tapreplay", "recorded.tap", "--target", "http://127.0.0.2:8080", "-w", "x"};
  SelectionFlags flags;
  flags.method = {"GET"};
  absl::StatusOr<Selection> sel = Selection::Parse(flags);
  EXPECT_TRUE(sel.ok()) << sel.status();
  if (sel.ok()) o.selection = *std::move(sel);
  o.sample_percent = 50;
  return o;
}

ReplaySummary Summary() {
  ReplaySummary s;
  s.read = 5;
  s.selected_out = 1;
  s.sampled_out = 1;
  s.sent = 3;
  s.matched = 1;
  s.mismatched = 1;
  s.errors = 1;
  return s;
}

std::string RunTool(const std::string& cmd) {
  int status = -1;
  std::string out = testing::Shell(cmd, &status);
  EXPECT_EQ(status, 0) << cmd;
  return out;
}

TEST(CaptureReport, WritesLiveExchangesWithReplayOf) {
  Case c = MakeCase();
  std::string path = testing::TestDir() + "/live.tap";
  uint64_t before = WallNs();
  absl::StatusOr<std::unique_ptr<ReplayReport>> report =
      MakeCaptureReport(path, Options(), std::nullopt);
  ASSERT_TRUE(report.ok()) << report.status();
  uint64_t after = WallNs();
  for (const ReplayedExchange& x : c.replayed) (*report)->Add(x);
  ASSERT_TRUE((*report)->Finish(Summary()).ok());

  auto file = OpenReadableFile(path);
  ASSERT_TRUE(file.ok()) << file.status();
  auto reader = Reader::Open(*std::move(file));
  ASSERT_TRUE(reader.ok()) << reader.status();
  Reader& r = **reader;
  EXPECT_EQ(r.minor_version(), 3);

  const CaptureMetadata& m = r.metadata();
  EXPECT_EQ(m.writer_name, "tapreplay");
  EXPECT_EQ(m.writer_version, kVersion);
  char host[256] = {};
  ASSERT_EQ(::gethostname(host, sizeof host - 1), 0);
  EXPECT_EQ(m.host, host);
  EXPECT_GE(m.start_time_ns, before);
  EXPECT_LE(m.start_time_ns, after);
  EXPECT_EQ(m.command_line, (std::vector<std::string>{"tapreplay", "recorded.tap", "--target",
                                                      "http://127.0.0.2:8080", "-w", "x"}));
  EXPECT_EQ(m.target, "http://127.0.0.2:8080");
  EXPECT_EQ(m.ns, "");
  using Pairs = std::vector<std::pair<std::string, std::string>>;
  EXPECT_EQ(m.filters, (Pairs{{"method", "GET"}, {"sample", "50"}}));
  EXPECT_EQ(m.body_limit, 65'536u);
  EXPECT_FALSE(m.redaction.enabled);
  EXPECT_EQ(m.capture_points,
            (std::vector<CapturePointInfo>{{0, "replay", "http://127.0.0.2:8080", {}, {}}}));
  EXPECT_EQ(m.extra,
            (Pairs{{"tapreplay.source", "recorded.tap"}, {"tapreplay.source", "<stdin>"}}));

  std::vector<Exchange> got;
  ExchangeView v;
  while (r.Next(&v)) got.push_back(v.ToExchange());
  EXPECT_TRUE(r.status().ok()) << r.status();
  std::vector<Exchange> want = Expected(c);
  ASSERT_EQ(got.size(), want.size());
  for (size_t i = 0; i < want.size(); ++i) EXPECT_EQ(got[i], want[i]) << "exchange " << i;
  // The ids spelled out once more.
  EXPECT_EQ(got[0].replay_of, (ExchangeId{2, 41}));
  EXPECT_EQ(got[1].replay_of, (ExchangeId{0, 7}));
  EXPECT_EQ(got[2].replay_of, (ExchangeId{1, 9'007'199'254'740'993ull}));
  EXPECT_FALSE(got[2].response.has_value());

  ASSERT_TRUE(r.summary().has_value());
  const FileSummary& s = *r.summary();
  EXPECT_EQ(s.exchanges, 3u);
  EXPECT_TRUE(s.drops.empty());
  EXPECT_EQ(s.counters, (std::map<std::string, uint64_t>{{"replay_body_prefix_compared", 0},
                                                         {"replay_errors", 1},
                                                         {"replay_matched", 1},
                                                         {"replay_mismatched", 1},
                                                         {"replay_not_compared", 0},
                                                         {"replay_read", 5},
                                                         {"replay_redacted_headers_dropped", 0},
                                                         {"replay_redacted_values_sent", 0},
                                                         {"replay_sampled_out", 1},
                                                         {"replay_selected_out", 1},
                                                         {"replay_sent", 3},
                                                         {"replay_skipped_incomplete", 0},
                                                         {"replay_skipped_truncated_body", 0}}));

  // tapcat -o json, as a user runs it.
  std::string json = RunTool(absl::StrCat("'", TAPCAT_BIN, "' -o json '", path, "'"));
  std::vector<nlohmann::json> lines;
  std::istringstream in(json);
  for (std::string line; std::getline(in, line);) {
    lines.push_back(nlohmann::json::parse(line, nullptr, /*allow_exceptions=*/false));
    ASSERT_FALSE(lines.back().is_discarded()) << line;
  }
  ASSERT_EQ(lines.size(), 3u) << json;
  EXPECT_EQ(lines[0]["replayOf"], nlohmann::json::parse(R"({"capturePoint":2,"stream":41})"));
  EXPECT_EQ(lines[0]["id"], nlohmann::json::parse(R"({"capturePoint":0,"stream":1})"));
  EXPECT_EQ(lines[1]["replayOf"], nlohmann::json::parse(R"({"capturePoint":0,"stream":7})"));
  EXPECT_EQ(lines[1]["response"]["body"]["stored"], 65'536);
  EXPECT_EQ(lines[1]["response"]["body"]["length"], 100'000);
  EXPECT_EQ(lines[1]["response"]["body"]["truncated"], true);
  EXPECT_EQ(lines[2]["replayOf"]["stream"].get<uint64_t>(), 9'007'199'254'740'993ull);
  EXPECT_NE(json.find(R"("replayOf":{"capturePoint":1,"stream":9007199254740993})"),
            std::string::npos)
      << "exact, not rounded through a double";
  EXPECT_EQ(lines[2]["end"]["completion"], "no-response");
  EXPECT_EQ(lines[2]["end"]["reason"],
            "Operation timed out after 30000 milliseconds with 0 bytes received");
  EXPECT_EQ(lines[2]["response"], nullptr);

  // tapcat --info -o json names the capture point.
  nlohmann::json info = nlohmann::json::parse(
      RunTool(absl::StrCat("'", TAPCAT_BIN, "' --info -o json '", path, "'")), nullptr, false);
  ASSERT_FALSE(info.is_discarded());
  EXPECT_EQ(info["capturePoints"][0]["kind"], "replay");
  EXPECT_EQ(info["capturePoints"][0]["name"], "http://127.0.0.2:8080");
  EXPECT_EQ(info["format"]["minor"], 3);
}

// "-" is standard output: the file goes there whole, trailer included.
TEST(CaptureReport, DashIsStandardOutput) {
  Case c = MakeCase();
  std::string path = testing::TestDir() + "/stdout.tap";
  int fd = ::open(path.c_str(), O_WRONLY | O_CREAT | O_TRUNC, 0600);
  ASSERT_GE(fd, 0);
  int saved = ::dup(STDOUT_FILENO);
  ASSERT_GE(saved, 0);
  ::fflush(stdout);
  ASSERT_EQ(::dup2(fd, STDOUT_FILENO), STDOUT_FILENO);
  absl::Status finished;
  {
    absl::StatusOr<std::unique_ptr<ReplayReport>> report =
        MakeCaptureReport("-", Options(), std::nullopt);
    if (report.ok()) {
      for (const ReplayedExchange& x : c.replayed) (*report)->Add(x);
      finished = (*report)->Finish(Summary());
    } else {
      finished = report.status();
    }
  }
  ::dup2(saved, STDOUT_FILENO);
  ::close(saved);
  ::close(fd);
  ASSERT_TRUE(finished.ok()) << finished;
  testing::ReadResult r = testing::ReadAll(testing::ReadFileBytes(path));
  ASSERT_TRUE(r.open.ok()) << r.open;
  EXPECT_TRUE(r.status.ok()) << r.status;
  EXPECT_TRUE(r.stats.trailer_read);
  EXPECT_EQ(r.exchanges, Expected(c));
}

// Errors name the file; a report finishes once.
TEST(CaptureReport, ErrorsNameTheFile) {
  std::string missing = testing::TestDir() + "/no/such/dir/out.tap";
  absl::StatusOr<std::unique_ptr<ReplayReport>> bad =
      MakeCaptureReport(missing, Options(), std::nullopt);
  ASSERT_FALSE(bad.ok());
  EXPECT_NE(bad.status().message().find(missing), std::string::npos) << bad.status();
  EXPECT_FALSE(MakeCaptureReport("", Options(), std::nullopt).ok());

  // /dev/full takes the header into its buffer and fails the first write that reaches it.
  absl::StatusOr<std::unique_ptr<ReplayReport>> full =
      MakeCaptureReport("/dev/full", Options(), std::nullopt);
  if (full.ok()) {
    Case c = MakeCase();
    for (const ReplayedExchange& x : c.replayed) (*full)->Add(x);
    absl::Status s = (*full)->Finish(Summary());
    EXPECT_FALSE(s.ok());
    EXPECT_NE(s.message().find("/dev/full"), std::string::npos) << s;
  } else {
    EXPECT_NE(full.status().message().find("/dev/full"), std::string::npos) << full.status();
  }

  std::string path = testing::TestDir() + "/twice.tap";
  absl::StatusOr<std::unique_ptr<ReplayReport>> report =
      MakeCaptureReport(path, Options(), std::nullopt);
  ASSERT_TRUE(report.ok());
  EXPECT_TRUE((*report)->Finish(Summary()).ok());
  absl::Status again = (*report)->Finish(Summary());
  EXPECT_TRUE(absl::IsFailedPrecondition(again)) << again;
  testing::ReadResult r = testing::ReadAll(testing::ReadFileBytes(path));
  EXPECT_TRUE(r.open.ok()) << r.open;
  EXPECT_TRUE(r.exchanges.empty());
  EXPECT_TRUE(r.stats.trailer_read);
}

// HMAC-SHA256(key, value) by openssl, an implementation apart from format/redact.cc: the
// marker a redacted value must read.
std::string OpensslMarker(const std::string& key_hex, const std::string& value) {
  std::string v = testing::TestDir() + "/value";
  std::ofstream(v, std::ios::binary) << value;
  std::string cmd =
      "openssl dgst -sha256 -mac HMAC -macopt hexkey:" + key_hex + " -r " + v + " 2>/dev/null";
  std::string out;
  FILE* p = ::popen(cmd.c_str(), "r");
  if (p == nullptr) return "";
  char buf[256];
  size_t n;
  while ((n = std::fread(buf, 1, sizeof buf, p)) > 0) out.append(buf, n);
  if (::pclose(p) != 0 || out.size() < 12) return "";
  return "tapkit-redacted:" + out.substr(0, 12);
}

// -w redacts as taprec does: a --set-header Authorization token, a fresh Set-Cookie and a
// token query parameter become markers keyed with the key file; the header records the policy.
TEST(CaptureReport, RedactsTheLiveExchanges) {
  TAPKIT_REQUIRE_TOOL("openssl");
  const std::string key(32, 'k');  // 0x6b each
  std::string key_hex;
  for (size_t i = 0; i < key.size(); ++i) key_hex += "6b";
  std::string key_file = testing::TestDir() + "/redact.key";
  ::unlink(key_file.c_str());
  {
    int fd = ::open(key_file.c_str(), O_WRONLY | O_CREAT | O_TRUNC, 0600);
    ASSERT_GE(fd, 0);
    ASSERT_EQ(::write(fd, key.data(), key.size()), static_cast<ssize_t>(key.size()));
    ::close(fd);
  }
  // tapreplay's -w redactor, in both modes (the markers checked against openssl below).
  absl::StatusOr<std::optional<Redactor>> redactor = CaptureRedactor(false, key_file);
  ASSERT_TRUE(redactor.ok()) << redactor.status();
  ASSERT_TRUE(redactor->has_value());

  Case c = MakeCase();
  Exchange& live = c.replayed[0].live;
  live.request->path = "/api/items?id=7&token=t0k";
  live.request->headers.push_back({"Authorization", "Bearer s3cret"});
  live.response->headers.push_back({"Set-Cookie", "sid=fresh123; Path=/"});
  std::string path = testing::TestDir() + "/redacted.tap";
  absl::StatusOr<std::unique_ptr<ReplayReport>> report =
      MakeCaptureReport(path, Options(), *std::move(redactor));
  ASSERT_TRUE(report.ok()) << report.status();
  for (const ReplayedExchange& x : c.replayed) (*report)->Add(x);
  ASSERT_TRUE((*report)->Finish(Summary()).ok());

  auto file = OpenReadableFile(path);
  ASSERT_TRUE(file.ok()) << file.status();
  auto reader = Reader::Open(*std::move(file));
  ASSERT_TRUE(reader.ok()) << reader.status();
  const RedactionPolicy& policy = (*reader)->metadata().redaction;
  EXPECT_TRUE(policy.enabled);
  EXPECT_TRUE(policy.keyed);
  EXPECT_NE(std::find(policy.headers.begin(), policy.headers.end(), "authorization"),
            policy.headers.end());
  testing::ReadResult r = testing::ReadAll(testing::ReadFileBytes(path));
  ASSERT_TRUE(r.status.ok()) << r.status;
  ASSERT_EQ(r.exchanges.size(), 3u);
  const Exchange& got = r.exchanges[0];
  std::string auth, cookie;
  for (const Header& h : got.request->headers) {
    if (h.name == "Authorization") auth = h.value;
  }
  for (const Header& h : got.response->headers) {
    if (h.name == "Set-Cookie") cookie = h.value;
  }
  const std::string bearer = OpensslMarker(key_hex, "Bearer s3cret");
  ASSERT_FALSE(bearer.empty());
  EXPECT_EQ(auth, bearer);
  EXPECT_EQ(cookie, OpensslMarker(key_hex, "sid=fresh123; Path=/"));
  EXPECT_EQ(got.request->path, "/api/items?id=7&token=" + OpensslMarker(key_hex, "t0k"));
  // The rest is as it was.
  EXPECT_EQ(got.response->body.data, "{\"id\":7,\"name\":\"sprocket\"}\n");
  EXPECT_EQ(r.exchanges[1].response->body.length, 100'000u);
}

TEST(CaptureRedactor, NoneWithNoRedactAndTheKeyFileNamedInErrors) {
  absl::StatusOr<std::optional<Redactor>> none = CaptureRedactor(true, "");
  ASSERT_TRUE(none.ok()) << none.status();
  EXPECT_FALSE(none->has_value());
  absl::StatusOr<std::optional<Redactor>> unkeyed = CaptureRedactor(false, "");
  ASSERT_TRUE(unkeyed.ok()) << unkeyed.status();
  ASSERT_TRUE(unkeyed->has_value());
  EXPECT_TRUE((*unkeyed)->policy().enabled);
  EXPECT_FALSE((*unkeyed)->policy().keyed);
  const std::string missing = testing::TestDir() + "/no-such.key";
  absl::StatusOr<std::optional<Redactor>> bad = CaptureRedactor(false, missing);
  ASSERT_FALSE(bad.ok());
  EXPECT_NE(bad.status().message().find(missing), std::string::npos) << bad.status();
}

}  // namespace
}  // namespace tapkit::replay
