// tap-sidecar: the temporary, passive tap beside one pod (docs/architecture.md sections 1 and 5).
//
//   tap-sidecar --listen unix:/run/x.sock --interface lo --pod-address 127.0.20.1
//               [--capture-point demo/backend-1] [--capture-point-id N] [--snaplen-body BYTES]
//               [-Z USER]
//
// Captures the pod's interfaces with libpcap (live, handed over within milliseconds: a 2 ms
// TPACKET_V3 block timeout, or --immediate; BPF narrowed to the pod's
// addresses), runs the capture engine over the frames and serves Sidecar.Observe
// (controlplane/api/tap.proto) to whoever connects: in practice the control plane that started
// it. It never touches the traffic. Once the capture is open and the socket listens, a sidecar
// started as root becomes an unprivileged user (-Z, default nobody; sidecar/privileges.h): it
// keeps its open capture and its listening socket, which are all it needs. SIGTERM or SIGINT: every
// stream gets its last stats and ends, then the process exits 0. Exit 2: bad arguments; exit 1:
// capture could not start or failed.
#include <atomic>
#include <boost/program_options.hpp>
#include <csignal>
#include <cstdio>
#include <iostream>
#include <string>
#include <vector>

#include "format/format.h"
#include "format/program.h"
#include "sidecar/sidecar_server.h"

namespace po = boost::program_options;

namespace {

std::atomic<bool> g_stop{false};
void OnSignal(int) { g_stop = true; }

}  // namespace

int main(int argc, char** argv) {
  std::string listen, capture_point, user;
  std::vector<std::string> interfaces, addresses;
  uint32_t capture_point_id = 0;
  uint64_t body_limit = tapkit::format::kDefaultBodyLimit;
  tapkit::LiveOptions live;
  po::options_description opts(
      "Usage: tap-sidecar --listen ADDR -i IFACE [--pod-address IP ...] [options]\n"
      "The passive tap beside one pod: captures its traffic with libpcap and serves the HTTP\n"
      "exchanges seen to the control plane (Sidecar.Observe). Started by tap-controlplane.\n\n"
      "Options");
  opts.add_options()("help,h", "this help")("version", "print the version and exit")(
      "listen", po::value(&listen)->required(),
      "where to serve Sidecar.Observe: unix:PATH (created mode 0600) or HOST:PORT")(
      "interface,i", po::value(&interfaces)->required(), "interface to capture (repeatable)")(
      "pod-address", po::value(&addresses), "the pod's IP address (repeatable): the BPF filter")(
      "capture-point", po::value(&capture_point), "name of this capture point: namespace/pod")(
      "capture-point-id", po::value(&capture_point_id), "number of this capture point in files")(
      "snaplen-body", po::value(&body_limit), "bytes of each body kept (default 65536)")(
      "immediate", po::bool_switch(&live.immediate),
      "libpcap's immediate mode: each packet handed over alone (more CPU, a buffer that holds "
      "fewer packets)")("block-timeout-ms", po::value(&live.block_timeout_ms),
                        "without --immediate: hand packets over at most this many ms after "
                        "capture (default 2)")(
      "relinquish-privileges,Z", po::value(&user),
      "when started as root: once the capture is open and the socket listens, become USER "
      "(its uid, gid and groups; no capabilities left). Default nobody; -Z root keeps root");
  po::variables_map vm;
  try {
    po::store(po::parse_command_line(argc, argv, opts, tapkit::kCommandLineStyle), vm);
    if (vm.count("help")) {
      std::cout << opts << "\n";
      return tapkit::kExitOk;
    }
    if (vm.count("version")) {
      std::cout << tapkit::VersionLine("tap-sidecar");
      return tapkit::kExitOk;
    }
    po::notify(vm);
  } catch (const po::error& e) {
    std::fprintf(stderr, "tap-sidecar: %s (try --help)\n", e.what());
    return tapkit::kExitError;
  }
  tapkit::SidecarServerOptions o;
  o.listen = listen;
  o.interfaces = interfaces;
  o.pod_addresses = addresses;
  o.capture_point = capture_point;
  o.capture_point_id = capture_point_id;
  o.body_limit = body_limit;
  o.live = live;
  o.user = user;
  std::signal(SIGTERM, OnSignal);
  std::signal(SIGINT, OnSignal);
  std::signal(SIGPIPE, SIG_IGN);
  absl::Status s = tapkit::RunSidecar(o, g_stop);
  if (s.ok()) return tapkit::kExitOk;
  // Exit 2: bad arguments; 1: the capture failed (its messages begin with the capture point).
  bool usage = absl::IsInvalidArgument(s);
  std::fprintf(stderr, "tap-sidecar%s %s\n", usage ? ":" : "", std::string(s.message()).c_str());
  return usage ? tapkit::kExitError : 1;
}
