// Rendering of the golden file's exchanges: the expected lines and JSON values are written out by
// hand from the values in format/format_golden_test.cc (latency = response first byte - request
// first byte; duration = response last byte - response first byte; whole microseconds).
#include "format/render.h"

#include <gtest/gtest.h>

#include <arpa/inet.h>

#include <nlohmann/json.hpp>

#include "absl/time/time.h"

#include "format/codec.h"
#include "format/testutil.h"

namespace tapkit {
namespace {

std::vector<std::string> Render(bool json, bool wide = false,
                                const char* golden = TAPKIT_SOURCE_DIR
                                "/fixtures/golden/v1.0.tap") {
  auto reader = Reader::Open(*OpenReadableFile(golden));
  EXPECT_TRUE(reader.ok());
  std::vector<std::string> out;
  ExchangeView x;
  while ((*reader)->Next(&x)) {
    std::string s;
    if (json) {
      AppendJson(x, &s);
    } else {
      AppendText(x, wide, &s);
    }
    out.push_back(s);
  }
  return out;
}

TEST(Text, LinkerdStyleLines) {
  std::vector<std::string> got = Render(false);
  ASSERT_EQ(got.size(), 5u);
  EXPECT_EQ(got[0],
            "req id=0:1 proxy=in  src=127.0.10.1:41234 dst=127.0.20.1:80 tls=false :method=GET "
            ":authority=backend.demo :path=/api/items?id=7\n"
            "rsp id=0:1 proxy=in  src=127.0.10.1:41234 dst=127.0.20.1:80 tls=false :status=200 "
            "latency=312µs\n"
            "end id=0:1 proxy=in  src=127.0.10.1:41234 dst=127.0.20.1:80 tls=false duration=38µs "
            "response-length=27B\n");
  EXPECT_EQ(got[1],
            "req id=0:2 proxy=out src=127.0.10.1:41236 dst=127.0.20.2:8080 tls=false :method=POST "
            ":authority=backend.demo:8080 :path=/api/orders\n"
            "rsp id=0:2 proxy=out src=127.0.10.1:41236 dst=127.0.20.2:8080 tls=false :status=100 "
            "interim latency=1200µs\n"
            "rsp id=0:2 proxy=out src=127.0.10.1:41236 dst=127.0.20.2:8080 tls=false :status=201 "
            "latency=4000µs\n"
            "end id=0:2 proxy=out src=127.0.10.1:41236 dst=127.0.20.2:8080 tls=false duration=0µs "
            "response-length=0B\n");
  EXPECT_EQ(got[2],
            "req id=0:3 proxy=-   src=[fd00::10]:50000 dst=[fd00::20]:80 tls=- :method=DELETE "
            ":authority=- :path=/api/orders/99\n"
            "end id=0:3 proxy=-   src=[fd00::10]:50000 dst=[fd00::20]:80 tls=- state=reset "
            "reason=\"TCP RST from server\"\n");
  EXPECT_EQ(got[3],
            "rsp id=0:4 proxy=-   src=127.0.10.1:41240 dst=127.0.20.1:80 tls=- :status=503 "
            "latency=0µs\n"
            "end id=0:4 proxy=-   src=127.0.10.1:41240 dst=127.0.20.1:80 tls=- "
            "duration=6000000µs response-length=1000000B state=no-request "
            "reason=\"capture began after the request\"\n");
  EXPECT_EQ(got[4],
            "req id=1:5 proxy=-   src=127.0.10.1:41300 dst=127.0.20.3:50051 tls=- :method=POST "
            ":authority=greeter:50051 :path=/helloworld.Greeter/SayHello\n"
            "rsp id=1:5 proxy=-   src=127.0.10.1:41300 dst=127.0.20.3:50051 tls=- :status=200 "
            "latency=2000µs\n"
            "end id=1:5 proxy=-   src=127.0.10.1:41300 dst=127.0.20.3:50051 tls=- "
            "grpc-status=NotFound reset-error=CANCEL duration=100µs response-length=16B\n");
}

TEST(Text, WideAddsResources) {
  std::vector<std::string> got = Render(false, true);
  ASSERT_EQ(got.size(), 5u);
  EXPECT_NE(got[0].find(":path=/api/items?id=7 src_res=deployment/frontend src_ns=demo "
                        "dst_res=deployment/backend dst_ns=demo\n"),
            std::string::npos)
      << got[0];
  EXPECT_NE(got[1].find("src_res=- src_ns=- dst_res=- dst_ns=-\n"), std::string::npos);
}

// Format 1.3's replay_of (fixtures/golden/v1.3.tap, values in format_golden_test.cc) is the member
// "replayOf", in the id's shape, between proxyDirection and request in key order; absent when the
// exchange is no replay. The text lines do not show it.
TEST(Json, ReplayOf) {
  const char* golden = TAPKIT_SOURCE_DIR "/fixtures/golden/v1.3.tap";
  std::vector<std::string> got = Render(true, false, golden);
  ASSERT_EQ(got.size(), 4u);
  EXPECT_NE(got[0].find(R"("proxyDirection":"UNKNOWN","replayOf":{"capturePoint":0,"stream":1},)"
                        R"("request":{)"),
            std::string::npos)
      << got[0];
  // 2^53 + 1 printed exactly (a double would print ...992).
  EXPECT_NE(got[2].find(R"("replayOf":{"capturePoint":1,"stream":9007199254740993})"),
            std::string::npos)
      << got[2];
  using nlohmann::json;
  json a = json::parse(got[1]);
  EXPECT_EQ(a["replayOf"], json::parse(R"({"capturePoint":0,"stream":2})"));
  EXPECT_EQ(a["id"], json::parse(R"({"capturePoint":0,"stream":2})"));
  json c = json::parse(got[2]);
  EXPECT_EQ(c["replayOf"]["stream"].get<uint64_t>(), 9'007'199'254'740'993ull);
  EXPECT_EQ(c["end"]["completion"], "no-response");
  EXPECT_EQ(c["response"], nullptr);
  json d = json::parse(got[3]);
  EXPECT_FALSE(d.contains("replayOf"));
  EXPECT_EQ(d["id"], json::parse(R"({"capturePoint":1,"stream":1})"));

  // Text and wide lines are those of the same exchange without the id.
  auto reader = Reader::Open(*OpenReadableFile(golden));
  ASSERT_TRUE(reader.ok());
  ExchangeView v;
  int replayed = 0;
  while ((*reader)->Next(&v)) {
    Exchange x = v.ToExchange();
    if (x.replay_of) ++replayed;
    x.replay_of.reset();
    flatbuffers::FlatBufferBuilder b;
    std::string bodies;
    absl::StatusOr<ExchangeView> plain = ViewOfExchange(x, &b, &bodies);
    ASSERT_TRUE(plain.ok());
    for (bool wide : {false, true}) {
      std::string with, without;
      AppendText(v, wide, &with);
      AppendText(*plain, wide, &without);
      EXPECT_EQ(with, without);
    }
  }
  EXPECT_EQ(replayed, 3);
}

TEST(Json, FieldsAndEncodings) {
  std::vector<std::string> got = Render(true);
  ASSERT_EQ(got.size(), 5u);
  using nlohmann::json;
  json a = json::parse(got[0]);
  EXPECT_EQ(a["id"]["stream"], 1);
  EXPECT_EQ(a["proxyDirection"], "INBOUND");
  EXPECT_EQ(a["tls"], false);
  EXPECT_EQ(a["source"]["ip"], "127.0.10.1");
  EXPECT_EQ(a["source"]["port"], 41234);
  EXPECT_EQ(a["source"]["metadata"]["deployment"], "frontend");
  EXPECT_EQ(a["destination"]["metadata"]["service"], "backend");
  EXPECT_EQ(a["requestTime"], "2025-11-30T00:00:00.123456789Z");
  EXPECT_EQ(a["requestTimeNs"], 1764460800123456789ull);
  EXPECT_EQ(a["latencyNs"], 312000);
  EXPECT_EQ(a["durationNs"], 38500);
  EXPECT_EQ(a["request"]["method"], "GET");
  EXPECT_EQ(a["request"]["httpVersion"], "HTTP/1.1");
  EXPECT_EQ(a["request"]["headers"][1]["name"], "User-Agent");
  EXPECT_EQ(a["request"]["headers"][1]["value"], "curl/7.88.1");
  EXPECT_EQ(a["response"]["httpStatus"], 200);
  EXPECT_EQ(a["response"]["body"]["encoding"], "utf8");
  EXPECT_EQ(a["response"]["body"]["data"], "{\"id\":7,\"name\":\"sprocket\"}\n");
  EXPECT_EQ(a["response"]["body"]["length"], 27);
  EXPECT_EQ(a["end"]["completion"], "complete");
  EXPECT_EQ(a["end"]["responseBytes"], 27);

  json b = json::parse(got[1]);
  ASSERT_EQ(b["interim"].size(), 1u);
  EXPECT_EQ(b["interim"][0]["httpStatus"], 100);
  EXPECT_EQ(b["interim"][0]["sinceRequestInitNs"], 1200000);
  EXPECT_EQ(b["request"]["trailers"][0]["value"], "sha256=abc");

  json c = json::parse(got[2]);
  EXPECT_TRUE(c["response"].is_null());
  EXPECT_EQ(c["source"]["ip"], "fd00::10");
  EXPECT_EQ(c["request"]["headers"][0]["encoding"], "base64");
  EXPECT_EQ(c["request"]["headers"][0]["value"], "AAH+/w==");  // bytes 00 01 fe ff
  EXPECT_EQ(c["end"]["completion"], "reset");

  json d = json::parse(got[3]);
  EXPECT_TRUE(d["request"].is_null());
  EXPECT_EQ(d["response"]["body"]["truncated"], true);
  EXPECT_EQ(d["response"]["body"]["stored"], 64);
  EXPECT_EQ(d["response"]["body"]["length"], 1000000);
  EXPECT_EQ(d["responseEndNs"], 6000000000ull);

  json e = json::parse(got[4]);
  EXPECT_EQ(e["h2StreamId"], 5);
  EXPECT_EQ(e["end"]["grpcStatusCode"], 5);
  EXPECT_EQ(e["end"]["grpcMessage"], "not found");
  EXPECT_EQ(e["end"]["resetErrorCode"], 8);
}

TEST(Utf8, RejectsMalformed) {
  EXPECT_TRUE(IsUtf8("plain ascii"));
  EXPECT_TRUE(IsUtf8("gr\xc3\xbc\xc3\x9f \xe2\x82\xac \xf0\x9f\x98\x80"));
  EXPECT_FALSE(IsUtf8("\xc3"));              // cut short
  EXPECT_FALSE(IsUtf8("\xc0\xaf"));          // overlong '/'
  EXPECT_FALSE(IsUtf8("\xed\xa0\x80"));      // surrogate U+D800
  EXPECT_FALSE(IsUtf8("\xf4\x90\x80\x80"));  // past U+10FFFF
  EXPECT_FALSE(IsUtf8("\xff"));
}

}  // namespace
}  // namespace tapkit

namespace tapkit {
namespace {

// Text that is not UTF-8 goes out as base64 with a sibling "...Encoding" field.
TEST(Json, NonUtf8TextFields) {
  Exchange x = testing::SmallExchange(1, 1);
  x.request->path = "/caf\xe9";  // Latin-1, not UTF-8
  x.response->reason = "\xff";
  std::string file = testing::WriteToString({x});
  auto reader = Reader::Open(NewStringReadableFile(file));
  ASSERT_TRUE(reader.ok());
  ExchangeView v;
  ASSERT_TRUE((*reader)->Next(&v));
  std::string line;
  AppendJson(v, &line);
  nlohmann::json j = nlohmann::json::parse(line);
  EXPECT_EQ(j["request"]["path"], "L2NhZuk=");  // base64 of 2f 63 61 66 e9
  EXPECT_EQ(j["request"]["pathEncoding"], "base64");
  EXPECT_EQ(j["request"]["method"], "GET");
  EXPECT_FALSE(j["request"].contains("methodEncoding"));
  EXPECT_EQ(j["response"]["reason"], "/w==");
  std::string text;
  AppendText(v, false, &text);
  EXPECT_NE(text.find(":path=/caf\\xe9"), std::string::npos) << text;
}

}  // namespace
}  // namespace tapkit

namespace tapkit {
namespace {

// Regression (fresh-user trial): bytes that are not UTF-8 in a reason or in endpoint labels
// crashed the text and JSON output. They are escaped or base64'd now, and nothing throws.
TEST(Render, NonUtf8ReasonAndLabels) {
  Exchange x = testing::SmallExchange(1, 1);
  x.completion = Completion::kMalformed;
  x.reason = "bad \xff byte\n\"quoted\"";
  x.source.labels = Labels{"ns\xfe", "pod\x1b[31m", "deploy\xff", "name\x80", "svc"};
  std::string file = testing::WriteToString({x});
  auto reader = Reader::Open(NewStringReadableFile(file));
  ASSERT_TRUE(reader.ok());
  ExchangeView v;
  ASSERT_TRUE((*reader)->Next(&v));
  std::string text, wide, line;
  AppendText(v, false, &text);
  AppendText(v, true, &wide);
  AppendJson(v, &line);
  EXPECT_NE(text.find("reason=\"bad \\xff byte\\x0a\\x22quoted\\x22\""), std::string::npos) << text;
  EXPECT_EQ(wide.find('\x1b'), std::string::npos) << "no raw escape bytes reach a terminal";
  nlohmann::json j = nlohmann::json::parse(line);
  EXPECT_EQ(j["source"]["metadata"]["namespaceEncoding"], "base64");
  EXPECT_EQ(j["source"]["metadata"]["workloadKindEncoding"], "base64");
  EXPECT_EQ(j["source"]["metadata"]["service"], "svc");
  EXPECT_EQ(j["end"]["reasonEncoding"], "base64");
}

}  // namespace
}  // namespace tapkit

namespace tapkit {
namespace {

// An exchange that is not in a file (taprec's printing) is viewed through its encoding: every
// field comes back, so it prints exactly as the same exchange read from a file.
TEST(Render, ViewOfExchangeCarriesEveryField) {
  flatbuffers::FlatBufferBuilder builder;
  std::string bodies;
  for (uint64_t i = 0; i < 20; ++i) {
    Exchange x = testing::RichExchange(i);
    absl::StatusOr<ExchangeView> v = ViewOfExchange(x, &builder, &bodies);
    ASSERT_TRUE(v.ok());
    EXPECT_EQ(v->ToExchange(), x) << i;
    std::string direct, stored;
    AppendJson(*v, &direct);
    std::string file = testing::WriteToString({x});  // outlives the reader that views it
    auto reader = Reader::Open(NewStringReadableFile(file));
    ExchangeView from_file;
    ASSERT_TRUE((*reader)->Next(&from_file));
    AppendJson(from_file, &stored);
    EXPECT_EQ(direct, stored);
  }
}

// tapcat --info -o json of the golden file: the values its text report shows (tapcat_test's
// Tapcat.Info), as JSON.
TEST(InfoJson, GoldenFile) {
  auto reader = Reader::Open(*OpenReadableFile(TAPKIT_SOURCE_DIR "/fixtures/golden/v1.0.tap"));
  ASSERT_TRUE(reader.ok());
  InfoCounts counts;
  counts.min_key = UINT64_MAX;
  ExchangeView x;
  while ((*reader)->Next(&x)) {
    ++counts.exchanges;
    counts.min_key = std::min(counts.min_key, x.sort_key_ns());
    counts.max_key = std::max(counts.max_key, x.sort_key_ns());
  }
  std::string line = FormatInfoJson(**reader, counts);
  ASSERT_FALSE(line.empty());
  EXPECT_EQ(line.back(), '\n');
  EXPECT_EQ(line.find('\n'), line.size() - 1) << "one line";
  nlohmann::json o = nlohmann::json::parse(line);
  EXPECT_EQ(o["format"], (nlohmann::json{{"major", 1}, {"minor", 0}}));
  EXPECT_EQ(o["exchanges"], 5);
  EXPECT_EQ(o["firstRequest"], "2025-11-30T00:00:00.123456789Z");
  EXPECT_EQ(o["lastRequest"], "2025-11-30T00:00:02.000000000Z");
  EXPECT_EQ(o["lastRequestNs"].get<uint64_t>() - o["firstRequestNs"].get<uint64_t>(),
            o["spanNs"].get<uint64_t>());
  EXPECT_EQ(o["drops"], (nlohmann::json{{"body_limit", 1}, {"kernel", 2}}));
  EXPECT_EQ(o["counters"], (nlohmann::json{{"opaque_connections", 1}}));
  EXPECT_EQ(o["metadata"]["target"], "deploy/backend");
  EXPECT_EQ(o["metadata"]["namespace"], "demo");
  EXPECT_EQ(o["metadata"]["redaction"]["headers"],
            (nlohmann::json{"authorization", "cookie", "set-cookie"}));
  EXPECT_EQ(o["metadata"]["redaction"]["keyed"], false);
  EXPECT_EQ(o["trailer"]["state"], "present");
  EXPECT_EQ(o["damage"]["corruptRanges"], 0);
  EXPECT_EQ(o["damage"]["tornTail"], false);
}

// Drop names come from writers: one that is not UTF-8 is escaped (the output stays valid JSON),
// and a file without a trailer has no drops to show: null, not an empty object.
TEST(InfoJson, NonUtf8DropNameAndNoTrailer) {
  TrailerInput t;
  t.drops["kernel_dropped_packets"] = 7;
  t.drops["bad\xff"] = 1;
  std::string whole = testing::WriteToString({testing::SmallExchange(1, 5)}, 1 << 20, true, t);
  auto reader = Reader::Open(NewStringReadableFile(whole));
  ASSERT_TRUE(reader.ok());
  ExchangeView x;
  InfoCounts counts;
  while ((*reader)->Next(&x)) ++counts.exchanges;
  counts.min_key = counts.max_key = 5;
  nlohmann::json o = nlohmann::json::parse(FormatInfoJson(**reader, counts));
  EXPECT_EQ(o["drops"], (nlohmann::json{{"kernel_dropped_packets", 7}, {"bad\\xff", 1}}));
  EXPECT_EQ(o["exchanges"], 1);

  std::string open = testing::WriteToString({testing::SmallExchange(1, 5)}, 1 << 20, false);
  auto torn = Reader::Open(NewStringReadableFile(open));
  ASSERT_TRUE(torn.ok());
  while ((*torn)->Next(&x)) {
  }
  nlohmann::json n = nlohmann::json::parse(FormatInfoJson(**torn, InfoCounts{}));
  EXPECT_EQ(n["trailer"], (nlohmann::json{{"state", "absent"}}));
  EXPECT_TRUE(n["drops"].is_null());
  EXPECT_TRUE(n["counters"].is_null());
  EXPECT_TRUE(n["firstRequest"].is_null());
}

}  // namespace
}  // namespace tapkit

namespace tapkit {
namespace {

// AppendJson writes its JSON by hand for speed (render.cc, JsonOut); its bytes must be what
// nlohmann-json prints for the same document (members sorted, the same escapes), so parsing a
// line and printing it again gives the line back. Checked on rich exchanges, on bytes that need
// every kind of escape, on text that is not UTF-8, and on long bodies that cross the 16-byte blocks.
TEST(Json, HandWrittenOutputIsNlohmannsCanonicalForm) {
  std::vector<Exchange> xs;
  for (uint64_t i = 0; i < 30; ++i) xs.push_back(testing::RichExchange(i));
  Exchange odd = testing::SmallExchange(100, 1);
  std::string every_byte;
  for (int c = 0; c < 0x80; ++c) every_byte.push_back(static_cast<char>(c));
  odd.request->path = "/q?" + every_byte;
  odd.request->headers.push_back({"x-ctl", std::string("a\x01\x1f\"\\\b\f\n\r\t\x7f z", 14)});
  odd.request->headers.push_back({"x-latin1", "caf\xe9"});
  odd.response->body.data = "{\"k\":\"" + std::string(1000, '"') + every_byte + "\"}\u00e9\u4e16";
  odd.response->body.length = odd.response->body.data.size();
  odd.source.labels = Labels{"shop", "web-1", "deployment", "web", "web"};
  odd.destination.labels = Labels{"shop", "", "weird kind", "x", ""};
  odd.reason = "r\x00s";
  xs.push_back(odd);
  // Strings of every length around the 16-byte blocks, all control bytes (six bytes each as
  // \u00xx: the writer's room grows mid-string), all quotes, and mixes.
  for (size_t len : {1, 15, 16, 17, 31, 32, 33, 100, 5000}) {
    Exchange c = testing::SmallExchange(200 + len, 3);
    c.request->path = "/" + std::string(len, '\x01');
    c.request->headers.push_back({"x-q", std::string(len, '"')});
    std::string mix;
    for (size_t i = 0; i < len; ++i) mix.push_back("a\"\x02\\\n\x1f\xc3\xa9"[i % 8]);
    c.response->body.data = std::string(len, '\x1f') + mix + std::string(len, '\\');
    c.response->body.length = c.response->body.data.size();
    xs.push_back(c);
  }
  Exchange binary = testing::SmallExchange(101, 2);
  binary.response->body.data = std::string("\x1f\x8b\x08\x00\xff\xfe", 6) + every_byte;
  binary.response->body.length = binary.response->body.data.size();
  xs.push_back(binary);
  std::string file = testing::WriteToString(xs);
  auto reader = Reader::Open(NewStringReadableFile(file));
  ASSERT_TRUE(reader.ok());
  ExchangeView v;
  size_t n = 0;
  while ((*reader)->Next(&v)) {
    std::string line;
    AppendJson(v, &line);
    ASSERT_FALSE(line.empty());
    ASSERT_EQ(line.back(), '\n');
    nlohmann::json j = nlohmann::json::parse(line, nullptr, /*allow_exceptions=*/false);
    ASSERT_FALSE(j.is_discarded()) << line;
    EXPECT_EQ(j.dump(-1, ' ', false, nlohmann::json::error_handler_t::strict) + "\n", line);
    ++n;
  }
  EXPECT_EQ(n, xs.size());
}

// Rfc3339 formats by hand; absl::FormatTime is the independent reference.
TEST(Render, Rfc3339MatchesAbslFormatTime) {
  std::vector<uint64_t> times = {0, 1, 999'999'999, 1'000'000'000, 951'782'400'000'000'000,
                                 // 2000-02-29, 2100-03-01, 2400-02-29 (leap-year rules)
                                 951'782'400'123'456'789, 4'107'542'400'000'000'000,
                                 13'574'563'200'000'000'000ull, UINT64_MAX};
  uint64_t x = 88172645463325252ull;
  for (int i = 0; i < 20000; ++i) {  // xorshift: dates all over the range
    x ^= x << 13;
    x ^= x >> 7;
    x ^= x << 17;
    times.push_back(x);
  }
  for (uint64_t t : times) {
    absl::Time at = absl::FromUnixSeconds(static_cast<int64_t>(t / 1'000'000'000)) +
                    absl::Nanoseconds(static_cast<int64_t>(t % 1'000'000'000));
    ASSERT_EQ(Rfc3339(t), absl::FormatTime("%Y-%m-%dT%H:%M:%E9SZ", at, absl::UTCTimeZone())) << t;
  }
}

// IPv4 addresses are formatted by hand; inet_ntop is the reference.
TEST(Render, Ipv4ToStringMatchesInetNtop) {
  for (int a : {0, 1, 9, 10, 99, 100, 127, 199, 200, 255}) {
    for (int b : {0, 8, 10, 250}) {
      IpAddress ip = IpAddress::V4(static_cast<uint8_t>(a), static_cast<uint8_t>(b), 0,
                                   static_cast<uint8_t>(255 - a));
      char buf[INET_ADDRSTRLEN];
      ASSERT_NE(inet_ntop(AF_INET, ip.bytes.data(), buf, sizeof buf), nullptr);
      EXPECT_EQ(ip.ToString(), buf);
    }
  }
}

}  // namespace
}  // namespace tapkit
