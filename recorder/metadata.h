// metadata.h: the header of every file taprec writes (format/metadata.h CaptureMetadata), built
// in one place for offline recording (-r, -i; record_capture.h) and live taps (tap_client.h):
// writer "taprec" at tapkit::kVersion, this host, the start time, the command line, the filters,
// the body limit and the redaction policy.
//
// Thread-safety: a pure function of its argument (but for the clock and the host name).
#ifndef TAPKIT_RECORDER_METADATA_H_
#define TAPKIT_RECORDER_METADATA_H_

#include <cstdint>
#include <string>
#include <utility>
#include <vector>

#include "format/format.h"
#include "format/metadata.h"
#include "format/redact.h"

namespace tapkit {

// What a recording is: the parts of the header that differ between runs.
struct RecordingSetup {
  std::vector<std::string> command_line;  // argv as given
  std::string target;                     // live: "deploy/backend"; empty offline
  std::string ns;                         // live: the target's namespace ("" = "default")
  // (name, value) in the order given; pairs with an empty value are left out.
  std::vector<std::pair<std::string, std::string>> filters;
  uint64_t body_limit = format::kDefaultBodyLimit;  // bytes of each body kept
  // What is redacted (Redactor::policy(), format/redact.h); {} when redaction is off.
  RedactionPolicy redaction = DefaultRedactionPolicy();
  std::vector<CapturePointInfo> capture_points;     // offline: the file or interface
};

// The header: start_time_ns now (wall clock, nanoseconds since the epoch), writer_name "taprec",
// writer_version kVersion, host gethostname(2) (empty if it fails); the rest, the redaction
// policy included, copied from `setup`.
CaptureMetadata BuildMetadata(const RecordingSetup& setup);

// The line every recording ends with on stderr, offline or live, as tcpdump's "N packets
// captured": "taprec: 3 exchanges recorded, 0 dropped\n" ("1 exchange"; with held_back, ", 2 held
// back by --max-rps"; with drops and a file written, " (tapcat --info for why)"). `drops` sums the
// trailer's drop counters, which count packets, bytes or exchanges each (docs/json.md).
std::string SummaryLine(uint64_t exchanges, uint64_t drops, uint64_t held_back, bool wrote_file);

}  // namespace tapkit

#endif  // TAPKIT_RECORDER_METADATA_H_
