// taprec_live.h: taprec's live mode: a tap of a workload through the control plane
// (`taprec deploy/backend -n demo -w out.tap`), printed as it happens or written to a file.
//
// Thread-safety: RunLive runs on the main thread; it owns the signal handling for its duration.
#ifndef TAPKIT_TOOLS_TAPREC_LIVE_H_
#define TAPKIT_TOOLS_TAPREC_LIVE_H_

#include <cstdint>
#include <string>
#include <vector>

#include "recorder/rotating_writer.h"  // RotationOptions

namespace tapkit {

struct LiveArgs {
  std::string target, ns, selector;
  std::string to, to_namespace, from, from_namespace;
  std::string method, authority, path;
  uint64_t max_requests = 0;
  double max_rps = 0;
  std::string write_path;       // empty: print
  std::string output = "text";  // text, wide, json
  std::string controlplane;     // gRPC target; empty = the default unix socket
  std::string token_file;
  uint64_t body_limit = 64 << 10;
  bool redact = true;
  std::string redact_key_file;
  std::vector<std::string> command_line;
  RotationOptions rotation;  // tcpdump's -C, -G, -W
  // At the end, print on stderr the delay from each exchange's last captured packet to its
  // arrival here (p50, p99, max; wall clock): the tap's delivery latency (bench/live_tap.sh).
  bool delay_report = false;
};

// Returns the exit status: 0 the tap ended (limit reached, Ctrl+C, SIGTERM); 2 bad arguments, an
// unknown target, or the control plane unreachable or lost (the file is finished and valid).
int RunLive(const LiveArgs& args);

}  // namespace tapkit

#endif  // TAPKIT_TOOLS_TAPREC_LIVE_H_
