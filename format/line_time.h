// line_time.h: the time column at the head of tapcat's text and wide lines (`-t`, `--time`), in
// tcpdump's spirit: absolute by default, none with -t, or relative to the capture's start, the
// delta from the previous printed line, or Unix epoch seconds (tcpdump -tt).
//
// Every line is stamped with the time of the event it reports (docs/architecture.md section 2):
//   req          the request's first byte (the sort key, `tapcat -o json`'s requestTime)
//   rsp interim  the request's first byte + that interim response's offset
//   rsp          the final response's first byte (requestTime + responseStartNs)
//   end          the last byte seen of the exchange (requestTime + the largest of requestEndNs,
//                responseStartNs and responseEndNs)
// Times are printed in whole microseconds, as tcpdump does; a fraction is cut, not rounded
// (toward zero for the signed relative and delta forms).
//
// Thread-safety: a LineClock holds the previous line's time; use one per output, one thread at a
// time. ParseTimeFormat uses only its argument.
#ifndef TAPKIT_FORMAT_LINE_TIME_H_
#define TAPKIT_FORMAT_LINE_TIME_H_

#include <cstdint>
#include <string>
#include <string_view>

#include "absl/status/statusor.h"

namespace tapkit {

enum class TimeFormat {
  kNone,      // -t: no column (linkerd tap's layout exactly)
  kAbsolute,  // "2025-11-30T00:00:00.123456Z": RFC 3339, UTC (the default)
  kRelative,  // "12.345678": seconds since the capture's start
  kDelta,     // "0.000312": seconds since the previous printed line (0.000000 on the first)
  kEpoch,     // "1764460800.123456": seconds since the Unix epoch (tcpdump -tt)
};

// The --time word: "absolute", "relative", "delta" or "epoch" ("none" is -t). Errors:
// InvalidArgument "--time WORD: unknown time format (absolute, relative, delta, epoch)".
absl::StatusOr<TimeFormat> ParseTimeFormat(std::string_view word);

class LineClock {
 public:
  // `capture_start_ns`: the capture's start, nanoseconds since the Unix epoch, for kRelative. A
  // start of 0 (not recorded), or one later than the first stamped line (a file taprec -r made
  // from a pcap records when taprec ran, after the packets), is replaced by the first stamped
  // line's time, so relative times then count from the first printed line as tcpdump -ttttt does.
  LineClock(TimeFormat format, uint64_t capture_start_ns);

  TimeFormat format() const { return format_; }

  // Appends the column for an event at `unix_ns` (nanoseconds since the Unix epoch) and one
  // space; appends nothing for kNone.
  void Stamp(uint64_t unix_ns, std::string* out);

 private:
  TimeFormat format_;
  uint64_t start_ns_;
  uint64_t previous_ns_ = 0;
  bool stamped_ = false;
};

}  // namespace tapkit

#endif  // TAPKIT_FORMAT_LINE_TIME_H_
