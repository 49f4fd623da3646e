// run.h: tapreplay as one library call. The command line's values are checked and turned into
// ReplayOptions and reports (text or JSON lines on standard output, JUnit, the live exchanges as
// a capture), the replay runs with SIGINT and SIGTERM caught, and the result becomes the exit
// code. tools/tapreplay.cc is option parsing plus RunReplayTool; what the tool does beyond the
// engine lives here, so the C++ API (replay.h) and the tool cannot drift apart.
//
// Exit codes (format/program.h; docs/replay.md):
//   kExitOk        every replayed exchange answered as recorded (also: nothing was selected);
//   kExitMismatch  at least one exchange differs, or a request failed after the target had
//                  answered an earlier one (a timeout, a reset): the service misbehaved;
//   kExitError     a bad flag (also a second input), an input that cannot be read, a target
//                  that cannot be reached on the first request, a report file or the report's
//                  stream that cannot be written ("write error on standard output: No space
//                  left on device", as tapcat's): one line naming it;
//                  also a run stopped by SIGINT or SIGTERM (below).
// SIGINT or SIGTERM stops sending; the reports are finished with what was replayed (the JUnit
// file and the -w capture are whole), a line says how many requests were sent, and the exit
// code is kExitError: the rest of the capture was never sent. When an input is a stream on
// standard input (taprec -w - | tapreplay -: shadowing, which ends by an interrupt), the exit
// code is what the results say instead.
//
// Thread-safety: PlanReplay and the Parse functions are pure and safe from any thread.
// RunReplayTool installs SIGINT and SIGTERM handlers while it runs (recorder/stop_signals.h):
// one at a time per process, on the main thread.
#ifndef TAPKIT_REPLAY_RUN_H_
#define TAPKIT_REPLAY_RUN_H_

#include <optional>
#include <ostream>
#include <set>
#include <string>
#include <string_view>
#include <vector>

#include "absl/status/statusor.h"
#include "format/exchange.h"
#include "format/redact.h"
#include "format/select.h"
#include "replay/replay.h"

namespace tapkit::replay {

// tapreplay's flags as written on the command line. Numbers and durations are text so that a
// bad value is refused naming its flag. `given` holds the long names of the flags that were
// given (as Boost.Program_options names them: "speed", "max", "output", ...), so that a flag
// given with its default value still counts for the conflict checks.
struct ReplayToolFlags {
  std::vector<std::string> inputs;        // .tap paths; "-" is standard input
  std::vector<std::string> command_line;  // argv, recorded in the -w capture's header
  std::string target;                     // --target http://HOST:PORT
  bool keep_authority = false;            // --keep-authority

  // Pacing: at most one of --speed X, --rate N, --max.
  std::string speed;        // --speed: kMinSpeed..kMaxSpeed (recorded gaps are divided by it)
  std::string rate;         // --rate: requests per second, kMinRate..kMaxRate
  bool max = false;         // --max
  std::string concurrency;  // --concurrency N: 0..kMaxLanes lanes (0 or absent: one per connection)
  std::string loop;         // --loop N >= 1
  std::string sample;       // --sample PERCENT: (0, 100], an optional trailing "%"
  std::string sample_seed;  // --sample-seed N: 0..2^64-1

  // Request edits.
  std::vector<std::string> set_headers;    // --set-header 'Name: value'
  std::vector<std::string> drop_headers;   // --drop-header NAME
  std::vector<std::string> rewrite_paths;  // --rewrite-path 'REGEX=REPLACEMENT'
  bool include_incomplete = false;         // --include-incomplete
  bool send_truncated_bodies = false;      // --send-truncated-bodies

  // Comparison.
  bool no_compare = false;                        // --no-compare
  std::vector<std::string> ignore_headers;        // --ignore-header NAME or /REGEX/
  std::vector<std::string> ignore_json_paths;     // --ignore-json-path POINTER
  std::vector<std::string> unordered_json_paths;  // --unordered-json-path POINTER
  bool no_default_ignore = false;                 // --no-default-ignore
  std::string rules_file;                         // --rules FILE
  std::string redact_key_file;                    // --redact-key-file FILE
  std::string timeout;                            // --timeout D (format/order.h ParseDurationNs)

  // Reports.
  std::string output = "text";  // -o text|json
  std::string junit;            // --junit FILE
  std::string write;            // -w FILE ("-": standard output)
  bool no_redact = false;       // --no-redact: -w writes the live exchanges unredacted
  bool verbose = false;         // -v: a line for each exchange that matched too

  SelectionFlags selection;  // format/select.h's flags
  std::set<std::string> given;
};

enum class ReplayOutput : uint8_t { kText, kJson };

// What the flags ask for, checked.
struct ReplayPlan {
  ReplayOptions replay;  // clock and stop left unset
  ReplayOutput output = ReplayOutput::kText;
  bool show_matches = false;
  std::string junit_path;             // empty: no JUnit file
  std::string capture_path;           // empty: no capture; "-": standard output
  std::vector<std::string> warnings;  // lines to print before replaying (the selection's)
  // -w's redaction: the default one (format/redact.h), keyed with --redact-key-file when given;
  // nullopt with --no-redact.
  std::optional<Redactor> capture_redactor;
};

// Checks every flag and builds the plan. Errors (InvalidArgument, one line naming the flag and
// value, as "--speed 0: not a number above 0"): a value out of range or unparsable; no input;
// a second input (named, with how to merge captures: exchange ids are unique within one);
// no --target; flags that would silently ignore one another ("--speed and --rate cannot be used
// together (...)"; a comparison flag or -v with --no-compare; -v with -o json; --sample-seed
// without --sample; --incomplete without --include-incomplete; --no-redact without -w); -w or
// --junit naming an input or each other; a rules file or key file that cannot be read
// (Comparer::Create's and ReadRedactionKey's errors). --redact-key-file keys both the
// comparison and -w's redaction, so with -w it goes with --no-compare too.
absl::StatusOr<ReplayPlan> PlanReplay(const ReplayToolFlags& flags);

// A flag's long name (as ReplayToolFlags::given holds it) as a user writes it: "-v", "-o", "-w"
// for verbose, output and write; "--NAME" otherwise. For error lines.
std::string WrittenFlag(std::string_view long_name);

// Whether the paths name one file (the same text, or the same device and inode): an output that
// would overwrite an input. A path that does not exist is no other file.
bool SameFile(const std::string& a, const std::string& b);

// --set-header 'Name: value': the name a token (RFC 9110 section 5.6.2), the value with its
// leading and trailing spaces and tabs removed (section 5.5: OWS is not part of the value) and
// without CR, LF or NUL. Errors name the flag.
absl::StatusOr<Header> ParseSetHeader(std::string_view text);

// --rewrite-path 'REGEX=REPLACEMENT': split at the first "=" not escaped by a backslash (a "="
// in the regex is written "\="; RE2 reads "\=" as a literal "="). The regex must compile (RE2)
// and the replacement may name only the regex's groups (\0..\N). Errors name the flag.
absl::StatusOr<PathRewrite> ParsePathRewrite(std::string_view text);

// How both tapreplay modes open: a plan that failed is one line "tapreplay: MESSAGE" on `err`
// (false: exit kExitError); a plan that holds is true after its warnings, one line each,
// "tapreplay: warning: ...". `Plan` has `std::vector<std::string> warnings` (ReplayPlan,
// ServePlan).
template <typename Plan>
bool ToldPlan(const absl::StatusOr<Plan>& plan, std::ostream& err) {
  if (!plan.ok()) {
    err << "tapreplay: " << plan.status().message() << "\n";
    return false;
  }
  for (const std::string& w : plan->warnings) err << "tapreplay: warning: " << w << "\n";
  return true;
}

// Runs tapreplay: PlanReplay, then Replay with the reports the plan names. The readable or JSON
// report goes to `out` (to `err` when -w - takes standard output), flushed after each exchange
// so a shadowing run shows differences as they happen; error lines, prefixed "tapreplay: ", go
// to `err`. A --junit directory that cannot be written is refused before anything is sent. After
// an error that came before any exchange was replayed, the error line is all that is printed
// (the files given to --junit and -w are still finished). Returns the exit code (see the top of
// this file).
int RunReplayTool(const ReplayToolFlags& flags, std::ostream& out, std::ostream& err);

}  // namespace tapkit::replay

#endif  // TAPKIT_REPLAY_RUN_H_
