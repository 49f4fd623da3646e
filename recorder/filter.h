// filter.h: tapfilter, new .tap files cut from existing ones: the exchanges of every input merged
// in sort-key order (format/order.h, as mergecap merges pcaps), those a selection keeps, each
// passed through a redaction, written with -C rotation as taprec writes (rotating_writer.h).
//
// The output's header (format/metadata.h CaptureMetadata) says where it came from:
//   writer_name "tapfilter"; start_time_ns the earliest input's; target and ns the inputs' when
//   they all agree; body_limit the largest input's;
//   filters: the inputs' own filters when they all agree, then the selection applied here;
//   extra: ("tapfilter.source", name) for every input in order (standard input is "<stdin>"),
//   then FilterRedaction::description;
//   redaction: on when every input was redacted (with the header names, query parameters and
//   JSON pointers they all redacted) or when a redaction is applied here (its lists added);
//   capture_points: every input's, renumbered when several inputs are merged so that ids stay
//   unique: input k's ids are shifted by the ids the inputs before it used (its largest id + 1);
//   the exchanges' capture_point moves with them.
// The trailer carries the inputs' drops and counters, summed by name, plus the counter
// `selected_out`: exchanges the selection left out (a counter, not a drop). With -C each file's
// trailer holds the sums as they stood when it closed: the inputs' totals from their trailers
// (an indexed input's at the start, a streamed input's once its trailer was read) and
// selected_out so far.
//
// Thread-safety: FilterCaptures uses only its arguments (the writer has a thread of its own) and,
// while it runs, the process's SIGINT and SIGTERM handlers: one call at a time per process, on
// the main thread (stop_signals.h).
#ifndef TAPKIT_RECORDER_FILTER_H_
#define TAPKIT_RECORDER_FILTER_H_

#include <cstdint>
#include <cstdio>
#include <functional>
#include <map>
#include <string>
#include <utility>
#include <vector>

#include "absl/status/status.h"
#include "format/exchange.h"
#include "format/exchange_view.h"
#include "format/metadata.h"
#include "format/order.h"

namespace tapkit {

// The redaction hook: what tapfilter's redaction flags build (format/redact.h).
struct FilterRedaction {
  // Applied to every exchange kept, before it is written; null applies none. An error ends the
  // run (nothing after it is written; the output gets its trailer).
  std::function<absl::Status(Exchange*)> apply;
  // What it redacts, for the output header: header names, query parameters, JSON pointers, and
  // whether its key came from a key file (format/redact.h Redactor::policy()).
  RedactionPolicy policy;
  // Adds its totals (e.g. "redaction_bodies_dropped") to the trailer's counters; may be null.
  // Called on the thread that calls FilterCaptures.
  std::function<void(std::map<std::string, uint64_t>*)> counters;
  // Recorded in the header's extra, e.g. {"tapfilter.redact-query-param", "token"}.
  std::vector<std::pair<std::string, std::string>> description;
};

struct FilterOptions {
  std::vector<std::string> inputs;  // .tap paths; "-" is standard input
  std::string output;               // -w; "-" is standard output
  uint64_t max_bytes = 0;           // -C in bytes (rotating_writer.h); 0: one file
  int64_t count = -1;               // -c: at most this many exchanges written; -1: no limit
  int64_t reorder_window_ns = kDefaultReorderWindowNs;  // inputs without an index (order.h)
  std::vector<std::string> command_line;                // argv, for the header
  // The selection hook: which exchanges to keep (null keeps all), and how it reads as
  // (flag, value) pairs for the header's filters.
  std::function<bool(const ExchangeView&)> keep;
  std::vector<std::pair<std::string, std::string>> selection;
  // Called once the inputs are open, before `keep` sees an exchange, with their readers (null
  // for one that could not be opened): a selection binds to them there (format/select.h Bind).
  // An error ends the run before anything is written. Null: nothing to bind.
  std::function<absl::Status(const std::vector<const Reader*>&)> bind;
  FilterRedaction redaction;
  std::string program = "tapfilter";  // error and damage lines begin with it
};

struct FilterSummary {
  uint64_t exchanges = 0;     // written
  uint64_t selected_out = 0;  // left out by the selection
  uint64_t files = 0;         // output files opened (-C)
  uint64_t late = 0;          // released after the reorder window (order.h)
};

// Runs tapfilter. While it runs, SIGINT and SIGTERM stop it cleanly (stop_signals.h): no more
// exchanges are read, the output is finished (index, trailer) and the result is Cancelled,
// "interrupted by SIGINT: N exchanges written; the output ends there, with its index and
// trailer" (an interrupted copy is incomplete, so it is an error: exit 2). Damage in an input
// is reported on `err` as it is met (print.h LineReporter: one line naming the file and offset)
// and what can be read is written; an input that cannot be opened is reported there too and left
// out. Errors: InvalidArgument for bad options (no input, -C with standard output, "-" read
// twice); FailedPrecondition when the output is one of the inputs; the output's errors; DataLoss (after writing whatever could be read) when an input was
// damaged or could not be opened, its message counting them (the lines were printed already).
absl::Status FilterCaptures(const FilterOptions& options, std::FILE* err, FilterSummary* summary);

}  // namespace tapkit

#endif  // TAPKIT_RECORDER_FILTER_H_
