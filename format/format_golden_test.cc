// The golden file fixtures/golden/v1.0.tap was written by format version 1.0. Every later version
// must keep reading it to exactly these values. The values below are written out by hand; they are
// not produced by the code under test.
//
// To regenerate after a deliberate change of the expected values (never of a released format):
//   TAPKIT_WRITE_GOLDEN=1 build/format/format_golden_test
#include <gtest/gtest.h>

#include <cstdlib>
#include <fstream>

#include "format/testutil.h"

namespace tapkit {
namespace {

const char* kGolden = TAPKIT_SOURCE_DIR "/fixtures/golden/v1.0.tap";

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
  m.redaction = RedactionPolicy{true, {"authorization", "cookie", "set-cookie"}, false};
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

// Today's writer still writes these values so that they read back exactly (the golden file is a
// version-1.0 file; this checks the values themselves). With TAPKIT_WRITE_GOLDEN=1 it also
// rewrites fixtures/golden/v1.0.tap.
TEST(Golden, ValuesRoundTripAndRewriteWhenAsked) {
  std::string out;
  WriterOptions o;
  o.segment_bytes = 600;  // several segments
  o.flush_interval_ns = 0;
  o.wall_clock = [] { return uint64_t{1'764'460'900'000'000'000ull}; };
  auto w = Writer::Open(NewStringWritableFile(&out), GoldenMetadata(), o);
  ASSERT_TRUE(w.ok());
  for (const Exchange& x : GoldenExchanges()) ASSERT_TRUE((*w)->Append(x).ok());
  ASSERT_TRUE((*w)->Close(GoldenTrailer()).ok());
  EXPECT_EQ(testing::ReadAll(out).exchanges, GoldenExchanges());
  if (std::getenv("TAPKIT_WRITE_GOLDEN")) std::ofstream(kGolden, std::ios::binary) << out;
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

}  // namespace
}  // namespace tapkit
