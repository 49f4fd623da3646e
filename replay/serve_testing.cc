#include "replay/serve_testing.h"

#include <iostream>
#include <utility>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "replay/serve_log.h"

namespace tapkit::replay {

namespace testing {
namespace {

// One line of tapreplay --serve's log (serve_log.h), the session shown when the event has one.
std::string Describe(const ServeEvent& e) { return ServeEventText(e, !e.session.empty()); }

bool IsMiss(const ServeEvent& e) {
  return e.kind == ServeEvent::Kind::kMiss || e.kind == ServeEvent::Kind::kExhausted;
}

bool AnsweredFromCapture(const ServeEvent& e) {
  return e.kind == ServeEvent::Kind::kHit || e.kind == ServeEvent::Kind::kPassThrough;
}

class NoMissesMatcher {
 public:
  using is_gtest_matcher = void;

  bool MatchAndExplain(const std::vector<ServeEvent>& events,
                       ::testing::MatchResultListener* listener) const {
    std::vector<std::string> unanswered;
    for (const ServeEvent& e : events) {
      if (!AnsweredFromCapture(e)) unanswered.push_back(Describe(e));
    }
    if (unanswered.empty()) return true;
    *listener << unanswered.size() << " of " << events.size()
              << " requests were not answered from the capture:\n  "
              << absl::StrJoin(unanswered, "\n  ");
    return false;
  }
  void DescribeTo(std::ostream* os) const {
    *os << "every request was answered from the capture (or the upstream)";
  }
  void DescribeNegationTo(std::ostream* os) const {
    *os << "some request was not answered from the capture (or the upstream)";
  }
};

std::unique_ptr<MockServer> StartForTest(const std::string& what, std::vector<Exchange> exchanges,
                                         ServeOptions options, ServeCallbacks callbacks) {
  if (options.listen.empty()) options.listen = ServeOptionsForTest().listen;
  absl::StatusOr<std::unique_ptr<MockServer>> server =
      MockServer::Start(std::move(exchanges), std::move(options), std::move(callbacks));
  if (!server.ok()) {
    ADD_FAILURE() << what << ": " << server.status();
    return nullptr;
  }
  return *std::move(server);
}

}  // namespace

ServeOptions ServeOptionsForTest() {
  ServeOptions options;
  options.listen = "127.0.0.1:0";
  options.match.ignore_host = true;
  return options;
}

std::unique_ptr<MockServer> ServeCaptureForTest(const std::vector<std::string>& captures,
                                                ServeOptions options, ServeCallbacks callbacks) {
  std::string what = absl::StrCat("ServeCaptureForTest(", absl::StrJoin(captures, ", "), ")");
  std::vector<std::string> notices;
  absl::StatusOr<std::vector<Exchange>> exchanges =
      ReadServedExchanges(captures, /*selection=*/nullptr, &notices);
  if (!exchanges.ok()) {
    ADD_FAILURE() << what << ": " << exchanges.status();
    return nullptr;
  }
  for (const std::string& notice : notices) std::cerr << what << ": " << notice << "\n";
  return StartForTest(what, *std::move(exchanges), std::move(options), std::move(callbacks));
}

std::unique_ptr<MockServer> ServeExchangesForTest(std::vector<Exchange> exchanges,
                                                  ServeOptions options, ServeCallbacks callbacks) {
  return StartForTest("ServeExchangesForTest", std::move(exchanges), std::move(options),
                      std::move(callbacks));
}

ServeCallbacks ServedEvents::Callbacks() {
  ServeCallbacks callbacks;
  callbacks.on_event = [this](const ServeEvent& event) {
    {
      std::lock_guard<std::mutex> lock(mu_);
      events_.push_back(event);
    }
    changed_.notify_all();
  };
  return callbacks;
}

bool ServedEvents::AwaitCount(size_t n, std::chrono::milliseconds timeout) const {
  std::unique_lock<std::mutex> lock(mu_);
  return changed_.wait_for(lock, timeout, [&] { return events_.size() >= n; });
}

std::vector<ServeEvent> ServedEvents::All() const {
  std::lock_guard<std::mutex> lock(mu_);
  return events_;
}

std::vector<ServeEvent> ServedEvents::Misses() const {
  std::lock_guard<std::mutex> lock(mu_);
  std::vector<ServeEvent> out;
  for (const ServeEvent& e : events_) {
    if (IsMiss(e)) out.push_back(e);
  }
  return out;
}

::testing::Matcher<const std::vector<ServeEvent>&> NoMisses() { return NoMissesMatcher(); }

}  // namespace testing

void PrintTo(const ServeEvent& event, std::ostream* os) { *os << testing::Describe(event); }
}  // namespace tapkit::replay
