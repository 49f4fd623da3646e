// order.h: the exchanges of one or more .tap inputs in sort-key (request-start) order, as tapcat
// prints them and tapfilter merges them (docs/architecture.md section 3, "Order").
//
// Files are written in completion order, so sort keys are only nearly ordered. ExchangeSource
// puts them in order:
//   - an input with a trailer index (a seekable file whose footer verified) is read segment by
//     segment in the order of the segments' smallest sort key (Reader::ReadSegment); an exchange
//     is released once no unread segment can hold an earlier one, so the order is exact and only
//     the segments whose key ranges overlap are held in memory;
//   - any other input (a pipe, a file without a trailer, a followed file) is read in file order
//     through a reorder window: an exchange is released once the input has moved past its sort
//     key by the window. One that arrives after something later was released is released at
//     once and counted (late()); with a window of 0 exchanges are released as read and nothing
//     is counted.
//   - several inputs are merged (as mergecap does): an exchange is released when it is earlier
//     than what every input may still hold. Ties are broken by capture point, stream id, then
//     input order (the order of `files`), so the output is deterministic.
// With `file_order`, each input is read as stored, one after another (tapcat --file-order).
//
// The keep predicate runs on every exchange as soon as it is read, before it is held, so a
// narrow selection holds (and a caller copies) only what it keeps; the others are counted as
// selected_out(). Damage and notices go to each input's Reporter as the Reader reports them.
//
// Thread-safety: not thread-safe; one thread at a time. Views from Next() are valid until the
// next call of Next().
#ifndef TAPKIT_FORMAT_ORDER_H_
#define TAPKIT_FORMAT_ORDER_H_

#include <cstdint>
#include <functional>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "format/exchange_view.h"
#include "format/reader.h"

namespace tapkit {

// tapcat's default --reorder-window: 10 seconds, in nanoseconds.
inline constexpr int64_t kDefaultReorderWindowNs = 10'000'000'000;

struct OrderOptions {
  std::vector<std::string> files;  // paths; "-" is standard input (at most once)
  bool file_order = false;         // as stored, input after input
  // Nanoseconds (>= 0) for inputs without an index.
  int64_t reorder_window_ns = kDefaultReorderWindowNs;
  bool headers_only = false;  // ReaderOptions::headers_only for every input
  // Follow growing files (tapcat -f): every input in sort-key order, the last one with
  // file_order. Next() then waits for more data, polling every `poll_interval_ns`, until `stop`
  // returns true; whatever is still held is then released and Next() returns false. An input
  // whose file header is not yet written (empty, cut short: reader.h) is waited for at Open,
  // polling as above until `stop`; an open that `stop` interrupted (a FIFO without a writer,
  // EINTR) ends that input with no error.
  bool follow = false;
  int64_t poll_interval_ns = 100'000'000;
  std::function<bool()> stop;  // may be null (never stop)
  // Which exchanges to keep; null keeps all. Called once per exchange, in file order per input.
  std::function<bool(const ExchangeView&)> keep;
  // The Reporter for the input named `name` (the file's name as ReadableFile gives it); null
  // or a null result: reported nowhere. The Reporter must outlive the source.
  std::function<Reporter*(const std::string& name)> reporter_for;
  // Told about an input that cannot be opened (the Reader::Open or OpenReadableFile error, which
  // names the file); the other inputs are still read. Null: the error is dropped.
  std::function<void(const absl::Status&)> open_error;
};

class ExchangeSource {
 public:
  // Opens the inputs (with file_order, each when it is reached). Errors: InvalidArgument for a
  // negative window or "-" given twice; an input that fails to open is told to `open_error`.
  static absl::StatusOr<std::unique_ptr<ExchangeSource>> Open(OrderOptions options);
  ~ExchangeSource();
  ExchangeSource(const ExchangeSource&) = delete;
  ExchangeSource& operator=(const ExchangeSource&) = delete;

  // The next kept exchange; `*input` (if not null) is the index in `files` it came from. False
  // when every input has ended (or, following, once stopped).
  bool Next(ExchangeView* out, size_t* input = nullptr);

  // Inputs as given; reader(i) is null for one that could not be opened (or, with file_order,
  // is not reached yet). Its status() and summary() are what the caller reports at the end.
  size_t inputs() const;
  const Reader* reader(size_t i) const;

  uint64_t late() const;          // released out of order, after the reorder window
  uint64_t selected_out() const;  // refused by `keep`
  // The most exchanges held at once (waiting for their turn), and the most segments they kept
  // alive: what the memory bound is about.
  uint64_t max_held_exchanges() const;
  uint64_t max_held_segments() const;

 private:
  ExchangeSource();
  struct Impl;
  std::unique_ptr<Impl> impl_;
};

// The notice about late exchanges, without a program prefix: "3 exchanges arrived after the 10s
// reorder window and printed out of order".
std::string LateNotice(uint64_t late, int64_t window_ns);

// A duration as tapcat's flags take it: a decimal number and a unit, ns, us, ms, s, m or h
// ("10s", "500ms", "1.5s", "0"; a bare 0 needs no unit). Nanoseconds; InvalidArgument naming
// the text otherwise (negative, no unit, over 2^63 ns).
absl::StatusOr<int64_t> ParseDurationNs(std::string_view text);
// The reverse, for messages: "10s", "500ms", "1.5s", "250us", "0s".
std::string FormatDurationNs(int64_t ns);

}  // namespace tapkit

#endif  // TAPKIT_FORMAT_ORDER_H_
