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
#include <signal.h>
#include <spawn.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <functional>
#include <string>
#include <thread>
#include <vector>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_replace.h"
#include "absl/strings/str_split.h"
#include "format/test_dir.h"
#include "format/testutil.h"
#include "replay/nginx_testutil.h"
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

// Why this process may not capture on lo, or "" when it may (root with CAP_NET_RAW).
std::string CannotCapture() {
  if (::geteuid() != 0) return "capturing on lo needs root";
  std::ifstream status("/proc/self/status");
  for (std::string line; std::getline(status, line);) {
    if (line.rfind("CapEff:", 0) == 0 &&
        !(std::stoull(line.substr(7), nullptr, 16) & (1ull << 13))) {
      return "capturing on lo needs CAP_NET_RAW";
    }
  }
  return "";
}

// The tool the test needs that is missing, or "".
std::string MissingTool() {
  for (const char* tool : {"nginx", "curl"}) {
    if (std::system(absl::StrCat("command -v ", tool, " > /dev/null").c_str()) != 0) {
      return absl::StrCat(tool, " is missing (scripts/deps.sh installs it)");
    }
  }
  return "";
}

int Sh(const std::string& command) {
  int status = std::system(command.c_str());
  return WIFEXITED(status) ? WEXITSTATUS(status) : -1;
}

using tapkit::testing::FreePort;

bool WaitFor(const std::function<bool()>& done) {
  for (int i = 0; i < 600; ++i) {
    if (done()) return true;
    std::this_thread::sleep_for(std::chrono::milliseconds(50));
  }
  return false;
}

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
  std::vector<std::string> Requests() const {
    std::vector<std::string> out;
    for (const std::string& line : AccessLog()) {
      std::vector<std::string> quoted = absl::StrSplit(line, '"');
      if (quoted.size() > 1) out.push_back(quoted[1]);
    }
    std::sort(out.begin(), out.end());
    return out;
  }

 private:
  bool started_;
};

// taprec -i lo recording `nginx`'s traffic into `tap` while `traffic` runs.
::testing::AssertionResult Record(const ShopNginx& nginx, const std::string& tap,
                                  const std::function<void()>& traffic) {
  std::string filter = absl::StrCat("tcp and host ", kRecordedAddress, " and port ", nginx.port());
  std::vector<std::string> args = {TAPREC_BIN, "-i", "lo", "-Z", "root", "-w", tap, filter};
  std::vector<char*> argv;
  for (std::string& a : args) argv.push_back(a.data());
  argv.push_back(nullptr);
  pid_t pid = 0;
  if (::posix_spawn(&pid, TAPREC_BIN, nullptr, nullptr, argv.data(), environ) != 0) {
    return ::testing::AssertionFailure() << "cannot start " << TAPREC_BIN;
  }
  int status = 0;
  bool open = WaitFor(
      [&] { return std::filesystem::exists(tap) || ::waitpid(pid, &status, WNOHANG) == pid; });
  if (!open || !std::filesystem::exists(tap)) {
    ::kill(pid, SIGKILL);
    ::waitpid(pid, &status, 0);
    return ::testing::AssertionFailure() << "taprec did not open " << tap;
  }
  traffic();
  std::this_thread::sleep_for(std::chrono::seconds(1));  // the last packets reach taprec
  ::kill(pid, SIGINT);
  ::waitpid(pid, &status, 0);
  if (!WIFEXITED(status) || WEXITSTATUS(status) != 0) {
    return ::testing::AssertionFailure() << "taprec ended with status " << status;
  }
  return ::testing::AssertionSuccess();
}

TEST(ReplayExample, ExactlyTheChangedRouteIsReported) {
  // As the other capture tests: without root a skip; without a tool a skip, but a failure under
  // CI=true, where scripts/deps.sh installs every tool.
  if (std::string why = CannotCapture(); !why.empty()) {
    GTEST_SKIP() << "replay example_test: " << why;
  }
  if (std::string why = MissingTool(); !why.empty()) {
    if (const char* ci = std::getenv("CI"); ci != nullptr && std::string(ci) == "true") {
      FAIL() << why << " (CI=true: scripts/deps.sh installs what the test needs)";
    }
    GTEST_SKIP() << "replay example_test: " << why;
  }
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
