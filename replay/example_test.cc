// The regression test of issue 12, as a user would write it: traffic recorded from a real nginx
// (fixtures/replay/nginx-base.conf.in) by taprec -i lo, replayed against a second nginx whose
// config changes one route (nginx-changed.conf.in: GET /api/price answers 1499 instead of 1999),
// and the matchers of replay/testing.h assert that exactly that route is reported.
//
// The independent sources: the two nginx access logs (what was requested while recording, and
// what the replay sent) and the fixture files (the one JSON value that changed).
//
// Capturing on lo needs root with CAP_NET_RAW: without it the test skips with a message; without
// nginx or curl too, but under CI=true that is a failure. nginx listens on 127.0.98.1 and .2.
#include <gtest/gtest-spi.h>
#include <gtest/gtest.h>

#include <functional>
#include <string>
#include <vector>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_replace.h"
#include "format/test_dir.h"
#include "format/testutil.h"
#include "replay/nginx_testutil.h"
#include "replay/record_testutil.h"
#include "replay/testing.h"

namespace tapkit::replay {
namespace {

using tapkit::replay::testing::AllMatched;
using tapkit::replay::testing::OnlyDiffersOn;
using ::testing::ElementsAre;
using ::testing::Not;
using ::testing::SizeIs;

const std::string kFixtures = TAPKIT_SOURCE_DIR "/fixtures/replay";
constexpr char kRecordedAddress[] = "127.0.98.1";
constexpr char kChangedAddress[] = "127.0.98.2";

using tapkit::testing::FreePort;
using tapkit::testing::RecordLoopback;
using tapkit::testing::Sh;
using tapkit::testing::WaitFor;

// One nginx from a fixture config (@WWW@: the fixtures' www/), in TestDir()/NAME, started when
// made; stopped when destroyed.
class ShopNginx : public tapkit::testing::Nginx {
 public:
  ShopNginx(const std::string& conf_in, const std::string& address, const std::string& name)
      : tapkit::testing::Nginx(
            address, tapkit::testing::TestDir() + "/" + name,
            absl::StrReplaceAll(tapkit::testing::ReadFileBytes(kFixtures + "/" + conf_in),
                                {{"@WWW@", kFixtures + "/www"}})),
        started_(Start()) {}
  bool started() const { return started_; }
  // The request lines nginx logged ("GET /api/price?sku=A-1 HTTP/1.1"), sorted.
  std::vector<std::string> Requests() const { return tapkit::testing::RequestLines(AccessLog()); }

 private:
  bool started_;
};

// taprec -i lo recording `nginx`'s traffic into `tap` while `traffic` runs.
::testing::AssertionResult Record(const ShopNginx& nginx, const std::string& tap,
                                  const std::function<void()>& traffic) {
  return RecordLoopback(TAPREC_BIN, kRecordedAddress, nginx.port(), tap, traffic);
}

TEST(ReplayExample, ExactlyTheChangedRouteIsReported) {
  // As the other capture tests: without root a skip; without a tool a skip, but a failure under
  // CI=true, where scripts/deps.sh installs every tool.
  TAPKIT_REQUIRE_LOOPBACK_CAPTURE("replay example_test");
  TAPKIT_REQUIRE_TOOL("nginx");
  TAPKIT_REQUIRE_TOOL("curl");
  ShopNginx recorded("nginx-base.conf.in", kRecordedAddress, "recorded");
  ShopNginx changed("nginx-changed.conf.in", kChangedAddress, "changed");
  ASSERT_TRUE(recorded.started() && changed.started()) << "nginx did not start";

  // The traffic: two keep-alive connections (curl reuses one for its URLs), every route, a query
  // on the changed route, and a POST with a JSON body.
  std::string tap = tapkit::testing::TestDir() + "/shop.tap";
  const std::string& base = recorded.url();
  ASSERT_TRUE(Record(recorded, tap, [&] {
    EXPECT_EQ(Sh(absl::StrCat("curl -sS -o /dev/null -o /dev/null -o /dev/null -o /dev/null ",
                              "-o /dev/null -o /dev/null ", base, "/ ", base, "/api/price ", base,
                              "/api/stock ", base, "/health ", base, "/api/price?sku=A-1 ", base,
                              "/api/stock")),
              0);
    EXPECT_EQ(Sh(absl::StrCat("curl -sS -o /dev/null -H 'Content-Type: application/json' ",
                              "--data-binary '{\"probe\":1}' ", base, "/health")),
              0);
  }));
  WaitFor([&] { return recorded.Requests().size() >= 7; });
  const std::vector<std::string> sent_while_recording = recorded.Requests();
  ASSERT_THAT(sent_while_recording, SizeIs(7));
  EXPECT_THAT(tapkit::testing::ReadAll(tapkit::testing::ReadFileBytes(tap)).exchanges, SizeIs(7));

  // Against the changed service: exactly GET /api/price differs (both of its exchanges), on the
  // one JSON value the fixture changed.
  absl::StatusOr<ReplayResult> result = ReplayCapture(tap, changed.url());
  ASSERT_TRUE(result.ok()) << result.status();
  EXPECT_THAT(*result, OnlyDiffersOn({"GET /api/price"}));
  EXPECT_THAT(*result, Not(OnlyDiffersOn({"GET /api/stock"})));
  EXPECT_THAT(*result, Not(AllMatched()));
  EXPECT_EQ(result->summary.sent, 7u);
  EXPECT_EQ(result->summary.matched, 5u);
  EXPECT_EQ(result->summary.mismatched, 2u);
  EXPECT_EQ(result->summary.errors, 0u);
  // nginx logs a request once its response is out: the last line may come after the answer.
  WaitFor([&] { return changed.Requests().size() >= sent_while_recording.size(); });
  EXPECT_EQ(changed.Requests(), sent_while_recording) << "the replay sent what was recorded";
  ASSERT_THAT(result->mismatches, SizeIs(2));
  for (const ReplayedExchange& x : result->mismatches) {
    ASSERT_TRUE(x.comparison.has_value());
    EXPECT_THAT(x.comparison->diffs,
                ElementsAre(FieldDiff{FieldDiff::Kind::kJsonValue, "body /price/amount",
                                      std::string("1999"), std::string("1499")}));
  }

  // The failure message a user reads: the route, the recorded id, the field and both values.
  ::testing::StringMatchResultListener why;
  EXPECT_FALSE(::testing::ExplainMatchResult(AllMatched(), *result, &why));
  for (const char* part :
       {"GET /api/price", "GET /api/price?sku=A-1", "body /price/amount", "1999", "1499"}) {
    EXPECT_NE(why.str().find(part), std::string::npos) << part << " not in:\n" << why.str();
  }
  for (const ReplayedExchange& x : result->mismatches) {
    std::string id = absl::StrCat(x.recorded->capture_point, ":", x.recorded->stream_id);
    EXPECT_NE(why.str().find(id), std::string::npos) << id << " not in:\n" << why.str();
  }
  EXPECT_EQ(why.str().find("/api/stock"), std::string::npos) << why.str();
  EXPECT_NONFATAL_FAILURE(EXPECT_REPLAY_MATCHES(tap, changed.url()), "body /price/amount");

  // Against the service it was recorded from: nothing differs (dates, etags and the like are
  // ignored by default).
  ASSERT_REPLAY_MATCHES(tap, recorded.url());

  // A target that is down: the failure names it.
  std::string down = absl::StrCat("http://", kChangedAddress, ":", FreePort(kChangedAddress));
  ::testing::AssertionResult refused = tapkit::replay::testing::ReplayMatches(tap, down);
  EXPECT_FALSE(refused);
  EXPECT_NE(std::string(refused.message()).find(down.substr(7)), std::string::npos)
      << refused.message();
}

}  // namespace
}  // namespace tapkit::replay
