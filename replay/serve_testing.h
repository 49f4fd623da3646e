// serve_testing.h: a capture as the mock of a dependency in a GoogleTest test. The client under
// test talks to a MockServer (replay/serve.h) that answers as the recorded service did, for the
// lifetime of the server object:
//
//   using namespace tapkit::replay::testing;
//   ServedEvents events;  // declared first: it outlives the server
//   std::unique_ptr<tapkit::replay::MockServer> mock =
//       ServeCaptureForTest({"prices.tap"}, ServeOptionsForTest(), events.Callbacks());
//   ASSERT_NE(mock, nullptr);
//   EXPECT_EQ(FetchPrice(mock->url(), "A-1")->amount, 1999);
//   ASSERT_TRUE(events.AwaitCount(1));  // the event comes after the answer
//   EXPECT_THAT(events.All(), AllOf(SizeIs(1), NoMisses()));
//
// A request the capture has no answer for gets 404 with the field Tapkit-Miss saying which
// recorded request came closest (serve.h); NoMisses() fails with those explanations.
//
// Link the CMake target tapkit::serve_testing (tapkit_serve_testing in this tree); it brings
// GoogleTest's gmock.
//
// Thread-safety: ServedEvents may be used from any thread (the server's threads record, the test
// reads; one mutex). The matchers are immutable. ServeCaptureForTest and ServeExchangesForTest
// report failures to the calling thread's test.
#ifndef TAPKIT_REPLAY_SERVE_TESTING_H_
#define TAPKIT_REPLAY_SERVE_TESTING_H_

#include <chrono>
#include <condition_variable>
#include <cstddef>
#include <memory>
#include <mutex>
#include <ostream>
#include <string>
#include <vector>

#include "format/exchange.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "replay/serve.h"

namespace tapkit::replay {

// What GoogleTest prints for a ServeEvent: its line in tapreplay --serve's log
// ("MISS 404 GET /api/stock  no recorded request matches; closest: GET /api/jobs/7 (differs on
// path)  127.0.0.1:40312  0.1ms"; the bytes from the network made terminal-safe).
void PrintTo(const ServeEvent& event, std::ostream* os);

namespace testing {

// The options a test serves with: listen on 127.0.0.1 and a port the kernel picks (port() and
// url() tell which), and the host left out of the request key (match.ignore_host), since the
// client addresses the mock, not the recorded service's authority. Everything else is
// ServeOptions' default (404 for a miss, a key's responses in order then the last again).
ServeOptions ServeOptionsForTest();

// Starts a MockServer serving every exchange of the .tap files `captures` (ReadServedExchanges:
// merged in sort-key order, so sequences follow the recording) with `options`; start from
// ServeOptionsForTest() to change them (an empty `listen` is taken as its 127.0.0.1:0). On an
// error (a capture that cannot be read, an address that cannot be bound) the current test fails
// with a line naming the error (ADD_FAILURE) and the result is null: follow the call with
// ASSERT_NE(mock, nullptr). A torn capture is served up to its damage and the notice is printed
// to standard error.
std::unique_ptr<MockServer> ServeCaptureForTest(const std::vector<std::string>& captures,
                                                ServeOptions options = ServeOptionsForTest(),
                                                ServeCallbacks callbacks = {});

// The same for exchanges built in the test or read otherwise (in recording order: sort them by
// sort_key_ns first).
std::unique_ptr<MockServer> ServeExchangesForTest(std::vector<Exchange> exchanges,
                                                  ServeOptions options = ServeOptionsForTest(),
                                                  ServeCallbacks callbacks = {});

// Records the events of a MockServer (ServeCallbacks::on_event), in the order the server
// reports them. Pass Callbacks() to the server; this object must outlive it (declare it first).
//
// The server reports a request after it has written the answer, so a client can hold the answer
// before its event is recorded: AwaitCount(n) waits for it, or stop the server first (after
// MockServer::Stop no event comes).
class ServedEvents {
 public:
  ServedEvents() = default;
  ServedEvents(const ServedEvents&) = delete;
  ServedEvents& operator=(const ServedEvents&) = delete;

  // Callbacks whose on_event records here (on_recorded empty).
  ServeCallbacks Callbacks();

  // True once at least `n` events are recorded; false when `timeout` passed first.
  bool AwaitCount(size_t n, std::chrono::milliseconds timeout = std::chrono::seconds(10)) const;

  std::vector<ServeEvent> All() const;
  // The requests answered with miss_status: kMiss and kExhausted.
  std::vector<ServeEvent> Misses() const;

 private:
  mutable std::mutex mu_;
  mutable std::condition_variable changed_;
  std::vector<ServeEvent> events_;
};

// Matches events in which every request was answered from the capture or the upstream (kHit,
// kPassThrough). The explanation lists the others (misses, upstream errors, refused requests and
// kBadRecorded: a match whose recorded status cannot be served), one log line each (PrintTo):
// which request found no recorded answer and which recorded request came closest.
//
// No events match too: a client that never reached the mock passes NoMisses() alone. Count the
// requests as well, after waiting for them (or after MockServer::Stop):
//
//   ASSERT_TRUE(events.AwaitCount(3));
//   EXPECT_THAT(events.All(), ::testing::AllOf(::testing::SizeIs(3), NoMisses()));
::testing::Matcher<const std::vector<ServeEvent>&> NoMisses();

}  // namespace testing
}  // namespace tapkit::replay

#endif  // TAPKIT_REPLAY_SERVE_TESTING_H_
