// testing.h: a recorded capture as a GoogleTest regression test. "Does the new build answer what
// the old one answered?" in one line of a test:
//
//   ASSERT_REPLAY_MATCHES("bug-1234.tap", "http://127.0.0.1:8080");
//   EXPECT_THAT(*result, tapkit::replay::testing::AllMatched());
//   EXPECT_THAT(*result, tapkit::replay::testing::OnlyDiffersOn({"GET /api/price"}));
//
// The capture is replayed with ReplayCapture (replay/replay.h): its requests are sent to the
// target as fast as it answers (ReplayOptions' default pacing, Pacing::kMax: a capture's
// recorded gaps are not waited for; set pacing = Pacing::kRecorded to keep them), and each live
// response is compared with the recorded one (replay/compare.h: noise rules, the default ignored
// header fields). A failure message is tapreplay's readable report
// (replay/report.h, MakeTextReport): one line per exchange that differs (method, path, the
// recorded exchange's id, recorded and live status), a line per differing field, the unified diff
// of the bodies, each failed request with its error, and the summary line.
//
// Link the CMake target tapkit::replay_testing (tapkit_replay_testing in this tree); it brings
// GoogleTest's gmock.
//
// Thread-safety: the matchers are immutable and may be used from any thread; the macros replay
// on the calling thread (one replay at a time per ReplayOptions, as Replay requires).
#ifndef TAPKIT_REPLAY_TESTING_H_
#define TAPKIT_REPLAY_TESTING_H_

#include <ostream>
#include <string>
#include <vector>

#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "replay/replay.h"

namespace tapkit::replay {

// What GoogleTest prints for a ReplayResult ("Actual: ..."): the report's summary line.
void PrintTo(const ReplayResult& result, std::ostream* os);

namespace testing {

// tapreplay's readable report of `result`: every mismatch and failed request, then the summary
// line.
std::string DescribeReplay(const ReplayResult& result);

// Matches a ReplayResult in which every replayed exchange matched its recording and no request
// failed (ReplayResult::ok()). The explanation of a failure is DescribeReplay's report.
::testing::Matcher<const ReplayResult&> AllMatched();

// Matches a ReplayResult in which no request failed and the exchanges that differ are exactly on
// `routes`, each "METHOD PATH": the recorded request's method and its path without the query
// ("GET /api/price"). Every listed route must differ at least once and no other route may.
// More than kMaxKeptMismatches differing exchanges never match (the others' routes are unknown).
// The explanation names the routes that differ unexpectedly and those that should have, then
// gives the report.
::testing::Matcher<const ReplayResult&> OnlyDiffersOn(std::vector<std::string> routes);

// The route of a replayed exchange as OnlyDiffersOn names it: "METHOD PATH" without the query.
std::string RouteOf(const ReplayedExchange& x);

// Replays `capture` (a .tap path) against `target` ("http://HOST:PORT") with `options`: success
// when everything matched; otherwise a failure whose message is the report, or the replay's
// error (a capture that cannot be read, a target that cannot be reached).
::testing::AssertionResult ReplayMatches(const std::string& capture, const std::string& target,
                                         ReplayOptions options = {});

}  // namespace testing
}  // namespace tapkit::replay

// ASSERT_REPLAY_MATCHES(capture, target[, options]): replays and fails the test, returning from
// the current function, unless every exchange matched (ReplayMatches). EXPECT_REPLAY_MATCHES
// records the failure and goes on.
#define ASSERT_REPLAY_MATCHES(...)                                   \
  switch (0)                                                         \
  case 0:                                                            \
  default:                                                           \
    if (const ::testing::AssertionResult tapkit_replay_result_ =     \
            ::tapkit::replay::testing::ReplayMatches(__VA_ARGS__)) { \
    } else                                                           \
      FAIL() << "ASSERT_REPLAY_MATCHES(" #__VA_ARGS__ ")\n" << tapkit_replay_result_.message()

#define EXPECT_REPLAY_MATCHES(...)                                   \
  switch (0)                                                         \
  case 0:                                                            \
  default:                                                           \
    if (const ::testing::AssertionResult tapkit_replay_result_ =     \
            ::tapkit::replay::testing::ReplayMatches(__VA_ARGS__)) { \
    } else                                                           \
      ADD_FAILURE() << "EXPECT_REPLAY_MATCHES(" #__VA_ARGS__ ")\n"   \
                    << tapkit_replay_result_.message()

#endif  // TAPKIT_REPLAY_TESTING_H_
