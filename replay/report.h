// report.h: what tapreplay tells its user about a replay: a readable report, JSON lines, JUnit
// XML, or the live exchanges as a capture. One interface so the tool and the C++ API can send a
// replay to any number of them.
//
// Thread-safety: a report is used from one thread (Replay's observer).
#ifndef TAPKIT_REPLAY_REPORT_H_
#define TAPKIT_REPLAY_REPORT_H_

#include <memory>
#include <optional>
#include <ostream>
#include <string>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "format/redact.h"
#include "replay/replay.h"

namespace tapkit::replay {

class ReplayReport {
 public:
  virtual ~ReplayReport() = default;
  // Called for every replayed exchange, in completion order.
  virtual void Add(const ReplayedExchange& x) = 0;
  // Called once at the end (also after an error or a stop, with what was done). An error
  // names the file the report writes.
  virtual absl::Status Finish(const ReplaySummary& summary) = 0;
};

struct TextReportOptions {
  bool show_matches = false;  // also a line for each exchange that matched (-v)
  int diff_context = 3;       // unified diff context lines
};

// The readable report: for each exchange that differs, a line naming it (method, path, the
// recorded exchange's id, recorded and live status), a line per differing field, and a unified
// diff of the bodies (JSON pretty-printed; control bytes but tab, DEL and the C1 controls as
// \xHH, so a body's terminal escapes are not obeyed; a line over 512 bytes cut to 512 around its
// first difference, "..." where bytes were left out); for each failed request, a line with the
// error; with show_matches, "OK" for a match and "SENT" for an exchange answered but not
// compared (ReplaySummary::not_compared); at the end one summary line.
std::unique_ptr<ReplayReport> MakeTextReport(std::ostream& out, TextReportOptions options = {});

// One JSON object per line for each exchange that differs or failed, and a final summary object
// (the shapes are in docs/json.md, "tapreplay -o json").
std::unique_ptr<ReplayReport> MakeJsonReport(std::ostream& out);

// A JUnit XML file (the shape Jenkins, GitLab and GitHub's test reporters read): one testsuite,
// one testcase per replayed exchange, a <failure> with the differences for each mismatch, an
// <error> for each failed request, a <skipped> for each answered but not compared. Test case
// names read "METHOD PATH [CAPTURE_POINT:STREAM]" (" round N" after the first loop round), class
// names the target ("http://ADDRESS:PORT" the live request went to). Bytes XML 1.0 cannot hold
// are written as \xHH. The test cases are
// spooled to an unnamed file in $TMPDIR (else /tmp) as they come, so memory does not grow with
// the run; Finish writes the document: a regular file (or a new one) to a temporary file beside
// it renamed into place, so a reader never sees half a file; a path that exists and is not a
// regular file (a symbolic link, a FIFO, a device, /dev/stdout) is opened and written into,
// never replaced. Errors, each "--junit PATH: ...": a directory the file cannot be created in
// or a path that cannot be written (PermissionDenied, here, before anything is replayed), no
// temporary file; at Finish, a failed write (DataLoss).
absl::StatusOr<std::unique_ptr<ReplayReport>> MakeJUnitReport(const std::string& path);

// The live exchanges (ReplayedExchange::live) written to `path` ("-" is standard output) as an
// ordinary capture (format/SPEC.md), each carrying the recorded exchange's id (replay_of). The
// header names the target and the inputs. With `redactor` (tapreplay passes the default one,
// BuildRedactor(RedactionOnByDefault()), unless --no-redact) each exchange is redacted before
// it is written and the header records the policy: the live requests carry what --set-header
// added (an Authorization token) and the live answers fresh Set-Cookie values. nullopt writes
// them in clear. Errors name the file.
absl::StatusOr<std::unique_ptr<ReplayReport>> MakeCaptureReport(const std::string& path,
                                                                const ReplayOptions& options,
                                                                std::optional<Redactor> redactor);

}  // namespace tapkit::replay

#endif  // TAPKIT_REPLAY_REPORT_H_
