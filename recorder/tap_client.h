// tap_client.h: taprec TARGET: a live tap of a workload through the control plane
// (`taprec deploy/backend -n demo -w out.tap`): Tap.Watch over gRPC (controlplane/api/tap.proto),
// printed as it happens (linkerd's req, rsp and end lines, or JSON) or written to .tap files by a
// Recorder (recorder.h), which opens its file only once the tap has started (TapStarted), so
// that a refused tap (unknown target, wrong token, no control plane) leaves no file behind.
//
// How the tap ends, and what RunTap returns:
//   OK           the user or taprec's own limits ended it: a stop request (Ctrl+C, SIGINT or
//                SIGTERM to taprec: Tap.Stop, then the stream ends; a second request or 5 s
//                without an end cancels it), -c or --max-requests reached, -W files written
//                (-G), or the reader of standard output went away (`taprec ... | head`).
//   Unavailable  the control plane ended it on its own: "the control plane ended the tap" (a
//                stream ended with an error and trailing metadata tapkit-ended-by, as at its
//                shutdown; or one that ended OK though nobody asked and no limit was reached, as
//                an older control plane ends at SIGTERM), "lost the control plane at ADDR" (the
//                stream dropped), "cannot reach
//                the control plane at ADDR".
//   others       the control plane's refusal (NotFound for an unknown target, Unauthenticated,
//                InvalidArgument...), with its message; a write error (the file's, or
//                "standard output: ..."); --token-file unreadable; the redaction flags'
//                errors (BuildRedactor: a bad JSON pointer, the key file).
// The file, once opened, is always finished (trailer written). With a file, the end prints
// "taprec: N exchanges recorded, M dropped" on `err`.
//
// Thread-safety: RunTap runs on the calling thread and starts one thread of its own (the stop
// watcher); without `stop` it owns SIGINT, SIGTERM and SIGPIPE for its duration. One call at a
// time per process.
#ifndef TAPKIT_RECORDER_TAP_CLIENT_H_
#define TAPKIT_RECORDER_TAP_CLIENT_H_

#include <atomic>
#include <cstdint>
#include <cstdio>
#include <string>
#include <string_view>
#include <vector>

#include "absl/status/status.h"
#include "format/format.h"
#include "format/redact.h"
#include "format/render.h"
#include "format/select.h"
#include "recorder/rotating_writer.h"

namespace tapkit {

struct TapOptions {
  std::string target;  // "deploy/backend", "pod/x", "svc/y", "ns/z", ...
  std::string ns;      // the target's namespace ("" = "default")
  std::string selector;
  std::string to, to_namespace, from, from_namespace;
  std::string method, authority, path;  // path: a prefix
  // What the sidecars cannot evaluate (Selection::ForTap's rest: --status, latency, headers,
  // --since/--until, --incomplete, ...), matched here on each ended exchange, bound to the tap's
  // start. When it is not empty, req and rsp lines wait for the end (whether an exchange is
  // selected is known only then), and -c counts here (`count`), not at the control plane.
  Selection selection;
  uint64_t count = 0;                   // -c with a selection here: selected exchanges; 0 = none
  uint64_t max_requests = 0;            // exchanges in all (--max-requests, -c); 0 = no limit
  double max_rps = 0;                   // exchanges per second, all pods together; 0 = no limit
  std::string write_path;               // -w ("-" = standard output); empty = print
  OutputFormat output = OutputFormat::kText;  // printing (ParseOutputFormat)
  std::string controlplane;             // gRPC target; empty = ControlPlaneAddressForClient()
  std::string token_file;               // bearer token (a control plane on TCP)
  uint64_t body_limit = format::kDefaultBodyLimit;  // bytes of each body kept
  // Sent to the sidecars, which redact (format/redact.h BuildRedactor); on unless --no-redact.
  RedactionFlags redaction = RedactionOnByDefault();
  std::vector<std::string> command_line;  // for the file's header
  RotationOptions rotation;               // -C, -G (wall clock), -W; `notice` goes to `err`
  // At the end, the delay from each exchange's last captured packet to its arrival here (p50,
  // p99, max; wall clock): the tap's delivery latency (bench/live_tap.sh).
  bool delay_report = false;
  // Stop requests, counted (from another thread or a signal handler): 1 stops the tap
  // gracefully, 2 cancels it. Null: SIGINT and SIGTERM count into an internal counter.
  std::atomic<int>* stop = nullptr;
  std::FILE* out = stdout;  // printed exchanges
  std::FILE* err = stderr;  // "tapping pod", warnings, progress (a terminal), the summary
};

// Taps until one of the ends above; see there for the Status.
absl::Status RunTap(const TapOptions& options);

// SuggestMethod, which RunTap's warning uses, is format/select.h's.

}  // namespace tapkit

#endif  // TAPKIT_RECORDER_TAP_CLIENT_H_
