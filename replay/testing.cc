#include "replay/testing.h"

#include <algorithm>
#include <iterator>
#include <memory>
#include <set>
#include <sstream>
#include <utility>

#include "replay/report.h"

namespace tapkit::replay {

namespace {

// The text report of `result`: each mismatch (and failed request) added, then the summary.
std::string Report(const ReplayResult& result, bool with_exchanges) {
  std::ostringstream out;
  std::unique_ptr<ReplayReport> report = MakeTextReport(out);
  if (with_exchanges) {
    for (const ReplayedExchange& x : result.mismatches) report->Add(x);
  }
  // The text report writes to `out` only; it has no file to fail on.
  (void)report->Finish(result.summary);
  std::string text = out.str();
  while (!text.empty() && text.back() == '\n') text.pop_back();
  return text;
}

}  // namespace

void PrintTo(const ReplayResult& result, std::ostream* os) { *os << Report(result, false); }

namespace testing {

std::string DescribeReplay(const ReplayResult& result) { return Report(result, true); }

std::string RouteOf(const ReplayedExchange& x) {
  const Request* request = nullptr;
  if (x.recorded != nullptr && x.recorded->request) {
    request = &*x.recorded->request;
  } else if (x.live.request) {
    request = &*x.live.request;
  }
  if (request == nullptr) return "- -";
  std::string path = request->path.substr(0, request->path.find('?'));
  return request->method + " " + path;
}

namespace {

class AllMatchedMatcher : public ::testing::MatcherInterface<const ReplayResult&> {
 public:
  bool MatchAndExplain(const ReplayResult& result,
                       ::testing::MatchResultListener* listener) const override {
    if (result.ok()) return true;
    *listener << "\n" << DescribeReplay(result);
    return false;
  }
  void DescribeTo(std::ostream* os) const override {
    *os << "every replayed exchange matches its recording";
  }
  void DescribeNegationTo(std::ostream* os) const override {
    *os << "some replayed exchange differs from its recording or fails";
  }
};

std::string Join(const std::set<std::string>& routes) {
  std::string out;
  for (const std::string& r : routes) {
    if (!out.empty()) out += ", ";
    out += r;
  }
  return out;
}

class OnlyDiffersOnMatcher : public ::testing::MatcherInterface<const ReplayResult&> {
 public:
  explicit OnlyDiffersOnMatcher(std::vector<std::string> routes)
      : expected_(routes.begin(), routes.end()) {}

  bool MatchAndExplain(const ReplayResult& result,
                       ::testing::MatchResultListener* listener) const override {
    std::set<std::string> differ;
    bool failed = result.summary.errors > 0;
    for (const ReplayedExchange& x : result.mismatches) {
      if (!x.error.empty()) {
        failed = true;
        continue;
      }
      differ.insert(RouteOf(x));
    }
    std::set<std::string> unexpected;
    std::set_difference(differ.begin(), differ.end(), expected_.begin(), expected_.end(),
                        std::inserter(unexpected, unexpected.end()));
    std::set<std::string> missing;
    std::set_difference(expected_.begin(), expected_.end(), differ.begin(), differ.end(),
                        std::inserter(missing, missing.end()));
    // Past ReplayResult's cap the other exchanges' routes are unknown: not a pass.
    const bool unknown = result.mismatches_not_kept > 0;
    if (!failed && !unknown && unexpected.empty() && missing.empty()) return true;
    if (failed) *listener << "some requests failed; ";
    if (unknown) {
      *listener << result.mismatches_not_kept
                << " more exchanges differ or failed than were kept; their routes are unknown; ";
    }
    if (!unexpected.empty()) *listener << "differs unexpectedly on " << Join(unexpected) << "; ";
    if (!missing.empty()) *listener << "does not differ on " << Join(missing) << "; ";
    *listener << "the report:\n" << DescribeReplay(result);
    return false;
  }
  void DescribeTo(std::ostream* os) const override {
    *os << "differs from its recording on exactly " << Join(expected_)
        << ", with no failed request";
  }
  void DescribeNegationTo(std::ostream* os) const override {
    *os << "does not differ on exactly " << Join(expected_) << " or has a failed request";
  }

 private:
  std::set<std::string> expected_;
};

}  // namespace

::testing::Matcher<const ReplayResult&> AllMatched() {
  return ::testing::MakeMatcher(new AllMatchedMatcher());
}

::testing::Matcher<const ReplayResult&> OnlyDiffersOn(std::vector<std::string> routes) {
  return ::testing::MakeMatcher(new OnlyDiffersOnMatcher(std::move(routes)));
}

::testing::AssertionResult ReplayMatches(const std::string& capture, const std::string& target,
                                         ReplayOptions options) {
  absl::StatusOr<ReplayResult> result = ReplayCapture(capture, target, std::move(options));
  if (!result.ok()) {
    return ::testing::AssertionFailure()
           << "replaying " << capture << " against " << target << " failed: " << result.status();
  }
  if (!result->ok()) {
    return ::testing::AssertionFailure()
           << capture << " replayed against " << target << " differs:\n"
           << DescribeReplay(*result);
  }
  return ::testing::AssertionSuccess();
}

}  // namespace testing
}  // namespace tapkit::replay
