// tap_service.h: the control plane's public API, Tap.Watch (controlplane/api/tap.proto).
//
// One Watch call is one tap: the target resolves to pods through the Runtime; a sidecar starts
// per pod, all at once (each pod streams as soon as its own sidecar is up); each gets the same
// Observe request (the match built from --to/--from, method, authority and path; extraction;
// redaction with one key for the whole tap); their streams are merged in arrival order; endpoints
// are labelled with namespace, pod and workload by address;
// --max-requests is enforced exactly and --max-rps across all pods (exchanges over the rate are
// held back and counted). Both decide when the tap first hears of an exchange (its RequestSeen
// in a live view, else its ExchangeEnded), so a live view never shows a request whose end is
// then held back. Events go out in batches (tap.proto). A sidecar that fails is reported (PodStatus
// LOST) and the tap goes on with the others. The sidecars stop when the tap ends: limit reached,
// Tap.Stop, client gone, shutdown. At the limit and at Tap.Stop the tap drains first: the sidecars
// are asked to finish and their open exchanges and last stats are read before the stream ends.
//
// Thread-safety: TapService is a gRPC service; any number of Watch calls run at once, each on
// its own thread, sharing only the Runtime.
#ifndef TAPKIT_CONTROLPLANE_TAP_SERVICE_H_
#define TAPKIT_CONTROLPLANE_TAP_SERVICE_H_

#include <atomic>
#include <map>
#include <mutex>
#include <string>

#include "controlplane/api/tap.grpc.pb.h"
#include "controlplane/runtime.h"

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

  // Ends every running tap (their streams finish OK after a last Stats); for shutdown.
  void StopAll() { stopping_ = true; }

 private:
  grpc::Status Authenticate(grpc::ServerContext* context) const;

  Runtime* runtime_;
  std::string token_;
  std::atomic<bool> stopping_{false};
  std::mutex taps_mu_;
  std::map<std::string, std::atomic<bool>*> drain_;  // running taps by id -> their drain flag
};

// absl status code -> gRPC status, message kept.
grpc::Status ToGrpc(const absl::Status& s);

}  // namespace tapkit

#endif  // TAPKIT_CONTROLPLANE_TAP_SERVICE_H_
