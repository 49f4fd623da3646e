// The GoogleTest helper of the mock server (serve_testing.h) on hand-built exchanges: the server
// it starts answers curl (the independent client) as recorded, its failures name the error, the
// event recorder keeps what the server reported, and NoMisses() explains a miss.
//
// Needs curl (a skip without it, a failure under CI=true). The mock listens on 127.0.0.1.
#include "replay/serve_testing.h"

#include <gtest/gtest-spi.h>
#include <gtest/gtest.h>

#include <chrono>
#include <string>
#include <vector>

#include "absl/strings/str_cat.h"
#include "format/test_dir.h"
#include "format/testutil.h"

namespace tapkit::replay::testing {
namespace {

using ::testing::ElementsAre;
using ::testing::Field;
using ::testing::HasSubstr;
using ::testing::Not;
using ::testing::SizeIs;

// GET `path` recorded with the answer 200 and `body` (text/plain).
Exchange Recorded(uint64_t stream_id, const std::string& path, const std::string& body) {
  Exchange x;
  x.sort_key_ns = 1'700'000'000'000'000'000 + stream_id;
  x.request_end_ns = x.response_start_ns = x.response_end_ns = 1000;
  x.stream_id = stream_id;
  x.source = {IpAddress::V4(10, 0, 0, 1), 40000, {}};
  x.destination = {IpAddress::V4(10, 0, 0, 2), 8080, {}};
  Request& request = x.request.emplace();
  request.version = HttpVersion::kHttp11;
  request.method = "GET";
  request.path = path;
  request.authority = "shop.internal:8080";
  request.headers = {{"Host", "shop.internal:8080"}};
  Response& response = x.response.emplace();
  response.version = HttpVersion::kHttp11;
  response.status = 200;
  response.reason = "OK";
  response.headers = {{"Content-Type", "text/plain"},
                      {"Content-Length", std::to_string(body.size())}};
  response.body = {body, body.size(), false};
  return x;
}

// curl's output for `url`: "STATUS BODY" (curl -w).
std::string Curl(const std::string& url) {
  return tapkit::testing::Shell(absl::StrCat("curl -sS -w ' %{http_code}' '", url, "'"));
}

TEST(ServeTesting, OptionsForTestListenOnLoopbackAndIgnoreTheHost) {
  ServeOptions options = ServeOptionsForTest();
  EXPECT_EQ(options.listen, "127.0.0.1:0");
  EXPECT_TRUE(options.match.ignore_host);
  EXPECT_FALSE(options.match.strict);
  EXPECT_EQ(options.miss_status, 404);
}

TEST(ServeTesting, ServesTheExchangesAndRecordsItsEvents) {
  TAPKIT_REQUIRE_TOOL("curl");
  ServedEvents events;
  std::unique_ptr<MockServer> mock = ServeExchangesForTest(
      {Recorded(1, "/a", "first"), Recorded(2, "/a", "second"), Recorded(3, "/b", "bee")},
      ServeOptionsForTest(), events.Callbacks());
  ASSERT_NE(mock, nullptr);
  EXPECT_NE(mock->port(), 0);
  EXPECT_EQ(mock->url(), absl::StrCat("http://127.0.0.1:", mock->port()));
  // The recorded authority (shop.internal) is not the mock's: ignore_host makes it answer.
  EXPECT_EQ(Curl(mock->url() + "/a"), "first 200");
  EXPECT_EQ(Curl(mock->url() + "/a"), "second 200");
  EXPECT_EQ(Curl(mock->url() + "/a"), "second 200");
  EXPECT_EQ(Curl(mock->url() + "/b"), "bee 200");
  EXPECT_THAT(Curl(mock->url() + "/c"), HasSubstr(" 404"));

  ASSERT_TRUE(events.AwaitCount(5)) << ::testing::PrintToString(events.All());
  std::vector<ServeEvent> all = events.All();
  ASSERT_THAT(all, SizeIs(5));
  EXPECT_THAT(all, ElementsAre(Field(&ServeEvent::target, "/a"), Field(&ServeEvent::target, "/a"),
                               Field(&ServeEvent::target, "/a"), Field(&ServeEvent::target, "/b"),
                               Field(&ServeEvent::target, "/c")));
  // Printed as tapreplay --serve's log lines (serve_log.h).
  EXPECT_THAT(::testing::PrintToString(all[1]),
              ::testing::StartsWith("HIT  200 GET /a  recorded 0:2 (2 of 2)  127.0.0.1:"));
  EXPECT_THAT(::testing::PrintToString(all[4]),
              ::testing::StartsWith("MISS 404 GET /c  no recorded request matches; closest: GET /a "
                                    "(differs on path)  127.0.0.1:"));
  EXPECT_THAT(events.Misses(), ElementsAre(Field(&ServeEvent::target, "/c")));

  all.pop_back();
  EXPECT_THAT(all, NoMisses());
  ::testing::StringMatchResultListener why;
  EXPECT_FALSE(::testing::ExplainMatchResult(NoMisses(), events.All(), &why));
  EXPECT_EQ(why.str(), "1 of 5 requests were not answered from the capture:\n  " +
                           ::testing::PrintToString(events.All()[4]));

  // The mock serves for its object's lifetime: once it is destroyed, its port is closed.
  const uint16_t port = mock->port();
  ASSERT_TRUE(tapkit::testing::CanConnect("127.0.0.1", port));
  mock.reset();
  EXPECT_FALSE(tapkit::testing::CanConnect("127.0.0.1", port));
  EXPECT_NONFATAL_FAILURE(EXPECT_THAT(events.All(), NoMisses()),
                          "MISS 404 GET /c  no recorded request matches");
}

TEST(ServeTesting, ACaptureFileIsServedInRecordingOrder) {
  TAPKIT_REQUIRE_TOOL("curl");
  // Written out of order: the sequence follows the sort keys.
  std::string tap = tapkit::testing::WriteTestFile(
      "served.tap",
      tapkit::testing::WriteToString({Recorded(2, "/a", "second"), Recorded(1, "/a", "first")}));
  std::unique_ptr<MockServer> mock = ServeCaptureForTest({tap});
  ASSERT_NE(mock, nullptr);
  EXPECT_EQ(mock->recorded(), 2u);
  EXPECT_EQ(Curl(mock->url() + "/a"), "first 200");
  EXPECT_EQ(Curl(mock->url() + "/a"), "second 200");
}

TEST(ServeTesting, FailuresNameTheErrorAndGiveNull) {
  std::unique_ptr<MockServer> mock;
  std::string missing = tapkit::testing::TestDir() + "/missing.tap";
  EXPECT_NONFATAL_FAILURE(mock = ServeCaptureForTest({missing}),
                          "ServeCaptureForTest(" + missing + "): ");
  EXPECT_EQ(mock, nullptr);

  ServeOptions options = ServeOptionsForTest();
  options.listen = "localhost:0";
  EXPECT_NONFATAL_FAILURE(mock = ServeExchangesForTest({Recorded(1, "/a", "x")}, options),
                          "ServeExchangesForTest: INVALID_ARGUMENT: listen address 'localhost:0'");
  EXPECT_EQ(mock, nullptr);
}

TEST(ServeTesting, NoMissesAcceptsHitsAndPassThroughsOnly) {
  using Kind = ServeEvent::Kind;
  for (Kind kind : {Kind::kHit, Kind::kPassThrough}) {
    ServeEvent e;
    e.kind = kind;
    EXPECT_THAT(std::vector<ServeEvent>{e}, NoMisses());
  }
  for (Kind kind : {Kind::kMiss, Kind::kExhausted, Kind::kUpstreamError, Kind::kBadRequest,
                    Kind::kBadRecorded}) {
    ServeEvent e;
    e.kind = kind;
    e.method = "POST";
    e.target = "/orders";
    EXPECT_THAT(std::vector<ServeEvent>{e}, Not(NoMisses()));
  }
  EXPECT_THAT(std::vector<ServeEvent>{}, NoMisses());
}

// NoMisses() passes when the client never reached the mock; the count catches it (the idiom in
// serve_testing.h).
TEST(ServeTesting, NoMissesNeedsACountToCatchAClientThatNeverCalled) {
  TAPKIT_REQUIRE_TOOL("curl");
  ServeOptions options = ServeOptionsForTest();
  options.listen = "127.0.114.1:0";
  ServedEvents events;
  std::unique_ptr<MockServer> mock =
      ServeExchangesForTest({Recorded(1, "/a", "first")}, options, events.Callbacks());
  ASSERT_NE(mock, nullptr);

  // No request yet: NoMisses() alone passes, the count fails.
  EXPECT_FALSE(events.AwaitCount(1, std::chrono::milliseconds(50)));
  EXPECT_THAT(events.All(), NoMisses());
  EXPECT_NONFATAL_FAILURE(EXPECT_THAT(events.All(), ::testing::AllOf(SizeIs(1), NoMisses())),
                          "whose size 0 doesn't match");

  EXPECT_EQ(Curl(mock->url() + "/a"), "first 200");
  ASSERT_TRUE(events.AwaitCount(1));
  EXPECT_THAT(events.All(), ::testing::AllOf(SizeIs(1), NoMisses()));
}

}  // namespace
}  // namespace tapkit::replay::testing
