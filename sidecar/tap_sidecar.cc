// tap-sidecar: the temporary, passive tap beside one pod (DESIGN.md sections 1 and 5).
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
#include <grpcpp/grpcpp.h>
#include <sys/stat.h>
#include <unistd.h>

#include <atomic>
#include <boost/program_options.hpp>
#include <chrono>
#include <csignal>
#include <cstdio>
#include <iostream>
#include <string>
#include <thread>
#include <vector>

#include "absl/time/clock.h"
#include "controlplane/api/tap.grpc.pb.h"
#include "format/format.h"
#include "format/program.h"
#include "sidecar/live_capture.h"
#include "sidecar/observer.h"
#include "sidecar/privileges.h"

namespace po = boost::program_options;
namespace v1 = tapkit::tap::v1;

namespace {

std::atomic<bool> g_stop{false};
void OnSignal(int) { g_stop = true; }

// About this many bytes of exchanges per message at most (tap.proto: batches).
constexpr size_t kBatchBytes = 1 << 20;

class SidecarService final : public v1::Sidecar::Service {
 public:
  explicit SidecarService(tapkit::Observer* observer) : observer_(observer) {}

  grpc::Status Observe(grpc::ServerContext* ctx, const v1::ObserveRequest* request,
                       grpc::ServerWriter<v1::ObserveEvents>* writer) override {
    absl::StatusOr<std::shared_ptr<tapkit::Subscription>> sub = observer_->Subscribe(*request);
    if (!sub.ok()) {
      return grpc::Status(grpc::StatusCode::INVALID_ARGUMENT, std::string(sub.status().message()));
    }
    v1::ObserveEvents batch;
    for (;;) {
      bool ended = false;
      bool any = (*sub)->Next(100, kBatchBytes, &batch, &ended);
      if (ctx->IsCancelled()) {
        (*sub)->Cancel();
        return grpc::Status::CANCELLED;
      }
      if (any && !writer->Write(batch)) {  // the client went away
        (*sub)->Cancel();
        return grpc::Status::CANCELLED;
      }
      if (ended) return grpc::Status::OK;
    }
  }

 private:
  tapkit::Observer* observer_;
};

}  // namespace

int main(int argc, char** argv) {
  std::string listen, capture_point, user;
  std::vector<std::string> interfaces, addresses;
  uint32_t capture_point_id = 0;
  uint64_t body_limit = tapkit::format::kDefaultBodyLimit;
  tapkit::LiveOptions live;
  po::options_description opts("tap-sidecar options");
  opts.add_options()("help,h", "this help")(
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
    po::store(po::parse_command_line(argc, argv, opts), vm);
    if (vm.count("help")) {
      std::cout << opts << "\n";
      return 0;
    }
    po::notify(vm);
  } catch (const po::error& e) {
    std::fprintf(stderr, "tap-sidecar: %s\n", e.what());
    return 2;
  }
  if (capture_point.empty()) capture_point = interfaces.front();
  // Before any thread starts (gRPC's, below): no_new_privs and the bounding set are per thread.
  absl::StatusOr<tapkit::PrivilegeDrop> drop = tapkit::PrivilegeDrop::Prepare(user, "-Z");
  if (!drop.ok()) {
    std::fprintf(stderr, "tap-sidecar: %s\n", std::string(drop.status().message()).c_str());
    return 2;
  }

  std::string bpf = tapkit::PodFilter(addresses);
  absl::StatusOr<std::unique_ptr<tapkit::LiveCapture>> capture =
      tapkit::LiveCapture::Open(interfaces, bpf, live);
  if (!capture.ok()) {
    std::fprintf(stderr, "tap-sidecar %s: %s\n", capture_point.c_str(),
                 std::string(capture.status().message()).c_str());
    return 1;
  }

  tapkit::ObserverOptions oo;
  oo.capture_point = capture_point;
  oo.capture_point_id = capture_point_id;
  oo.pod_addresses = addresses;
  oo.engine.http.body_limit = body_limit;
  tapkit::Observer observer(oo);

  std::signal(SIGTERM, OnSignal);
  std::signal(SIGINT, OnSignal);
  std::signal(SIGPIPE, SIG_IGN);

  SidecarService service(&observer);
  grpc::ServerBuilder builder;
  ::umask(077);  // the unix socket: owner only
  builder.AddListeningPort(listen, grpc::InsecureServerCredentials());
  builder.RegisterService(&service);
  std::unique_ptr<grpc::Server> server = builder.BuildAndStart();
  if (!server) {
    std::fprintf(stderr, "tap-sidecar %s: cannot listen on %s\n", capture_point.c_str(),
                 listen.c_str());
    return 1;
  }
  // All that needs root is done: the capture is open, the socket is bound and listens. What
  // is left works as any user: reading the capture's descriptors, accepting on the socket.
  // At exit gRPC's unlink of the socket fails (its directory is root's, mode 0700); the control
  // plane that made the directory removes it (controlplane/runtime.cc).
  if (absl::Status s = drop->Apply(); !s.ok()) {
    std::fprintf(stderr, "tap-sidecar %s: %s\n", capture_point.c_str(),
                 std::string(s.message()).c_str());
    return 1;
  }
  std::string as = drop->will_drop() ? " as user " + drop->user() : "";
  std::fprintf(stderr, "tap-sidecar %s: capturing %zu interface(s) (%s), serving %s%s\n",
               capture_point.c_str(), interfaces.size(), bpf.empty() ? "no filter" : bpf.c_str(),
               listen.c_str(), as.c_str());

  int rc = 0;
  while (!g_stop) {
    absl::StatusOr<size_t> n =
        (*capture)->Poll(20, [&](const tapkit::Frame& f) { observer.OnFrame(f); });
    if (!n.ok()) {
      std::fprintf(stderr, "tap-sidecar %s: %s\n", capture_point.c_str(),
                   std::string(n.status().message()).c_str());
      rc = 1;
      break;
    }
    observer.Tick(static_cast<uint64_t>(absl::GetCurrentTimeNanos()), (*capture)->Stats());
  }
  observer.Finish(static_cast<uint64_t>(absl::GetCurrentTimeNanos()), (*capture)->Stats());
  server->Shutdown(std::chrono::system_clock::now() + std::chrono::seconds(2));
  return rc;
}
