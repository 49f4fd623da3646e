// replay.h: sends recorded requests to a live service and compares its answers (tapreplay, and
// the C++ API for regression tests: replay/testing.h).
//
// Replay reads exchanges from .tap files or a live stream on standard input (taprec -w -), in
// sort-key order, picks them with the selection flags (format/select.h) and the sampling, and
// sends each recorded request (method, path with query, header fields, body) to the target over
// keep-alive HTTP/1.1 connections with libcurl's multi interface:
//   - Host is the target's authority unless keep_authority; hop-by-hop fields (RFC 9110 section
//     7.6.1: Connection and the fields it names, Keep-Alive, Proxy-Connection, TE, Trailer,
//     Transfer-Encoding, Upgrade) are dropped and the body is re-framed with Content-Length;
//   - a request field whose value is a redaction marker is dropped (and counted) unless
//     set_headers supplies that field;
//   - incomplete recorded exchanges (no response, gap, reset, ...) are skipped and counted
//     unless include_incomplete (one without a request is always skipped);
//   - a recorded request body that was not stored whole (Body::truncated, or fewer bytes than
//     its length: cut at the body limit, or emptied by redaction, format/redact.h) is skipped
//     and counted unless send_truncated_bodies, which sends its stored bytes;
//   - pacing: the recorded gaps divided by `speed`, or `rate` requests per second, or as fast as
//     the target answers (the C++ API's default, kMax; tapreplay's default is kRecorded); at
//     most `concurrency` requests in flight. A due time past about 146 years is held there;
//   - redaction markers in the path or the body cannot be undone: they are sent as recorded and
//     counted (redacted_values_sent).
// Ordering: with concurrency 0 the requests of one recorded TCP connection are sent in their
// recorded order, one at a time, on one lane (one easy handle, hence one keep-alive connection
// at a time), and lanes for different recorded connections run in parallel (at most
// kMaxLanes; past that, a new recorded connection waits for an idle lane and takes it over on a
// new keep-alive connection: two recorded connections never share one). With concurrency N > 0, N lanes take the requests in sort-key order, each the
// next free one: the recorded connections are spread.
// Loops: with loop N the input is read N times; round r + 1 starts one mean recorded gap after
// round r's last request (recorded pacing), or just follows it (rate and max).
//
// Each replayed exchange is handed to the observer as it completes (completion order), with its
// comparison when comparison is on; Replay returns the summary.
//
// Thread-safety: Replay runs on the calling thread and calls the observer there; one Replay per
// ReplayOptions at a time (the clock is the caller's).
#ifndef TAPKIT_REPLAY_REPLAY_H_
#define TAPKIT_REPLAY_REPLAY_H_

#include <cstdint>
#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "format/exchange.h"
#include "format/select.h"
#include "replay/compare.h"

namespace tapkit::replay {

// The time source under pacing: the steady clock in tools, a fake one in tests (pacing checked
// exactly, docs/architecture.md section 1's seams).
class ReplayClock {
 public:
  virtual ~ReplayClock() = default;
  // Monotonic nanoseconds.
  virtual int64_t NowNs() = 0;
  // Waits until NowNs() >= deadline_ns, or earlier when I/O may be ready: a real clock calls
  // poll_io once with the milliseconds left (libcurl's curl_multi_poll); a fake clock calls it
  // with 0 and then moves its time to deadline_ns.
  virtual void WaitUntil(int64_t deadline_ns,
                         const std::function<void(int timeout_ms)>& poll_io) = 0;
};

// The process's steady clock. Thread-safe.
ReplayClock* SteadyClock();

// A clock that moves only when waited on: NowNs() starts at `start_ns`. Not thread-safe.
class FakeClock : public ReplayClock {
 public:
  explicit FakeClock(int64_t start_ns = 0) : now_(start_ns) {}
  int64_t NowNs() override { return now_; }
  void WaitUntil(int64_t deadline_ns, const std::function<void(int)>& poll_io) override;

 private:
  int64_t now_;
};

enum class Pacing : uint8_t { kRecorded, kRate, kMax };

// --rewrite-path 'REGEX=REPLACEMENT': RE2 regex on the path with query, every match replaced
// (RE2::GlobalReplace; \1 names a group).
struct PathRewrite {
  std::string regex;
  std::string replacement;
};

inline constexpr int kMaxLanes = 256;
// The pacing bounds (--speed, --rate): outside them a due time is meaningless (a 1 s gap at
// speed 1e-10 is 317 years).
inline constexpr double kMinSpeed = 0.001;
inline constexpr double kMaxSpeed = 1000;
inline constexpr double kMinRate = 0.001;  // requests per second
inline constexpr double kMaxRate = 10'000'000;

struct ReplayOptions {
  // The input: one .tap path, or "-" for standard input (a live stream is read as it grows).
  // A path that is not a regular file (a pipe, bash's <(...)) is read as a stream too. More than
  // one is refused (exchange ids are unique within one capture only; merge several with
  // tapfilter a.tap b.tap -w - first). A vector for the capture report's header.
  std::vector<std::string> inputs;
  // "http://HOST:PORT" (a path prefix is not allowed). Required.
  std::string target;
  bool keep_authority = false;  // keep the recorded Host instead of the target's authority
  // The command that asked for the replay (argv), for the -w capture's header; may be empty.
  std::vector<std::string> command_line;

  // What to replay.
  // Bound to the inputs by Replay. -c N: at most N exchanges sent per round (counted after the
  // incomplete rule and the sampling).
  Selection selection;
  bool include_incomplete = false;  // also replay exchanges that did not complete
  // Also send requests whose recorded body was not stored whole, as their stored bytes (a
  // prefix, or nothing when redaction dropped the body).
  bool send_truncated_bodies = false;
  double sample_percent = 100.0;  // (0, 100]: a hash of the exchange id and sample_seed decides
  uint64_t sample_seed = 0;
  int loop = 1;  // rounds (>= 1); a stream (stdin, a pipe) allows 1 only

  // Pacing. The default sends as fast as the target answers, so that a test replaying a capture
  // with long recorded gaps does not sleep through them; kRecorded replays the gaps.
  Pacing pacing = Pacing::kMax;
  double speed = 1.0;   // kRecorded: recorded gaps are divided by it, kMinSpeed..kMaxSpeed
  double rate = 0;      // kRate: requests per second, kMinRate..kMaxRate
  int concurrency = 0;  // 0..kMaxLanes. 0: a lane per recorded connection; N: N lanes, spread

  // Request edits for environment differences.
  std::vector<Header> set_headers;        // replace (or add) these fields
  std::vector<std::string> drop_headers;  // remove these fields (any case)
  std::vector<PathRewrite> path_rewrites;

  // Comparison (off: only send, as a load or shadow tool).
  bool compare = true;
  CompareOptions compare_options;

  int64_t timeout_ns = 30'000'000'000;  // per request, from send to the response's last byte

  // Input notices that are not errors, as tapcat prints them ("FILE: offset N: notice: torn
  // tail: ..."), one line each without the program name; called on Replay's thread, round 0
  // only. Null: not reported.
  std::function<void(const std::string&)> notice;

  // Seams.
  ReplayClock* clock = nullptr;  // null: SteadyClock()
  std::function<bool()> stop;    // polled between requests; true ends the replay (SIGINT)
};

// One replayed exchange, as the observer receives it.
struct ReplayedExchange {
  const Exchange* recorded = nullptr;  // as read from the input (valid during the callback)
  // The request as sent and the response as received, as an ordinary exchange: times from the
  // steady-clock send and libcurl's timings, endpoints from the connection, capture point 0
  // ("replay"), replay_of = the recorded exchange's id. No response when `error` is set.
  Exchange live;
  std::string error;  // a transport error (libcurl's words), empty when a response came
  std::optional<Comparison> comparison;   // when comparison is on and a response came
  int round = 0;                          // 0-based loop round
  int64_t due_ns = 0;                     // clock time the pacing asked for
  int64_t sent_ns = 0;                    // clock time the request was handed to libcurl
  uint64_t redacted_headers_dropped = 0;  // marker-valued request fields left out
  uint64_t redacted_values_sent = 0;      // markers sent in the path and the body
};

struct ReplaySummary {
  uint64_t read = 0;                    // exchanges read from the inputs, every round
  uint64_t selected_out = 0;            // refused by the selection
  uint64_t sampled_out = 0;             // left out by --sample
  uint64_t skipped_incomplete = 0;      // incomplete and not include_incomplete
  uint64_t skipped_truncated_body = 0;  // request body not stored whole, not send_truncated_bodies
  uint64_t sent = 0;
  uint64_t matched = 0;
  uint64_t mismatched = 0;
  uint64_t errors = 0;  // transport errors (timeouts, resets)
  // Answered but not compared: comparison off, or recorded without a response (sent with
  // include_incomplete). sent = matched + mismatched + errors + not_compared.
  uint64_t not_compared = 0;
  uint64_t redacted_headers_dropped = 0;
  uint64_t redacted_values_sent = 0;  // redaction markers sent in paths and bodies (as recorded)
  uint64_t body_prefix_compared = 0;  // recorded bodies not stored whole, compared on their bytes
  int64_t elapsed_ns = 0;
  bool stopped = false;  // options.stop ended it
};

using ReplayObserver = std::function<void(const ReplayedExchange&)>;

// Runs the replay. Errors (the status; nothing more is sent): bad options (naming the field as
// its flag: "--target", "--rate", ...; a second input, named), an input that cannot be read
// (naming the file and offset; also a file of which not one segment could be read, as a torn tail
// right after its header), a target that refuses, resets or does not answer the first request
// before any answer came ("--target http://127.0.0.1:9: connection refused"), a --rewrite-path that
// turns a valid recorded request target into an invalid one (empty, a space, CR, LF or NUL, or no
// longer starting with "/"). Transport errors after the first answer are counted in `errors` and
// reported per exchange.
absl::StatusOr<ReplaySummary> Replay(const ReplayOptions& options, const ReplayObserver& observer);

// What the C++ API's callers want in one call: the replayed exchanges that did not match (or
// failed), with the summary. Holds the first kMaxKeptMismatches of them only (each holds both
// exchanges and the diff texts); the rest are counted in mismatches_not_kept.
inline constexpr size_t kMaxKeptMismatches = 1000;
struct ReplayResult {
  ReplaySummary summary;
  std::vector<ReplayedExchange> mismatches;  // recorded points into `recorded` below
  std::vector<std::unique_ptr<Exchange>> recorded;
  uint64_t mismatches_not_kept = 0;  // past kMaxKeptMismatches
  bool ok() const { return summary.mismatched == 0 && summary.errors == 0; }
};

// Replays `capture` (a .tap path) against `target` with `options` (inputs and target are set
// from the arguments). Default options send as fast as the target answers (Pacing::kMax).
absl::StatusOr<ReplayResult> ReplayCapture(const std::string& capture, const std::string& target,
                                           ReplayOptions options = {});

}  // namespace tapkit::replay

#endif  // TAPKIT_REPLAY_REPLAY_H_
