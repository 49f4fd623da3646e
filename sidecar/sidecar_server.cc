#include "sidecar/sidecar_server.h"

#include <grpcpp/grpcpp.h>
#include <sys/stat.h>

#include <chrono>
#include <cstdio>
#include <memory>

#include "absl/strings/str_cat.h"
#include "absl/time/clock.h"
#include "controlplane/api/tap.grpc.pb.h"
#include "sidecar/observer.h"
#include "sidecar/privileges.h"

namespace tapkit {
namespace {

namespace v1 = tapkit::tap::v1;

// About this many bytes of exchanges per message at most (tap.proto: batches).
constexpr size_t kBatchBytes = 1 << 20;

class SidecarService final : public v1::Sidecar::Service {
 public:
  explicit SidecarService(Observer* observer) : observer_(observer) {}

  grpc::Status Observe(grpc::ServerContext* ctx, const v1::ObserveRequest* request,
                       grpc::ServerWriter<v1::ObserveEvents>* writer) override {
    absl::StatusOr<std::shared_ptr<Subscription>> sub = observer_->Subscribe(*request);
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
  Observer* observer_;
};

}  // namespace

absl::Status RunSidecar(const SidecarServerOptions& o, const std::atomic<bool>& stop) {
  if (o.interfaces.empty()) return absl::InvalidArgumentError("no interface to capture (-i)");
  std::string point = o.capture_point.empty() ? o.interfaces.front() : o.capture_point;
  // Before any thread starts (gRPC's, below): no_new_privs and the bounding set are per thread.
  absl::StatusOr<PrivilegeDrop> drop = PrivilegeDrop::Prepare(o.user, "-Z");
  if (!drop.ok()) return drop.status();

  std::string bpf = PodFilter(o.pod_addresses);
  absl::StatusOr<std::unique_ptr<LiveCapture>> capture = LiveCapture::Open(o.interfaces, bpf, o.live);
  if (!capture.ok()) {
    return absl::UnavailableError(absl::StrCat(point, ": ", capture.status().message()));
  }

  ObserverOptions oo;
  oo.capture_point = point;
  oo.capture_point_id = o.capture_point_id;
  oo.pod_addresses = o.pod_addresses;
  oo.engine.http.body_limit = o.body_limit;
  Observer observer(oo);

  SidecarService service(&observer);
  grpc::ServerBuilder builder;
  ::umask(077);  // the unix socket: owner only
  builder.AddListeningPort(o.listen, grpc::InsecureServerCredentials());
  builder.RegisterService(&service);
  std::unique_ptr<grpc::Server> server = builder.BuildAndStart();
  if (!server) {
    return absl::UnavailableError(absl::StrCat(point, ": cannot listen on ", o.listen));
  }
  // All that needs root is done: the capture is open, the socket is bound and listens. What
  // is left works as any user: reading the capture's descriptors, accepting on the socket.
  // At exit gRPC's unlink of the socket fails (its directory is root's, mode 0700); the control
  // plane that made the directory removes it (controlplane/runtime.cc).
  if (absl::Status s = drop->Apply(); !s.ok()) {
    return absl::Status(s.code(), absl::StrCat(point, ": ", s.message()));
  }
  std::string as = drop->will_drop() ? " as user " + drop->user() : "";
  std::fprintf(stderr, "tap-sidecar %s: capturing %zu interface(s) (%s), serving %s%s\n",
               point.c_str(), o.interfaces.size(), bpf.empty() ? "no filter" : bpf.c_str(),
               o.listen.c_str(), as.c_str());

  absl::Status result;
  while (!stop) {
    absl::StatusOr<size_t> n =
        (*capture)->Poll(20, [&](const Frame& f) { observer.OnFrame(f); });
    if (!n.ok()) {
      result = absl::UnavailableError(absl::StrCat(point, ": ", n.status().message()));
      break;
    }
    observer.Tick(static_cast<uint64_t>(absl::GetCurrentTimeNanos()), (*capture)->Stats());
  }
  observer.Finish(static_cast<uint64_t>(absl::GetCurrentTimeNanos()), (*capture)->Stats());
  server->Shutdown(std::chrono::system_clock::now() + std::chrono::seconds(2));
  return result;
}

}  // namespace tapkit
