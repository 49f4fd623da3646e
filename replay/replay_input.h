// replay_input.h (private to replay/): the recorded exchanges a replay sends, read on a thread of
// their own so that a live stream on standard input never holds up the requests in flight.
//
// The reader opens the inputs (format/order.h's ExchangeSource), binds the selection, and for
// each round hands the engine the exchanges to send, in sort-key order, as owned exchanges:
// selected (Selection::Matches, -c counted on what is sent), complete unless include_incomplete,
// sampled in (SampledIn), and with the request body stored whole unless send_truncated_bodies.
// Round 0 hands over the inputs' notices (a torn tail) as kNotice items; an input of which not
// one segment could be read, though it reported a notice, is a kError naming it. Round 0 is kept in memory when it holds less than
// kRoundCacheBytes, and later rounds are served from there; otherwise each round reads the inputs
// again. A stream on standard input is read without a reorder window (file order), so a shadowed
// request goes out as soon as its exchange arrives.
//
// Thread-safety: Take, Cancel and the destructor belong to the engine's thread; the reader's
// thread only pushes (under the queue's mutex) and calls `wake`.
#ifndef TAPKIT_REPLAY_REPLAY_INPUT_H_
#define TAPKIT_REPLAY_REPLAY_INPUT_H_

#include <cstdint>
#include <deque>
#include <functional>
#include <memory>
#include <string>

#include "absl/status/status.h"
#include "format/exchange.h"
#include "replay/replay.h"

namespace tapkit::replay::internal {

// Round 0 is replayed from memory when its exchanges (headers and bodies) take less than this.
inline constexpr uint64_t kRoundCacheBytes = 256ull << 20;
// Exchanges waiting between the reader and the engine, at most.
inline constexpr size_t kInputQueueLimit = 1024;

// Whether --sample keeps the exchange `id`: XXH3-64 of (capture point as 4 bytes and stream id
// as 8, little-endian) seeded with `seed`, reduced modulo 10^6, below percent * 10^4. Stable
// across runs, hosts and versions: a rerun with the same seed replays the same sample.
bool SampledIn(const ExchangeId& id, double percent, uint64_t seed);

// True when `path` is read as a stream: "-" (standard input) or anything that is not a regular
// file (a pipe such as bash's <(...), a FIFO, a character device), by stat(2). A stream has no
// reorder window (it is replayed as it arrives), is read once (no --loop) and is not waited for
// when the replay ends early: a blocked read() cannot be interrupted.
bool IsStreamInput(const std::string& path);

// What one round read, sent at its end.
struct RoundCounts {
  uint64_t read = 0;
  uint64_t selected_out = 0;
  uint64_t sampled_out = 0;
  uint64_t skipped_incomplete = 0;
  uint64_t skipped_truncated_body = 0;
  uint64_t taken = 0;         // handed to the engine
  uint64_t first_key_ns = 0;  // smallest and largest sort key taken (0 when none)
  uint64_t last_key_ns = 0;
};

struct InputItem {
  enum class Kind : uint8_t { kExchange, kRoundEnd, kEnd, kError, kNotice };
  Kind kind = Kind::kExchange;
  int round = 0;
  std::shared_ptr<const Exchange> exchange;  // kExchange
  RoundCounts counts;                        // kRoundEnd
  absl::Status error;                        // kError: names the file (and offset)
  std::string notice;                        // kNotice: "FILE: offset N: notice: ..."
};

class InputReader {
 public:
  // Starts the reader's thread over options.inputs (options is copied). `wake` is called after
  // items were queued (the engine's curl_multi_wakeup); it must stay callable until Cancel.
  // `cache_limit` is kRoundCacheBytes but in tests.
  static std::unique_ptr<InputReader> Start(const ReplayOptions& options,
                                            std::function<void()> wake,
                                            uint64_t cache_limit = kRoundCacheBytes);
  ~InputReader();  // Cancel()

  // Moves up to `max` queued items to `out`; never blocks.
  size_t Take(std::deque<InputItem>* out, size_t max);
  // Stops the reader: joins its thread, or leaves it to end on its own when it is blocked
  // reading a stream (IsStreamInput; it owns everything it touches). `wake` is not called afterwards.
  void Cancel();

  struct State;

 private:
  InputReader() = default;
  std::shared_ptr<State> state_;
};

}  // namespace tapkit::replay::internal

#endif  // TAPKIT_REPLAY_REPLAY_INPUT_H_
