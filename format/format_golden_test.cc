// The golden files fixtures/golden/v1.0.tap and v1.3.tap were written by format versions 1.0 and
// 1.3. Every later version must keep reading them to exactly these values. The values below are
// written out by hand; they are not produced by the code under test.
//
// v1.0.tap is never rewritten: today's writer stamps a later minor version. To regenerate
// v1.3.tap after a deliberate change of its expected values (never of a released file):
//   TAPKIT_WRITE_GOLDEN=v1.3 build/format/format_golden_test
#include <gtest/gtest.h>

#include <cstdlib>
#include <fstream>

#include "format/block.h"
#include "format/testutil.h"

namespace tapkit {
namespace {

const char* kGolden = TAPKIT_SOURCE_DIR "/fixtures/golden/v1.0.tap";
const char* kGolden13 = TAPKIT_SOURCE_DIR "/fixtures/golden/v1.3.tap";

std::vector<Exchange> GoldenExchanges() {
  std::vector<Exchange> xs;
  {  // curl GET to nginx, plain HTTP/1.1, inbound to the tapped pod.
    Exchange x;
    x.sort_key_ns = 1'764'460'800'123'456'789ull;  // 2025-11-30T00:00:00.123456789Z
    x.request_end_ns = 1'000;
    x.response_start_ns = 312'000;
    x.response_end_ns = 350'500;
    x.capture_point = 0;
    x.stream_id = 1;
    x.source = {IpAddress::V4(127, 0, 10, 1), 41234,
                Labels{"demo", "frontend-0", "deployment", "frontend", ""}};
    x.destination = {IpAddress::V4(127, 0, 20, 1), 80,
                     Labels{"demo", "backend-0", "deployment", "backend", "backend"}};
    x.direction = Direction::kInbound;
    x.tls = TlsState::kNo;
    x.request =
        Request{HttpVersion::kHttp11,
                "GET",
                "http",
                "backend.demo",
                "/api/items?id=7",
                {{"Host", "backend.demo"}, {"User-Agent", "curl/7.88.1"}, {"Accept", "*/*"}},
                {},
                {}};
    x.response = Response{HttpVersion::kHttp11,
                          200,
                          "OK",
                          {{"Server", "nginx/1.22.1"},
                           {"Content-Type", "application/json"},
                           {"Content-Length", "27"}},
                          Body{"{\"id\":7,\"name\":\"sprocket\"}\n", 27, false},
                          {}};
    xs.push_back(x);
  }
  {  // POST with Expect: 100-continue, chunked request body with a trailer, 201 response.
    Exchange x;
    x.sort_key_ns = 1'764'460'800'500'000'000ull;
    x.request_end_ns = 2'500'000;
    x.response_start_ns = 4'000'000;
    x.response_end_ns = 4'000'100;
    x.stream_id = 2;
    x.source = {IpAddress::V4(127, 0, 10, 1), 41236, {}};
    x.destination = {IpAddress::V4(127, 0, 20, 2), 8080, {}};
    x.direction = Direction::kOutbound;
    x.tls = TlsState::kNo;
    x.request = Request{HttpVersion::kHttp11,
                        "POST",
                        "http",
                        "backend.demo:8080",
                        "/api/orders",
                        {{"Host", "backend.demo:8080"},
                         {"Transfer-Encoding", "chunked"},
                         {"Expect", "100-continue"},
                         {"Authorization", "tapkit-redacted:9f2c1a"}},
                        Body{"{\"item\":7,\"qty\":2}", 18, false},
                        {{"X-Checksum", "sha256=abc"}}};
    x.interim = {InterimResponse{100, "Continue", {}, 1'200'000}};
    x.response = Response{HttpVersion::kHttp11,
                          201,
                          "Created",
                          {{"Location", "/api/orders/99"}, {"Content-Length", "0"}},
                          {},
                          {}};
    xs.push_back(x);
  }
  {  // A request whose response never came: the connection was reset.
    Exchange x;
    x.sort_key_ns = 1'764'460'801'000'000'000ull;
    x.request_end_ns = 800;
    x.stream_id = 3;
    x.source = {*IpAddress::Parse("fd00::10"), 50000, {}};
    x.destination = {*IpAddress::Parse("fd00::20"), 80, {}};
    x.request = Request{HttpVersion::kHttp10,
                        "DELETE",
                        "http",
                        "",
                        "/api/orders/99",
                        {{"X-Bin", std::string("\x00\x01\xfe\xff", 4)}},
                        {},
                        {}};
    x.completion = Completion::kReset;
    x.reason = "TCP RST from server";
    xs.push_back(x);
  }
  {  // A response whose request was not captured; large body cut by the body limit.
    Exchange x;
    x.sort_key_ns = 1'764'460'802'000'000'000ull;
    x.response_end_ns = 6'000'000'000ull;  // over 4.29 s: stored in long_offsets
    x.stream_id = 4;
    x.source = {IpAddress::V4(127, 0, 10, 1), 41240, {}};
    x.destination = {IpAddress::V4(127, 0, 20, 1), 80, {}};
    x.response = Response{HttpVersion::kHttp11,
                          503,
                          "Service Unavailable",
                          {{"Content-Type", "text/plain"}},
                          Body{std::string(64, 'x'), 1'000'000, true},
                          {}};
    x.completion = Completion::kNoRequest;
    x.reason = "capture began after the request";
    xs.push_back(x);
  }
  {  // gRPC over HTTP/2: stream 5, grpc-status in trailers, reset code.
    Exchange x;
    x.sort_key_ns = 1'764'460'801'500'000'000ull;  // completed later, started earlier
    x.request_end_ns = 100;
    x.response_start_ns = 2'000'000;
    x.response_end_ns = 2'100'000;
    x.capture_point = 1;
    x.stream_id = 5;
    x.h2_stream_id = 5;
    x.source = {IpAddress::V4(127, 0, 10, 1), 41300, {}};
    x.destination = {IpAddress::V4(127, 0, 20, 3), 50051, {}};
    x.request = Request{HttpVersion::kHttp2,
                        "POST",
                        "http",
                        "greeter:50051",
                        "/helloworld.Greeter/SayHello",
                        {{"content-type", "application/grpc"}, {"te", "trailers"}},
                        Body{std::string("\x00\x00\x00\x00\x05\x0a\x03"
                                         "bob",
                                         10),
                             10, false},
                        {}};
    x.response = Response{HttpVersion::kHttp2,
                          200,
                          "",
                          {{"content-type", "application/grpc"}},
                          Body{std::string("\x00\x00\x00\x00\x0b\x0a\x09hello bob", 16), 16, false},
                          {{"grpc-status", "5"}, {"grpc-message", "not found"}}};
    x.grpc_status = 5;
    x.grpc_message = "not found";
    x.h2_reset_code = 8;  // CANCEL
    xs.push_back(x);
  }
  return xs;
}

CaptureMetadata GoldenMetadata() {
  CaptureMetadata m;
  m.start_time_ns = 1'764'460'799'000'000'000ull;
  m.writer_name = "tapkit";
  m.writer_version = "0.1.0";
  m.host = "golden-host";
  m.command_line = {"taprec", "deploy/backend", "-n", "demo", "-w", "v1.0.tap"};
  m.target = "deploy/backend";
  m.ns = "demo";
  m.filters = {{"path", "/api"}};
  m.body_limit = 64;
  m.redaction = RedactionPolicy{true, {"authorization", "cookie", "set-cookie"}, false, {}, {}};
  m.capture_points = {CapturePointInfo{0, "pod", "backend-0", {}, {1}},
                      CapturePointInfo{1, "pod", "backend-1", {}, {276}}};
  return m;
}

TrailerInput GoldenTrailer() {
  TrailerInput t;
  t.drops = {{"kernel", 2}, {"body_limit", 1}};
  t.counters = {{"opaque_connections", 1}};
  return t;
}

std::string WriteGolden(const CaptureMetadata& m, const std::vector<Exchange>& xs,
                        const TrailerInput& t,
                        uint64_t end_time_ns = 1'764'460'900'000'000'000ull) {
  std::string out;
  WriterOptions o;
  o.segment_bytes = 600;  // several segments
  o.flush_interval_ns = 0;
  o.wall_clock = [end_time_ns] { return end_time_ns; };
  auto w = Writer::Open(NewStringWritableFile(&out), m, o);
  if (!w.ok()) return {};
  for (const Exchange& x : xs) {
    if (!(*w)->Append(x).ok()) return {};
  }
  if (!(*w)->Close(t).ok()) return {};
  return out;
}

// Today's writer still writes these values so that they read back exactly (the golden file is a
// version-1.0 file; this checks the values themselves).
TEST(Golden, ValuesRoundTrip) {
  std::string out = WriteGolden(GoldenMetadata(), GoldenExchanges(), GoldenTrailer());
  ASSERT_FALSE(out.empty());
  EXPECT_EQ(testing::ReadAll(out).exchanges, GoldenExchanges());
}

// Later minor versions only appended optional fields, written only when present: today's writer
// given v1.0's values writes v1.0.tap byte for byte, but for the minor version it stamps (bytes
// 10 and 11) and the file header checksum that covers it (bytes 16 to 23).
TEST(Golden, TodaysWriterWritesV1_0BytesForV1_0Values) {
  std::string file = testing::ReadFileBytes(kGolden);
  ASSERT_EQ(file.size(), 2714u) << "fixtures/golden/v1.0.tap must stay byte-identical";
  std::string today = WriteGolden(GoldenMetadata(), GoldenExchanges(), GoldenTrailer());
  ASSERT_EQ(today.size(), file.size());
  EXPECT_EQ(format::Get16(today.data() + 10), format::kMinorVersion);
  EXPECT_EQ(format::Get16(file.data() + 10), 0);
  std::string patched = today;
  patched.replace(10, 2, file, 10, 2);
  patched.replace(16, 8, file, 16, 8);
  EXPECT_TRUE(patched == file) << "the encoding of a 1.0 exchange, metadata or trailer changed";
}

// Version 1.0's golden file reads to exactly the values it was written with.
TEST(Golden, V1_0ReadsExactly) {
  std::string file = testing::ReadFileBytes(kGolden);
  ASSERT_FALSE(file.empty()) << "missing " << kGolden;
  testing::ReadResult r = testing::ReadAll(file);
  ASSERT_TRUE(r.open.ok()) << r.open;
  EXPECT_TRUE(r.status.ok()) << r.status;
  EXPECT_TRUE(r.report.notices.empty());
  EXPECT_EQ(r.exchanges, GoldenExchanges());
  EXPECT_GE(r.stats.blocks, 3u) << "golden file should hold several segments and a trailer";

  auto reader = Reader::Open(NewStringReadableFile(file));
  ASSERT_TRUE(reader.ok());
  EXPECT_EQ((*reader)->major_version(), 1);
  EXPECT_EQ((*reader)->minor_version(), 0);
  EXPECT_EQ((*reader)->metadata(), GoldenMetadata());
  ASSERT_TRUE((*reader)->summary().has_value());
  const FileSummary& s = *(*reader)->summary();
  EXPECT_EQ(s.exchanges, 5u);
  EXPECT_EQ(s.min_sort_key, 1'764'460'800'123'456'789ull);
  EXPECT_EQ(s.max_sort_key, 1'764'460'802'000'000'000ull);
  EXPECT_EQ(s.end_time_ns, 1'764'460'900'000'000'000ull);
  EXPECT_EQ(s.drops, GoldenTrailer().drops);
  EXPECT_EQ(s.counters, GoldenTrailer().counters);
  // Seek through the index: keys >= the gRPC exchange's, in file (completion) order.
  ASSERT_TRUE((*reader)->Seek(1'764'460'801'500'000'000ull).ok());
  std::vector<uint64_t> keys;
  ExchangeView v;
  while ((*reader)->Next(&v)) keys.push_back(v.sort_key_ns());
  EXPECT_EQ(keys,
            (std::vector<uint64_t>{1'764'460'802'000'000'000ull, 1'764'460'801'500'000'000ull}));
}

// --- Version 1.3: Exchange.replay_of and the capture point kind "replay" ---------------------
//
// What `tapreplay v1.0.tap --target http://127.0.0.1:8080 -w v1.3.tap` would write for three of
// v1.0.tap's requests (capture point 0, kind "replay", named after the target), plus one exchange
// of another capture point that is no replay (replay_of absent), as a merge of both would hold.
// T1 = 1764547200000000000 ns (2025-12-01T00:00:00Z).
std::vector<Exchange> GoldenExchanges13() {
  constexpr uint64_t kT1 = 1'764'547'200'000'000'000ull;
  std::vector<Exchange> xs;
  {  // v1.0's exchange 1 (capture point 0, stream 1) replayed: the same answer.
    Exchange x;
    x.sort_key_ns = kT1 + 250'000'000;
    x.request_end_ns = 40'000;
    x.response_start_ns = 910'000;
    x.response_end_ns = 955'000;
    x.capture_point = 0;
    x.stream_id = 1;
    x.source = {IpAddress::V4(127, 0, 0, 1), 45678, {}};
    x.destination = {IpAddress::V4(127, 0, 0, 1), 8080, {}};
    x.tls = TlsState::kNo;
    x.request =
        Request{HttpVersion::kHttp11,
                "GET",
                "http",
                "127.0.0.1:8080",
                "/api/items?id=7",
                {{"Host", "127.0.0.1:8080"}, {"User-Agent", "curl/7.88.1"}, {"Accept", "*/*"}},
                {},
                {}};
    x.response = Response{HttpVersion::kHttp11,
                          200,
                          "OK",
                          {{"Server", "nginx/1.22.1"},
                           {"Content-Type", "application/json"},
                           {"Content-Length", "27"}},
                          Body{"{\"id\":7,\"name\":\"sprocket\"}\n", 27, false},
                          {}};
    x.replay_of = ExchangeId{0, 1};
    xs.push_back(x);
  }
  {  // v1.0's exchange 2 (0, 2) replayed: a different Location in the answer.
    Exchange x;
    x.sort_key_ns = kT1 + 750'000'000;
    x.request_end_ns = 60'000;
    x.response_start_ns = 1'500'000;
    x.response_end_ns = 1'500'200;
    x.capture_point = 0;
    x.stream_id = 2;
    x.source = {IpAddress::V4(127, 0, 0, 1), 45678, {}};
    x.destination = {IpAddress::V4(127, 0, 0, 1), 8080, {}};
    x.tls = TlsState::kNo;
    x.request = Request{HttpVersion::kHttp11,
                        "POST",
                        "http",
                        "127.0.0.1:8080",
                        "/api/orders",
                        {{"Host", "127.0.0.1:8080"}, {"Content-Length", "18"}},
                        Body{"{\"item\":7,\"qty\":2}", 18, false},
                        {}};
    x.response = Response{HttpVersion::kHttp11,
                          201,
                          "Created",
                          {{"Location", "/api/orders/100"}, {"Content-Length", "0"}},
                          {},
                          {}};
    x.replay_of = ExchangeId{0, 2};
    xs.push_back(x);
  }
  {  // A request that got no answer (libcurl's timeout), replaying an id past 2^53.
    Exchange x;
    x.sort_key_ns = kT1 + 1'250'000'000;
    x.request_end_ns = 30'000;
    x.capture_point = 0;
    x.stream_id = 3;
    x.source = {IpAddress::V4(127, 0, 0, 1), 45680, {}};
    x.destination = {IpAddress::V4(127, 0, 0, 1), 8080, {}};
    x.tls = TlsState::kNo;
    x.request =
        Request{HttpVersion::kHttp11,         "DELETE", "http", "127.0.0.1:8080", "/api/orders/99",
                {{"Host", "127.0.0.1:8080"}}, {},       {}};
    x.completion = Completion::kNoResponse;
    x.reason = "Operation timed out after 30000 milliseconds with 0 bytes received";
    x.replay_of = ExchangeId{1, 9'007'199'254'740'993ull};  // 2^53 + 1
    xs.push_back(x);
  }
  {  // Capture point 1, an interface: an ordinary exchange, no replay_of.
    Exchange x;
    x.sort_key_ns = kT1 + 1'500'000'000;
    x.request_end_ns = 500;
    x.response_start_ns = 80'000;
    x.response_end_ns = 80'100;
    x.capture_point = 1;
    x.stream_id = 1;
    x.source = {IpAddress::V4(127, 0, 10, 1), 41300, {}};
    x.destination = {IpAddress::V4(127, 0, 20, 1), 80, {}};
    x.request = Request{HttpVersion::kHttp11,       "GET", "http", "backend.demo", "/healthz",
                        {{"Host", "backend.demo"}}, {},    {}};
    x.response = Response{HttpVersion::kHttp11, 204, "No Content", {}, {}, {}};
    xs.push_back(x);
  }
  return xs;
}

CaptureMetadata GoldenMetadata13() {
  CaptureMetadata m;
  m.start_time_ns = 1'764'547'199'000'000'000ull;
  m.writer_name = "tapreplay";
  m.writer_version = "0.1.0";
  m.host = "golden-host";
  m.command_line = {"tapreplay", "v1.0.tap", "--target", "http://127.0.0.1:8080", "-w", "v1.3.tap"};
  m.target = "http://127.0.0.1:8080";
  m.body_limit = 65536;
  m.capture_points = {CapturePointInfo{0, "replay", "http://127.0.0.1:8080", {}, {}},
                      CapturePointInfo{1, "interface", "lo", {}, {1}}};
  m.extra = {{"tapreplay.source", "v1.0.tap"}};
  return m;
}

TrailerInput GoldenTrailer13() {
  TrailerInput t;
  t.counters = {{"replay_sent", 3}, {"replay_errors", 1}};
  return t;
}

constexpr uint64_t kGolden13End = 1'764'547'260'000'000'000ull;  // T1 + 60 s

// Today's writer writes the 1.3 values so that they read back exactly. With
// TAPKIT_WRITE_GOLDEN=v1.3 it also rewrites fixtures/golden/v1.3.tap.
TEST(Golden, V1_3ValuesRoundTripAndRewriteWhenAsked) {
  ASSERT_EQ(format::kMinorVersion, 3) << "v1.3.tap is rewritten only by a 1.3 writer";
  std::string out =
      WriteGolden(GoldenMetadata13(), GoldenExchanges13(), GoldenTrailer13(), kGolden13End);
  ASSERT_FALSE(out.empty());
  EXPECT_EQ(testing::ReadAll(out).exchanges, GoldenExchanges13());
  const char* which = std::getenv("TAPKIT_WRITE_GOLDEN");
  if (which && std::string(which) == "v1.3") std::ofstream(kGolden13, std::ios::binary) << out;
}

// Version 1.3's golden file reads to exactly the values it was written with, replay_of included,
// whole and headers-only, and through the index.
TEST(Golden, V1_3ReadsExactly) {
  std::string file = testing::ReadFileBytes(kGolden13);
  ASSERT_FALSE(file.empty()) << "missing " << kGolden13;
  EXPECT_EQ(format::Get16(file.data() + 8), 1);
  EXPECT_EQ(format::Get16(file.data() + 10), 3);
  testing::ReadResult r = testing::ReadAll(file);
  ASSERT_TRUE(r.open.ok()) << r.open;
  EXPECT_TRUE(r.status.ok()) << r.status;
  EXPECT_TRUE(r.report.notices.empty());
  EXPECT_TRUE(r.report.corruption.empty());
  EXPECT_EQ(r.exchanges, GoldenExchanges13());
  EXPECT_GE(r.stats.blocks, 3u) << "golden file should hold several segments and a trailer";
  ASSERT_EQ(r.exchanges.size(), 4u);
  // The new field, spelled out once more.
  EXPECT_EQ(r.exchanges[0].replay_of, (ExchangeId{0, 1}));
  EXPECT_EQ(r.exchanges[1].replay_of, (ExchangeId{0, 2}));
  EXPECT_EQ(r.exchanges[2].replay_of, (ExchangeId{1, 9'007'199'254'740'993ull}));
  EXPECT_EQ(r.exchanges[2].completion, Completion::kNoResponse);
  EXPECT_FALSE(r.exchanges[2].response.has_value());
  EXPECT_FALSE(r.exchanges[3].replay_of.has_value());

  testing::ReadResult h = testing::ReadAll(file, /*headers_only=*/true, /*seekable=*/false);
  ASSERT_EQ(h.exchanges.size(), 4u);
  for (size_t i = 0; i < 4; ++i) EXPECT_EQ(h.exchanges[i].replay_of, r.exchanges[i].replay_of);

  auto reader = Reader::Open(NewStringReadableFile(file));
  ASSERT_TRUE(reader.ok());
  EXPECT_EQ((*reader)->major_version(), 1);
  EXPECT_EQ((*reader)->minor_version(), 3);
  EXPECT_EQ((*reader)->metadata(), GoldenMetadata13());
  EXPECT_EQ((*reader)->metadata().capture_points[0].kind, "replay");
  ASSERT_TRUE((*reader)->summary().has_value());
  const FileSummary& s = *(*reader)->summary();
  EXPECT_EQ(s.exchanges, 4u);
  EXPECT_EQ(s.min_sort_key, 1'764'547'200'250'000'000ull);
  EXPECT_EQ(s.max_sort_key, 1'764'547'201'500'000'000ull);
  EXPECT_EQ(s.end_time_ns, 1'764'547'260'000'000'000ull);
  EXPECT_TRUE(s.drops.empty());
  EXPECT_EQ(s.counters, GoldenTrailer13().counters);
  EXPECT_EQ(s.capture_points, GoldenMetadata13().capture_points);
  // Seek through the index to the no-response exchange; views carry the id too.
  ASSERT_TRUE((*reader)->Seek(1'764'547'201'250'000'000ull).ok());
  std::vector<std::optional<ExchangeId>> ids;
  ExchangeView v;
  while ((*reader)->Next(&v)) ids.push_back(v.replay_of());
  EXPECT_EQ(ids, (std::vector<std::optional<ExchangeId>>{ExchangeId{1, 9'007'199'254'740'993ull},
                                                         std::nullopt}));
}

}  // namespace
}  // namespace tapkit
