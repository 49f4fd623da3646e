// tap_service.h: the control plane's public API, Tap.Watch and Tap.Stop
// (controlplane/api/tap.proto).
//
// One Watch call is one tap: it is authenticated (the bearer token, compared in constant time),
// its request validated and its target resolved through the Runtime's Resolver, then a
// TapSession (tap_session.h) runs it: a sidecar per pod, their streams merged, the limits
// enforced, endpoints labelled, pods joining and leaving followed, and an end that says why.
// Every Watch ends with the trailing metadata "tapkit-ended-by: controlplane", so that a client
// tells "the control plane ended the tap" from "the connection to it was lost"; the status is OK
// when the client or the tap's limit ended it, UNAVAILABLE with the reason when the control plane
// did on its own (tap_session.h has the table).
//
// Thread-safety: TapService is a gRPC service; any number of Watch calls run at once, each on
// its own thread, sharing only the Runtime. StopAll may be called from any thread.
#ifndef TAPKIT_CONTROLPLANE_TAP_SERVICE_H_
#define TAPKIT_CONTROLPLANE_TAP_SERVICE_H_

#include <atomic>
#include <map>
#include <mutex>
#include <optional>
#include <string>

#include "controlplane/api/tap.grpc.pb.h"
#include "controlplane/runtime.h"
#include "controlplane/tap_session.h"

namespace tapkit {

class TapService final : public tapkit::tap::v1::Tap::Service {
 public:
  // `token`: the bearer token clients must present ("authorization: Bearer TOKEN" metadata);
  // empty = none asked (the unix socket, whose mode is the access check).
  TapService(Runtime* runtime, std::string token);

  grpc::Status Watch(grpc::ServerContext* context, const tapkit::tap::v1::TapRequest* request,
                     grpc::ServerWriter<tapkit::tap::v1::TapEvents>* writer) override;

  // Tap.Stop: the tap drains (its sidecars finish and send what is open), then its Watch ends.
  grpc::Status Stop(grpc::ServerContext* context, const tapkit::tap::v1::StopRequest* request,
                    tapkit::tap::v1::StopResponse* response) override;

  // Ends every running tap, and every tap that starts from now on, at once: each stream gets a
  // last Stats and ends UNAVAILABLE "the control plane is shutting down (WHY)"; for shutdown.
  // `why`: e.g. "SIGTERM".
  void StopAll(const std::string& why);

 private:
  grpc::Status Authenticate(grpc::ServerContext* context) const;

  Runtime* runtime_;
  std::string token_;
  std::mutex taps_mu_;
  std::optional<std::string> stopping_;      // StopAll's why, under taps_mu_
  std::map<std::string, TapControl*> taps_;  // running taps by id, under taps_mu_
};

// absl status code -> gRPC status, message kept.
grpc::Status ToGrpc(const absl::Status& s);

}  // namespace tapkit

#endif  // TAPKIT_CONTROLPLANE_TAP_SERVICE_H_
