#include "format/line_time.h"

#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "absl/time/time.h"

namespace tapkit {
namespace {

constexpr uint64_t kNsPerSecond = 1'000'000'000;

// "S.UUUUUU" for `ns` nanoseconds, microseconds cut.
void AppendSeconds(uint64_t ns, std::string* out) {
  absl::StrAppendFormat(out, "%d.%06d", ns / kNsPerSecond, ns % kNsPerSecond / 1000);
}

// `a - b` in seconds, with a '-' when b is later.
void AppendSigned(uint64_t a, uint64_t b, std::string* out) {
  if (a >= b) {
    AppendSeconds(a - b, out);
  } else {
    out->push_back('-');
    AppendSeconds(b - a, out);
  }
}

}  // namespace

absl::StatusOr<TimeFormat> ParseTimeFormat(std::string_view word) {
  if (word == "absolute") return TimeFormat::kAbsolute;
  if (word == "relative") return TimeFormat::kRelative;
  if (word == "delta") return TimeFormat::kDelta;
  if (word == "epoch") return TimeFormat::kEpoch;
  return absl::InvalidArgumentError(absl::StrCat(
      "--time ", std::string(word), ": unknown time format (absolute, relative, delta, epoch)"));
}

LineClock::LineClock(TimeFormat format, uint64_t capture_start_ns)
    : format_(format), start_ns_(capture_start_ns) {}

void LineClock::Stamp(uint64_t unix_ns, std::string* out) {
  if (format_ == TimeFormat::kNone) return;
  if (!stamped_) {
    if (start_ns_ == 0 || start_ns_ > unix_ns) start_ns_ = unix_ns;
    previous_ns_ = unix_ns;
    stamped_ = true;
  }
  switch (format_) {
    case TimeFormat::kNone:
      break;
    case TimeFormat::kAbsolute: {
      // Whole seconds through absl (UTC, proleptic Gregorian), microseconds appended, so the
      // fraction is cut rather than rounded up into the next second. Split as Rfc3339 does so
      // times past 2^63 ns still print.
      absl::Time t = absl::FromUnixSeconds(static_cast<int64_t>(unix_ns / kNsPerSecond));
      absl::StrAppend(out, absl::FormatTime("%Y-%m-%dT%H:%M:%S", t, absl::UTCTimeZone()));
      absl::StrAppendFormat(out, ".%06dZ", unix_ns % kNsPerSecond / 1000);
      break;
    }
    case TimeFormat::kRelative:
      AppendSigned(unix_ns, start_ns_, out);
      break;
    case TimeFormat::kDelta:
      AppendSigned(unix_ns, previous_ns_, out);
      break;
    case TimeFormat::kEpoch:
      AppendSeconds(unix_ns, out);
      break;
  }
  previous_ns_ = unix_ns;
  out->push_back(' ');
}

}  // namespace tapkit
