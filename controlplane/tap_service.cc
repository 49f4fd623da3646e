#include "controlplane/tap_service.h"

#include <grpcpp/grpcpp.h>
#include <openssl/rand.h>

#include <cmath>
#include <utility>
#include <vector>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "controlplane/access.h"

namespace tapkit {

namespace v1 = tapkit::tap::v1;

grpc::Status ToGrpc(const absl::Status& s) {
  return grpc::Status(static_cast<grpc::StatusCode>(static_cast<int>(s.code())),
                      std::string(s.message()));
}

TapService::TapService(Runtime* runtime, std::string token)
    : runtime_(runtime), token_(std::move(token)) {}

grpc::Status TapService::Authenticate(grpc::ServerContext* ctx) const {
  if (token_.empty()) return grpc::Status::OK;
  auto it = ctx->client_metadata().find("authorization");
  if (it == ctx->client_metadata().end()) {
    return grpc::Status(grpc::StatusCode::UNAUTHENTICATED,
                        "this control plane needs a bearer token (taprec --token-file FILE)");
  }
  if (!TokenMatches(std::string(it->second.data(), it->second.size()), "Bearer " + token_)) {
    // Which part was wrong is not said: the comparison is the only thing a client learns from.
    return grpc::Status(grpc::StatusCode::UNAUTHENTICATED,
                        "the bearer token was refused (--token-file holds another token than the "
                        "control plane's)");
  }
  return grpc::Status::OK;
}

grpc::Status TapService::Stop(grpc::ServerContext* ctx, const v1::StopRequest* req,
                              v1::StopResponse*) {
  if (grpc::Status a = Authenticate(ctx); !a.ok()) return a;
  std::lock_guard<std::mutex> l(taps_mu_);
  auto it = taps_.find(req->tap_id());
  if (it == taps_.end()) {
    return grpc::Status(grpc::StatusCode::NOT_FOUND,
                        absl::StrCat("no running tap ", req->tap_id()));
  }
  it->second->Stop();
  return grpc::Status::OK;
}

void TapService::StopAll(const std::string& why) {
  std::lock_guard<std::mutex> l(taps_mu_);
  stopping_ = why;
  for (auto& [id, control] : taps_) control->Shutdown(why);
}

grpc::Status TapService::Watch(grpc::ServerContext* ctx, const v1::TapRequest* req,
                               grpc::ServerWriter<v1::TapEvents>* writer) {
  // Sent with whatever status this returns: a client tells "the control plane ended the tap"
  // from "the connection to it was lost".
  ctx->AddTrailingMetadata("tapkit-ended-by", "controlplane");
  if (grpc::Status a = Authenticate(ctx); !a.ok()) return a;
  if (req->target().empty()) {
    return grpc::Status(grpc::StatusCode::INVALID_ARGUMENT,
                        "no target: name one, e.g. deploy/backend or pod/NAME");
  }
  if (!std::isfinite(req->max_rps()) || req->max_rps() < 0) {
    return grpc::Status(grpc::StatusCode::INVALID_ARGUMENT,
                        absl::StrCat("max_rps ", req->max_rps(), " is not a rate (>= 0)"));
  }
  Resolver* resolver = runtime_->resolver();
  std::string ns = req->namespace_().empty() ? "default" : req->namespace_();
  TapSessionOptions o;
  o.resolved_version = resolver->Version();  // before resolving: a change after it is seen
  absl::StatusOr<std::vector<PodInfo>> pods =
      resolver->Resolve(req->target(), ns, req->label_selector());
  if (!pods.ok()) return ToGrpc(pods.status());
  absl::StatusOr<v1::ObserveRequest> observe = BuildObserveRequest(resolver, *req);
  if (!observe.ok()) return ToGrpc(observe.status());
  o.observe = *std::move(observe);
  o.request = *req;
  o.request.set_namespace_(ns);

  // The tap's id, for Tap.Stop; registered while the tap runs.
  unsigned char raw[8];
  if (RAND_bytes(raw, sizeof raw) != 1) {
    return grpc::Status(grpc::StatusCode::INTERNAL,
                        "cannot make a tap id (the random number generator failed)");
  }
  for (unsigned char c : raw) absl::StrAppend(&o.tap_id, absl::Hex(c, absl::kZeroPad2));
  TapControl control;
  {
    std::lock_guard<std::mutex> l(taps_mu_);
    if (stopping_) control.Shutdown(*stopping_);
    taps_[o.tap_id] = &control;
  }
  struct Unregister {
    TapService* self;
    const std::string id;
    ~Unregister() {
      std::lock_guard<std::mutex> l(self->taps_mu_);
      self->taps_.erase(id);
    }
  } unregister{this, o.tap_id};

  TapSession session(runtime_, std::move(o), *std::move(pods));
  TapEnd end = session.Run([writer](const v1::TapEvents& e) { return writer->Write(e); }, &control,
                           [ctx] { return ctx->IsCancelled(); });
  return end.Status(req->target(), ns);
}

}  // namespace tapkit
