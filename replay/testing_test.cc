// replay/testing.h's matchers on replay results built by hand (hand-checked routes and verdicts;
// the wording of each mismatch is the text report's, tested in report_test). The example test
// (example_test.cc) runs them on a real replay against nginx.
#include "replay/testing.h"

#include <gtest/gtest.h>

#include <memory>
#include <sstream>
#include <string>

#include "replay/report.h"

namespace tapkit::replay {
namespace {

using tapkit::replay::testing::AllMatched;
using tapkit::replay::testing::OnlyDiffersOn;
using tapkit::replay::testing::RouteOf;
using ::testing::ExplainMatchResult;
using ::testing::HasSubstr;
using ::testing::Not;
using ::testing::StringMatchResultListener;

// A result of `sent` exchanges of which the listed ones differ (a status 200 -> 500) or failed.
class ResultBuilder {
 public:
  explicit ResultBuilder(uint64_t sent) { result_.summary.sent = sent; }
  ResultBuilder& Differs(const std::string& method, const std::string& path, uint64_t stream) {
    ReplayedExchange& x = Add(method, path, stream);
    x.live.response = Response{HttpVersion::kHttp11, 500, "Internal Server Error", {}, {}, {}};
    Comparison c;
    c.diffs.push_back({FieldDiff::Kind::kStatus, "status", "200", "500"});
    x.comparison = c;
    ++result_.summary.mismatched;
    return *this;
  }
  ResultBuilder& Fails(const std::string& method, const std::string& path, uint64_t stream) {
    Add(method, path, stream).error = "Operation timed out";
    ++result_.summary.errors;
    return *this;
  }
  ReplayResult Build() {
    result_.summary.matched =
        result_.summary.sent - result_.summary.mismatched - result_.summary.errors;
    return std::move(result_);
  }

 private:
  ReplayedExchange& Add(const std::string& method, const std::string& path, uint64_t stream) {
    auto recorded = std::make_unique<Exchange>();
    recorded->stream_id = stream;
    recorded->request = Request{HttpVersion::kHttp11, method, "http", "shop", path, {}, {}, {}};
    recorded->response = Response{HttpVersion::kHttp11, 200, "OK", {}, {}, {}};
    ReplayedExchange x;
    x.recorded = recorded.get();
    x.live.request = recorded->request;
    result_.recorded.push_back(std::move(recorded));
    result_.mismatches.push_back(std::move(x));
    return result_.mismatches.back();
  }
  ReplayResult result_;
};

TEST(ReplayTesting, RouteIsMethodAndPathWithoutQuery) {
  ReplayResult r = ResultBuilder(1).Differs("GET", "/api/price?sku=A-1&x=/y", 1).Build();
  EXPECT_EQ(RouteOf(r.mismatches[0]), "GET /api/price");
  ReplayResult plain = ResultBuilder(1).Differs("DELETE", "/cart/7", 2).Build();
  EXPECT_EQ(RouteOf(plain.mismatches[0]), "DELETE /cart/7");
}

TEST(ReplayTesting, AllMatched) {
  EXPECT_THAT(ResultBuilder(3).Build(), AllMatched());
  EXPECT_THAT(ResultBuilder(3).Differs("GET", "/a", 1).Build(), Not(AllMatched()));
  EXPECT_THAT(ResultBuilder(3).Fails("GET", "/a", 1).Build(), Not(AllMatched()));
}

TEST(ReplayTesting, OnlyDiffersOnExactlyTheRoutesListed) {
  ReplayResult r = ResultBuilder(6)
                       .Differs("GET", "/api/price", 3)
                       .Differs("GET", "/api/price?sku=A-1", 4)
                       .Differs("POST", "/cart", 5)
                       .Build();
  EXPECT_THAT(r, OnlyDiffersOn({"GET /api/price", "POST /cart"}));
  EXPECT_THAT(r, OnlyDiffersOn({"POST /cart", "GET /api/price", "GET /api/price"}));

  StringMatchResultListener extra;
  EXPECT_FALSE(ExplainMatchResult(OnlyDiffersOn({"GET /api/price"}), r, &extra));
  EXPECT_THAT(extra.str(), HasSubstr("differs unexpectedly on POST /cart;"));
  EXPECT_THAT(extra.str(), Not(HasSubstr("does not differ")));

  StringMatchResultListener missing;
  EXPECT_FALSE(ExplainMatchResult(OnlyDiffersOn({"GET /api/price", "POST /cart", "GET /api/stock"}),
                                  r, &missing));
  EXPECT_THAT(missing.str(), HasSubstr("does not differ on GET /api/stock;"));
  EXPECT_THAT(missing.str(), Not(HasSubstr("unexpectedly")));

  // Nothing differs, yet a route was expected to.
  EXPECT_THAT(ResultBuilder(2).Build(), Not(OnlyDiffersOn({"GET /api/price"})));
  // Nothing differs and nothing was expected to.
  EXPECT_THAT(ResultBuilder(2).Build(), OnlyDiffersOn({}));
}

TEST(ReplayTesting, AFailedRequestIsNeverTheExpectedDifference) {
  ReplayResult r =
      ResultBuilder(2).Differs("GET", "/api/price", 1).Fails("GET", "/api/price", 2).Build();
  StringMatchResultListener why;
  EXPECT_FALSE(ExplainMatchResult(OnlyDiffersOn({"GET /api/price"}), r, &why));
  EXPECT_THAT(why.str(), HasSubstr("some requests failed;"));
}

TEST(ReplayTesting, MismatchesPastTheCapAreNotAPass) {
  // ReplayCapture keeps kMaxKeptMismatches; the routes of the rest are unknown.
  ReplayResult r = ResultBuilder(3).Differs("GET", "/api/price", 1).Build();
  r.mismatches_not_kept = 2;
  r.summary.mismatched += 2;
  r.summary.matched -= 2;
  StringMatchResultListener why;
  EXPECT_FALSE(ExplainMatchResult(OnlyDiffersOn({"GET /api/price"}), r, &why));
  EXPECT_THAT(why.str(), HasSubstr("2 more exchanges differ or failed than were kept"));
}

TEST(ReplayTesting, TheExplanationIsTheTextReport) {
  ReplayResult r =
      ResultBuilder(4).Differs("GET", "/api/price", 17).Fails("GET", "/slow", 18).Build();
  std::ostringstream report_out;
  std::unique_ptr<ReplayReport> report = MakeTextReport(report_out);
  for (const ReplayedExchange& x : r.mismatches) report->Add(x);
  ASSERT_TRUE(report->Finish(r.summary).ok());
  std::string report_text = report_out.str();
  ASSERT_FALSE(report_text.empty());
  while (report_text.back() == '\n') report_text.pop_back();

  EXPECT_EQ(tapkit::replay::testing::DescribeReplay(r), report_text);
  StringMatchResultListener why;
  EXPECT_FALSE(ExplainMatchResult(AllMatched(), r, &why));
  EXPECT_EQ(why.str(), "\n" + report_text);
  for (const char* part :
       {"GET /api/price", "0:17", "status", "200", "500", "GET /slow", "Operation timed out"}) {
    EXPECT_THAT(why.str(), HasSubstr(part));
  }
  // What gtest prints as the value: the summary line alone.
  std::string printed = ::testing::PrintToString(r);
  EXPECT_EQ(report_text.substr(report_text.rfind('\n') + 1), printed);
}

}  // namespace
}  // namespace tapkit::replay
