// record_testutil.h: a test records a real service on the loopback interface with `taprec -i lo`,
// as a user records a bug report's capture. The replay and mock-server examples
// (replay/example_test.cc, replay/serve_example_test.cc) record nginx this way, then use the
// capture.
//
// Capturing on lo needs root with CAP_NET_RAW: a test asks CannotCaptureOnLoopback() first and
// skips with its message (TAPKIT_REQUIRE_LOOPBACK_CAPTURE).
//
// Thread-safety: test code; one thread.
#ifndef TAPKIT_REPLAY_RECORD_TESTUTIL_H_
#define TAPKIT_REPLAY_RECORD_TESTUTIL_H_

#include <gtest/gtest.h>

#include <cstdint>
#include <functional>
#include <string>
#include <vector>

namespace tapkit::testing {

// Why this process may not capture on lo, or "" when it may (effective uid 0 and CAP_NET_RAW in
// /proc/self/status's CapEff).
std::string CannotCaptureOnLoopback();

// In a test body: skips with a visible message naming `test` when CannotCaptureOnLoopback() says
// why not.
#define TAPKIT_REQUIRE_LOOPBACK_CAPTURE(test)                                   \
  do {                                                                          \
    if (std::string tapkit_why_ = ::tapkit::testing::CannotCaptureOnLoopback(); \
        !tapkit_why_.empty()) {                                                 \
      GTEST_SKIP() << (test) << ": " << tapkit_why_;                            \
    }                                                                           \
  } while (0)

// Calls `done` every 50 ms until it returns true (true) or 30 s have passed (false).
bool WaitFor(const std::function<bool()>& done);

// Runs `/bin/sh -c command` and returns its exit status (-1 when it did not exit normally).
int Sh(const std::string& command);

// Removes `tap`, runs `taprec -i lo -Z root -w TAP "tcp and host ADDRESS and port PORT"`
// (`taprec`: the path of the program), waits until it has opened `tap`, runs `traffic`, waits 1 s
// for the last packets to reach taprec, and stops it with SIGINT. A failure names what went wrong:
// taprec did not start, did not open `tap` within 30 s, or did not exit 0.
::testing::AssertionResult RecordLoopback(const std::string& taprec, const std::string& address,
                                          uint16_t port, const std::string& tap,
                                          const std::function<void()>& traffic);

// The request lines of nginx access-log lines in the default "combined" format (the first quoted
// field: "GET /api/price?sku=A-1 HTTP/1.1"), sorted.
std::vector<std::string> RequestLines(const std::vector<std::string>& access_log);

}  // namespace tapkit::testing

#endif  // TAPKIT_REPLAY_RECORD_TESTUTIL_H_
