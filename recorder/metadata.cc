#include "recorder/metadata.h"

#include <unistd.h>

#include "absl/strings/str_cat.h"
#include "absl/time/clock.h"
#include "format/program.h"
#include "format/redact.h"

namespace tapkit {

CaptureMetadata BuildMetadata(const RecordingSetup& s) {
  CaptureMetadata m = NewCaptureMetadata("taprec");
  m.command_line = s.command_line;
  m.target = s.target;
  if (!s.target.empty()) m.ns = s.ns.empty() ? "default" : s.ns;
  for (const auto& [name, value] : s.filters) {
    if (!value.empty()) m.filters.emplace_back(name, value);
  }
  m.body_limit = s.body_limit;
  m.redaction = s.redaction;
  m.capture_points = s.capture_points;
  return m;
}

std::string SummaryLine(uint64_t exchanges, uint64_t drops, uint64_t held_back, bool wrote_file) {
  std::string line = absl::StrCat("taprec: ", exchanges, exchanges == 1 ? " exchange" : " exchanges",
                                  " recorded, ", drops, " dropped");
  if (held_back) absl::StrAppend(&line, ", ", held_back, " held back by --max-rps");
  if (drops && wrote_file) absl::StrAppend(&line, " (tapcat --info for why)");
  line += '\n';
  return line;
}

}  // namespace tapkit
