// Route collapsing, nearest-rank percentiles, the statistics table on hand-built exchanges, and
// the time column of text lines. Expected values are worked out by hand in the comments; the
// percentile example is the nearest-rank worked example of the Wikipedia article "Percentile"
// (values 15, 20, 35, 40, 50).
#include "format/stats.h"

#include <gtest/gtest.h>

#include <nlohmann/json.hpp>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"
#include "format/line_time.h"
#include "format/reader.h"
#include "format/render.h"
#include "format/testutil.h"

namespace tapkit {
namespace {

TEST(Route, IdSegments) {
  for (const char* id : {"0", "42", "18446744073709551616",           // decimal
                         "123e4567-e89b-12d3-a456-426614174000",      // RFC 9562 UUID
                         "123E4567-E89B-12D3-A456-426614174000",      // upper case
                         "507f1f77bcf86cd799439011",                  // 24 hex: ObjectId
                         "da39a3ee5e6b4b0d3255bfef95601890afd80709",  // SHA-1 of ""
                         "dGhpcyBpcyBhIHRva2VuIDEyMw==",              // base64
                         "eyJhbGciOiJIUzI1NiJ9-x_Y2"}) {              // base64url
    EXPECT_TRUE(IsIdSegment(id)) << id;
  }
  for (const char* name : {"", "users", "v1", "v2beta1", "api", "healthz", "n01",
                           "deadbeefcafebabe",         // 16 hex letters, no digit: a word
                           "0123456789abcde",          // 15 hex: too short
                           "items.json", "12.5",       // a '.' makes a name
                           "caf%C3%A9", "user:42",     // '%', ':'
                           "authentication-services",  // long, but no digit
                           "release-2024",             // 12 < 20
                           "order_2024_summary"}) {    // 18 < 20
    EXPECT_FALSE(IsIdSegment(name)) << name;
  }
}

TEST(Route, Patterns) {
  EXPECT_EQ(RoutePattern("/users/42"), "/users/{id}");
  EXPECT_EQ(RoutePattern("/users/42/orders/7?page=2&x=1"), "/users/{id}/orders/{id}");
  EXPECT_EQ(RoutePattern("/api/v1/products?page=3"), "/api/v1/products");
  EXPECT_EQ(RoutePattern("/files/507f1f77bcf86cd799439011/"), "/files/{id}/");
  EXPECT_EQ(RoutePattern("/u/123e4567-e89b-12d3-a456-426614174000#top"), "/u/{id}");
  EXPECT_EQ(RoutePattern("/"), "/");
  EXPECT_EQ(RoutePattern("/?q=1"), "/");
  EXPECT_EQ(RoutePattern("*"), "*");  // OPTIONS * (RFC 9112 section 3.2.4)
  EXPECT_EQ(RoutePattern(""), "");
  EXPECT_EQ(RoutePattern("//7"), "//{id}");
  EXPECT_EQ(RoutePattern("/caf\xe9/9"), "/caf\xe9/{id}");  // other bytes kept as they are
}

TEST(Percentile, NearestRankWikipediaExample) {
  std::vector<uint64_t> v = {15, 20, 35, 40, 50};
  EXPECT_EQ(NearestRank(v, 5), 15u);
  EXPECT_EQ(NearestRank(v, 30), 20u);
  EXPECT_EQ(NearestRank(v, 40), 20u);
  EXPECT_EQ(NearestRank(v, 50), 35u);
  EXPECT_EQ(NearestRank(v, 100), 50u);
  // ceil(0.95 * 20) = 19, ceil(0.99 * 20) = 20, ceil(0.5 * 20) = 10 on 1..20.
  std::vector<uint64_t> twenty;
  for (uint64_t i = 1; i <= 20; ++i) twenty.push_back(i);
  EXPECT_EQ(NearestRank(twenty, 50), 10u);
  EXPECT_EQ(NearestRank(twenty, 95), 19u);
  EXPECT_EQ(NearestRank(twenty, 99), 20u);
  // 1000 values: p99.9 is the 999th.
  std::vector<uint64_t> thousand;
  for (uint64_t i = 1; i <= 1000; ++i) thousand.push_back(i);
  EXPECT_EQ(NearestRank(thousand, 99.9), 999u);
  EXPECT_EQ(NearestRank({7}, 50), 7u);
}

TEST(StatKeys, Parse) {
  EXPECT_EQ(*ParseStatKey("status"), StatKey::kStatus);
  EXPECT_EQ(*ParseStatKey("direction"), StatKey::kDirection);
  EXPECT_EQ(ParseStatKey("route").status().message(),
            "--by route: unknown key (authority, path, status, direction)");
}

// Six exchanges to one workload over 10 ms:
//   1  GET /users/1    200  latency 1 ms   complete           success
//   2  GET /users/2    503  latency 2 ms   complete           failure (5xx)
//   3  GET /users/3    200  latency 3 ms   reset              failure (not complete)
//   4  GET /users/4    -    -              no-response        failure (no response)
//   5  POST /users     200  latency 5 ms   complete, grpc 2   failure (gRPC status)
//   6  POST /users     201  latency 4 ms   complete           success
// The span: the first request at t=0 to the last byte of exchange 6 at 10 ms + 4 ms + 0.5 µs.
std::vector<Exchange> Six() {
  const uint64_t t0 = 1'700'000'000'000'000'000ull;
  std::vector<Exchange> xs;
  for (uint64_t i = 1; i <= 6; ++i) {
    Exchange x = testing::SmallExchange(i, t0 + (i - 1) * 2'000'000);
    x.destination.labels = Labels{"shop", "web-0", "deployment", "web", "web"};
    x.request->path = absl::StrCat("/users/", i);
    x.response_start_ns = i * 1'000'000;
    x.response_end_ns = x.response_start_ns + 500;
    xs.push_back(std::move(x));
  }
  xs[1].response->status = 503;
  xs[2].completion = Completion::kReset;
  xs[3].response.reset();
  xs[3].response_start_ns = xs[3].response_end_ns = 0;
  xs[3].completion = Completion::kNoResponse;
  xs[4].request->method = xs[5].request->method = "POST";
  xs[4].request->path = xs[5].request->path = "/users";
  xs[4].grpc_status = 2;
  xs[5].response_start_ns = 4'000'000;
  xs[5].response_end_ns = 4'000'500;
  xs[5].response->status = 201;
  return xs;
}

TEST(StatsTable, RoutesSuccessRateAndSpan) {
  StatsTable t;
  for (const Exchange& x : Six()) t.Add(x);
  EXPECT_EQ(t.exchanges(), 6u);
  EXPECT_EQ(t.span_ns(), 14'000'500u);
  std::vector<StatRow> rows = t.Rows();
  ASSERT_EQ(rows.size(), 2u);
  EXPECT_EQ(rows[0].workload, "deployment/web");
  EXPECT_EQ(rows[0].ns, "shop");
  EXPECT_EQ(rows[0].method, "GET");
  EXPECT_EQ(rows[0].route, "/users/{id}");
  EXPECT_EQ(rows[0].count, 4u);
  EXPECT_EQ(rows[0].successes, 1u);
  EXPECT_EQ(rows[0].latency_count, 3u);  // 1, 2, 3 ms
  EXPECT_EQ(*rows[0].p50_ns, 2'000'000u);
  EXPECT_EQ(*rows[0].p95_ns, 3'000'000u);
  EXPECT_EQ(rows[1].method, "POST");
  EXPECT_EQ(rows[1].count, 2u);
  EXPECT_EQ(rows[1].successes, 1u);
  EXPECT_EQ(*rows[1].p50_ns, 4'000'000u);  // 4 and 5 ms: rank ceil(0.5 * 2) = 1
  EXPECT_EQ(*rows[1].p99_ns, 5'000'000u);
  // 4 exchanges over 14.0005 ms.
  EXPECT_DOUBLE_EQ(*t.Rate(4), 4 * 1e9 / 14'000'500);

  std::vector<std::string> lines = absl::StrSplit(t.FormatText(), '\n');
  ASSERT_EQ(lines.size(), 4u);  // header, two rows, and the empty string after the last '\n'
  EXPECT_EQ(lines[0],
            "NAMESPACE   WORKLOAD         ROUTE             COUNT   SUCCESS         RPS   "
            "LATENCY_P50   LATENCY_P95   LATENCY_P99");
  // 4 / 0.0140005 s = 285.70rps; 2 / 0.0140005 s = 142.85rps.
  EXPECT_EQ(lines[1],
            "shop        deployment/web   GET /users/{id}       4    25.00%   285.70rps       "
            "2.000ms       3.000ms       3.000ms");
  EXPECT_EQ(lines[2],
            "shop        deployment/web   POST /users           2    50.00%   142.85rps       "
            "4.000ms       5.000ms       5.000ms");

  std::vector<std::string> json = absl::StrSplit(t.FormatJson(), '\n', absl::SkipEmpty());
  ASSERT_EQ(json.size(), 2u);
  nlohmann::json j = nlohmann::json::parse(json[0]);
  EXPECT_EQ(j["workload"], "deployment/web");
  EXPECT_EQ(j["namespace"], "shop");
  EXPECT_EQ(j["method"], "GET");
  EXPECT_EQ(j["route"], "/users/{id}");
  EXPECT_EQ(j["count"], 4);
  EXPECT_EQ(j["successes"], 1);
  EXPECT_EQ(j["successRate"], 0.25);
  EXPECT_EQ(j["spanNs"], 14'000'500);
  EXPECT_EQ(j["latencyCount"], 3);
  EXPECT_EQ(j["latencyP50Ns"], 2'000'000);
  EXPECT_EQ(j["latencyP99Ns"], 3'000'000);
}

TEST(StatsTable, Pivots) {
  std::vector<Exchange> xs = Six();
  StatsTable status(StatKey::kStatus);
  StatsTable path(StatKey::kPath);
  for (const Exchange& x : xs) status.Add(x), path.Add(x);
  std::vector<StatRow> s = status.Rows();
  ASSERT_EQ(s.size(), 4u);  // 200 (3), 201, 503, none: by code, none last
  EXPECT_EQ(*s[0].status, 200);
  EXPECT_EQ(s[0].count, 3u);
  EXPECT_EQ(s[0].successes, 1u);
  EXPECT_EQ(*s[1].status, 201);
  EXPECT_EQ(*s[2].status, 503);
  EXPECT_FALSE(s[3].status.has_value());
  EXPECT_FALSE(s[3].p50_ns.has_value());
  EXPECT_EQ(status.FormatText().substr(0, 7), "STATUS ");
  EXPECT_NE(status.FormatJson().find("\"httpStatus\":null"), std::string::npos);
  std::vector<StatRow> p = path.Rows();
  ASSERT_EQ(p.size(), 2u);  // /users/{id} (4), /users (2): most first
  EXPECT_EQ(p[0].key, "/users/{id}");
  EXPECT_EQ(p[1].key, "/users");
}

// A view read back from a file counts as the owned exchange it was written from.
TEST(StatsTable, ViewsAsOwned) {
  std::vector<Exchange> xs = Six();
  xs[0].destination.labels = Labels{};  // no labels: the workload is the address
  StatsTable owned, viewed;
  for (const Exchange& x : xs) owned.Add(x);
  const std::string file = testing::WriteToString(xs);  // outlives the reader that reads it
  auto reader = Reader::Open(NewStringReadableFile(file));
  ASSERT_TRUE(reader.ok());
  ExchangeView v;
  while ((*reader)->Next(&v)) viewed.Add(v);
  EXPECT_EQ(owned.FormatJson(), viewed.FormatJson());
  EXPECT_EQ(owned.Rows()[0].workload, "127.0.0.2:80");
}

TEST(StatsTable, NoExchangesNoRate) {
  StatsTable t;
  EXPECT_EQ(t.FormatText(),
            "WORKLOAD   ROUTE   COUNT   SUCCESS   RPS   LATENCY_P50   LATENCY_P95   LATENCY_P99\n");
  EXPECT_EQ(t.FormatJson(), "");
  Exchange x = testing::SmallExchange(1, 5);
  x.request_end_ns = x.response_start_ns = x.response_end_ns = 0;
  t.Add(x);
  EXPECT_EQ(t.span_ns(), 0u);
  EXPECT_FALSE(t.Rate(1).has_value());
  EXPECT_NE(t.FormatJson().find("\"rps\":null"), std::string::npos);
}

// Values from the formats' definitions (line_time.h), worked out by hand: 1764460800 is
// 2025-11-30T00:00:00Z (20422 days after 1970-01-01).
TEST(LineClock, Formats) {
  const uint64_t t = 1'764'460'800'123'456'789ull;
  auto stamp = [](TimeFormat f, uint64_t start, std::vector<uint64_t> times) {
    LineClock c(f, start);
    std::string out;
    for (uint64_t x : times) c.Stamp(x, &out);
    return out;
  };
  EXPECT_EQ(stamp(TimeFormat::kAbsolute, 0, {t}), "2025-11-30T00:00:00.123456Z ");
  EXPECT_EQ(stamp(TimeFormat::kAbsolute, 0, {t + 999'876'543}), "2025-11-30T00:00:01.123333Z ");
  EXPECT_EQ(stamp(TimeFormat::kEpoch, 0, {t}), "1764460800.123456 ");
  EXPECT_EQ(stamp(TimeFormat::kNone, 0, {t}), "");
  // Relative to a recorded start one second before.
  EXPECT_EQ(stamp(TimeFormat::kRelative, t - 1'000'000'000, {t, t + 1'500}), "1.000000 1.000001 ");
  // A start after the first line (taprec -r records when it ran) or none: the first line is 0.
  EXPECT_EQ(stamp(TimeFormat::kRelative, t + 5, {t, t + 2'000'000'000}), "0.000000 2.000000 ");
  EXPECT_EQ(stamp(TimeFormat::kRelative, 0, {t, t - 1'000}), "0.000000 -0.000001 ");
  // Delta: from the previous line, signed, cut toward zero.
  EXPECT_EQ(stamp(TimeFormat::kDelta, 0, {t, t + 312'999, t + 12'999, t + 12'999 + 3'000'000'000}),
            "0.000000 0.000312 -0.000300 3.000000 ");
  EXPECT_EQ(*ParseTimeFormat("delta"), TimeFormat::kDelta);
  EXPECT_EQ(ParseTimeFormat("local").status().message(),
            "--time local: unknown time format (absolute, relative, delta, epoch)");
}

// Each text line is stamped with its own event (golden file, first exchange: request at
// ...00.123456789, response first byte +312 µs, last byte +350.5 µs; render_test's values).
TEST(LineClock, TextLinesStampTheirEvents) {
  auto reader = Reader::Open(*OpenReadableFile(TAPKIT_SOURCE_DIR "/fixtures/golden/v1.0.tap"));
  ASSERT_TRUE(reader.ok());
  ExchangeView v;
  ASSERT_TRUE((*reader)->Next(&v));
  LineClock clock(TimeFormat::kEpoch, 0);
  std::string text;
  AppendText(v, false, &text, &clock);
  std::vector<std::string> lines = absl::StrSplit(text, '\n', absl::SkipEmpty());
  ASSERT_EQ(lines.size(), 3u);
  EXPECT_EQ(lines[0].substr(0, 22), "1764460800.123456 req ");
  EXPECT_EQ(lines[1].substr(0, 22), "1764460800.123768 rsp ");
  EXPECT_EQ(lines[2].substr(0, 22), "1764460800.123807 end ");
  std::string plain;
  AppendText(v, false, &plain);
  EXPECT_EQ(plain.substr(0, 4), "req ") << "without a clock, linkerd's layout";
}

}  // namespace
}  // namespace tapkit
