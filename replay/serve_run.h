// serve_run.h: tapreplay --serve as one library call, as run.h is for replay. The command line's
// values are checked into ServeOptions (serve.h), the captures are read (ReadServedExchanges),
// the mock server runs until SIGINT or SIGTERM, each answered request is logged (serve_log.h),
// and with --upstream and -w the passed-through exchanges are written as a capture, redacted as
// tapreplay -w redacts (capture_report.h). tools/tapreplay.cc parses options and calls
// RunServeTool; docs/replay.md, "Serving a capture", is the user's side of this.
//
// Exit codes (format/program.h):
//   kExitOk     stopped by SIGINT or SIGTERM after serving (the -w capture closed whole);
//   kExitError  a bad flag, an input that cannot be read, an address that cannot be bound, an
//               -w file that cannot be created: one line naming it, before anything is served;
//               or, at the end, a -w capture or the log that could not be written.
//
// Thread-safety: PlanServe, CheckModeFlags and the Parse functions are pure. RunServeTool installs
// SIGINT and SIGTERM handlers while it runs (recorder/stop_signals.h): one at a time per process,
// on the main thread.
#ifndef TAPKIT_REPLAY_SERVE_RUN_H_
#define TAPKIT_REPLAY_SERVE_RUN_H_

#include <cstdint>
#include <optional>
#include <ostream>
#include <set>
#include <string>
#include <string_view>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "format/redact.h"
#include "format/select.h"
#include "replay/run.h"
#include "replay/serve.h"

namespace tapkit::replay {

// tapreplay --serve's flags as written. Numbers and durations are text so that a bad value is
// refused naming its flag; `given` holds the long names of the flags given (as in run.h).
struct ServeToolFlags {
  std::vector<std::string> inputs;        // .tap paths; "-" is standard input
  std::vector<std::string> command_line;  // argv, recorded in the -w capture's header
  std::string serve;                      // --serve ADDR:PORT

  // Matching (replay/match.h).
  std::vector<std::string> match_headers;  // --match-header NAME
  bool match_body = false;                 // --match-body
  std::vector<std::string> ignore_params;  // --ignore-param NAME
  bool match_host = false;                 // --match-host (the host is not in the key otherwise)
  bool strict = false;                     // --strict
  std::string session_header;              // --session-header NAME

  // Answers.
  std::string miss_status;               // --miss-status N (ParseMissStatus)
  std::string delay;                     // --delay recorded|DURATION (at most 1h)
  std::string threads;                   // --threads N, 1..16
  std::string idle_timeout;              // --idle-timeout D: ServeOptions::keepalive_timeout_ns
  std::vector<std::string> set_headers;  // --set-header 'Name: value' (response fields)

  // Pass-through.
  std::string upstream;         // --upstream http://HOST:PORT[/PREFIX]
  bool keep_authority = false;  // --keep-authority
  std::string timeout;          // --timeout D: per passed-through request
  std::string write;            // -w FILE: the passed-through exchanges
  bool no_redact = false;       // --no-redact
  std::string redact_key_file;  // --redact-key-file FILE

  std::string output = "text";  // -o text|json
  SelectionFlags selection;     // what is served
  std::set<std::string> given;
};

enum class ServeLog : uint8_t { kText, kJson };

// What the flags ask for, checked.
struct ServePlan {
  ServeOptions serve;
  ServeLog log = ServeLog::kText;
  Selection selection;
  std::vector<std::string> inputs;
  std::vector<std::string> command_line;
  std::string capture_path;  // -w; empty: none
  // -w's redaction: the default (format/redact.h), keyed with --redact-key-file when given;
  // nullopt with --no-redact.
  std::optional<Redactor> capture_redactor;
  std::vector<std::string> warnings;  // lines to print before serving (the selection's)
};

// The flags of one mode given in the other: with --serve, a flag of replaying against a target
// ("--target cannot be used with --serve (it replays against a live service; --serve stands in
// for one)"); without it, a flag of the mock server ("--match-body goes with --serve (...)").
// `given`: the long names given. OK when the flags agree.
absl::Status CheckModeFlags(const std::set<std::string>& given);

// The flags tapreplay's two modes share (inputs, the command line, --set-header,
// --keep-authority, --timeout, -w, --no-redact, --redact-key-file, -o, the selection and `given`),
// taken from where tools/tapreplay.cc parsed them, into `serve`.
ServeToolFlags WithSharedFlags(ServeToolFlags serve, const ReplayToolFlags& shared);

// --miss-status N: a final status, 200..599 (a 1xx is interim, RFC 9110 section 15.2, and
// cannot end an exchange). Errors name the flag and give the reason that fits the value: "not a
// number", "1xx is interim" (100..199) or "out of range" (any other number).
absl::StatusOr<uint16_t> ParseMissStatus(std::string_view text);

// The start-up notice about redacted recorded values: a capture taken with the default redaction
// (format/redact.h) stores e.g. Set-Cookie as "tapkit-redacted:..." and the mock serves that
// marker as stored, which a browser drops. Counts the `recorded` responses with a header field
// whose whole value is a marker (IsRedactionMarker) and whose name is not replaced by one of
// `set_headers` (names compared case-insensitively, RFC 9110 section 5.1), and returns
//   N recorded responses carry redacted header values (set-cookie, ...): served as their
//   markers; --set-header NAME: VALUE replaces them
// (one line, without the program prefix; the names lower-cased and sorted, at most 5 then
// "..."), or "" when none does. Pure.
std::string RedactedHeadersNotice(const std::vector<Exchange>& recorded,
                                  const std::vector<Header>& set_headers);

// --serve ADDR:PORT: a literal IPv4 address or a bracketed IPv6 one, and a port 0..65535 (0: the
// kernel picks). The mock listens on exactly that address, so no name is resolved. Errors name
// the flag.
absl::Status CheckListenAddress(std::string_view text);

// Checks every flag and builds the plan; the other mode's flags are CheckModeFlags' (the
// caller's: tapreplay runs it once for both modes). Errors (InvalidArgument, one line naming the
// flag and value): no input; --serve missing or not ADDR:PORT; a --match-header or --session-header
// that is not a field name; an empty --ignore-param; --miss-status, --threads, --delay (a fixed
// delay: at most 1 h, the server's cap on a recorded one),
// --idle-timeout or --timeout out of range or unparsable; --upstream not http://; --set-header as
// run.h's ParseSetHeader; -o not text or json; the selection's errors (select.h); flags that would
// be ignored (--timeout, --keep-authority or -w without --upstream; --no-redact or
// --redact-key-file without -w; --no-redact with --redact-key-file); -w - (standard output carries
// the log) or -w naming an input; a key file that cannot be read.
absl::StatusOr<ServePlan> PlanServe(const ServeToolFlags& flags);

// Runs tapreplay --serve (CheckModeFlags is the caller's): PlanServe; reads the inputs (a torn
// tail: a notice line; "-" not a regular file: first "tapreplay: reading standard input to its end
// before serving (a live tap never ends: write it to a file first)"; none selected: "tapreplay:
// nothing to serve: the selection matched none of N exchanges", and it serves all the same);
// opens -w; starts the MockServer; prints
//   tapreplay: serving N recorded exchanges (M skipped) on http://ADDR:PORT
// on `err` (the bound port when 0 was given; M: RecordedResponses::skipped, exchanges that cannot
// be served), then RedactedHeadersNotice's line when there is one; logs each answered request as
// one line on `out`, flushed per line (with several inputs a recorded exchange is named with its
// file: "recorded b.tap#0:1", JSON "input"). The server's on_degraded lines (accepting failing) go
// to `err` as "tapreplay: ..." lines. The log and the -w capture are written by threads of their
// own, so an `out` that blocks never holds the server: at most 65536 lines wait, a line past them
// is dropped and counted; passed-through exchanges for -w wait up to 256 MiB (bodies and fields),
// past it a pass-through waits for the file (none is dropped). On SIGINT or SIGTERM: stops the
// server, closes the capture whole, gives the log at most 5 s to be written and prints
//   tapreplay: served H hits, M misses, P passed through
// (", E upstream errors", ", B bad requests", ", A failed accepts", ", I internal errors" added
// when there were any; a strict sequence used up counts as a miss) on `err`, after "tapreplay: N
// log lines dropped: standard output did not keep up" when lines were dropped or left unwritten
// (not an error: the serving went on). Error lines are prefixed "tapreplay: ". Returns the exit
// code (see the top of this file). `out_blocked` (may be null) is set when `out` had not taken the
// log 5 s after the stop: a thread is then still blocked writing to `out`, which the caller must
// not use or flush again; end the process with std::_Exit (tools/tapreplay.cc does).
int RunServeTool(const ServeToolFlags& flags, std::ostream& out, std::ostream& err,
                 bool* out_blocked = nullptr);

}  // namespace tapkit::replay

#endif  // TAPKIT_REPLAY_SERVE_RUN_H_
