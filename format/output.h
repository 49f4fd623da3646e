// output.h: one way of printing a stream of exchanges (tapcat -o ..., --stat, -V): the seam
// between reading (print.h: files, order, selection, count) and rendering (render.h and the
// exporters). Each output gets the exchanges one at a time in print order and appends bytes to a
// buffer the caller flushes; outputs that wrap their exchanges (a HAR log, a pcap file header,
// a --stat table) write their head in Begin and their tail in Finish.
//
// Thread-safety: an output is used by one thread at a time.
#ifndef TAPKIT_FORMAT_OUTPUT_H_
#define TAPKIT_FORMAT_OUTPUT_H_

#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "format/content_coding.h"
#include "format/exchange_view.h"
#include "format/line_time.h"
#include "format/metadata.h"
#include "format/render.h"
#include "format/stats.h"

namespace tapkit {

// What an output may need to know about its inputs before the first exchange.
struct OutputContext {
  // The capture metadata of each input, in command-line order (borrowed for the output's life).
  std::vector<const CaptureMetadata*> inputs;
  // The earliest capture start over the inputs, nanoseconds since the Unix epoch.
  uint64_t capture_start_ns = 0;
};

struct OutputOptions {
  OutputFormat format = OutputFormat::kText;
  // The time column of text and wide lines (line_time.h); kRelative counts from
  // OutputContext::capture_start_ns. Only text and wide print it.
  TimeFormat time = TimeFormat::kAbsolute;
  // --stat: one table (stats.h) in Finish instead of the exchanges, as text or, with kJson, JSON
  // lines; grouped by workload and route, or by `stat_by`. kWide does not apply.
  bool stat = false;
  StatKey stat_by = StatKey::kRoute;
  // tapcat -V: one block per exchange for a person (verbose.h); only with the text format.
  bool verbose = false;
  // tapcat --body: -o json bodies gain `decoded` (docs/json.md); only with the JSON format.
  bool decoded_bodies = false;
  // At most this many decoded bytes per body, for -V and --body (content_coding.h).
  size_t decode_cap = kDefaultDecodeCap;
};

class ExchangeOutput {
 public:
  virtual ~ExchangeOutput() = default;
  // True when the output reads body bytes (the Reader must load body frames).
  virtual bool NeedsBodies() const = 0;
  // Before the first exchange.
  virtual void Begin(const OutputContext& context, std::string* out) { (void)context, (void)out; }
  // One exchange, in print order.
  virtual void Add(const ExchangeView& x, std::string* out) = 0;
  // After the last exchange (also when there were none).
  virtual void Finish(std::string* out) { (void)out; }
  // After Finish: notices for the user, one line each without the program's name (what an
  // export had to leave out). None by default.
  virtual std::vector<std::string> Notices() const { return {}; }
};

// The output `options` describe. Errors: InvalidArgument for combinations that cannot print
// (--stat with -o wide; -V with -o wide or json, or with --stat; --body without -o json, or
// with --stat).
absl::StatusOr<std::unique_ptr<ExchangeOutput>> MakeOutput(const OutputOptions& options);

}  // namespace tapkit

#endif  // TAPKIT_FORMAT_OUTPUT_H_
