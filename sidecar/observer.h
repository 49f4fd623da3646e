// observer.h: the heart of the tap sidecar: one capture engine over the pod's frames, and the
// subscribers (Observe streams) that receive the events matching their request.
//
// The capture thread feeds frames (OnFrame) and calls Tick regularly; for each subscriber the
// match is evaluated when a request's headers are seen, before any event is built, and again at
// the end for exchanges whose request was not captured. Events go into a bounded queue per
// subscriber: the capture thread never waits for a slow client; what does not fit is dropped and
// counted (Stats.events_dropped). Stats are kept in a slot of their own, never dropped. Secrets
// (header values, query parameters, JSON body fields; format/redact.h) are redacted before an
// event is built, as each subscriber asked: a RequestSeen's path too.
//
// Thread-safety: OnFrame, Tick, Finish and Subscribe belong to the capture thread (Subscribe may
// also be called from others: it takes the lock); a Subscription's Next and Cancel may be called
// from one other thread (the RPC's).
#ifndef TAPKIT_SIDECAR_OBSERVER_H_
#define TAPKIT_SIDECAR_OBSERVER_H_

#include <condition_variable>
#include <cstdint>
#include <deque>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <unordered_map>
#include <unordered_set>
#include <vector>

#include "absl/status/statusor.h"
#include "controlplane/api/tap.pb.h"
#include "sidecar/engine.h"
#include "sidecar/live_capture.h"
#include "sidecar/match.h"
#include "format/redact.h"

namespace tapkit {

struct ObserverOptions {
  std::string capture_point;               // "namespace/pod" (events' ExchangeId.capture_point)
  uint32_t capture_point_id = 0;           // Exchange.capture_point in the encoding
  std::vector<std::string> pod_addresses;  // the pod's IPs: they decide inbound/outbound
  EngineOptions engine;
  size_t queue_events = 8192;  // per subscriber
};

class Observer;

// One Observe stream's view. Next() hands out the waiting events in order, as one batch.
class Subscription {
 public:
  // Waits at most `timeout_ms` (milliseconds) for something to send, then moves into `*batch`
  // (cleared first) the pending stats, if any, and the queued events, oldest first, until about
  // `max_bytes` bytes of exchange data are in it (at least one event). Returns whether anything
  // was added. `*ended` is set once nothing more will come (limit reached, Cancel, the observer
  // finished) and everything queued was taken.
  bool Next(int timeout_ms, size_t max_bytes, tapkit::tap::v1::ObserveEvents* batch, bool* ended);
  void Cancel();

 private:
  friend class Observer;
  tapkit::tap::v1::ObserveRequest request;
  CompiledMatch match;
  std::optional<Redactor> redactor;
  std::unordered_set<uint64_t> matched;  // stream ids matched at the request (capture thread)
  uint64_t admitted = 0;                 // exchanges given a place under the limit (capture)
  uint64_t sent = 0;                     // exchanges queued (capture thread)
  uint64_t dropped = 0;                  // under mu
  uint64_t next_stats_ns = 0;            // capture thread
  std::mutex mu;
  std::condition_variable cv;
  std::deque<tapkit::tap::v1::ObserveEvent> queue;
  std::optional<tapkit::tap::v1::ObserveEvent> stats;  // the latest, sent before queued events
  bool done = false;                                   // no more events will be queued
  bool cancelled = false;                              // the client went away
};

class Observer {
 public:
  explicit Observer(ObserverOptions options);
  ~Observer();

  // A new subscriber. InvalidArgument for a malformed match (match.h).
  absl::StatusOr<std::shared_ptr<Subscription>> Subscribe(
      const tapkit::tap::v1::ObserveRequest& request);

  // Capture thread: frames, then Tick after each bunch of them (every few milliseconds at
  // most): it wakes the readers of what was queued since the last Tick, so that everything one
  // bunch of frames completed goes out as one batch, and does the periodic work (stats every
  // stats_interval, dropping subscriptions that were cancelled). `now_ns`: wall clock,
  // nanoseconds since the epoch.
  void OnFrame(const Frame& frame);
  void Tick(uint64_t now_ns, const KernelStats& kernel);
  // The capture ends: open exchanges are written ("capture ended"), a last Stats goes to every
  // subscriber, and their streams end.
  void Finish(uint64_t now_ns, const KernelStats& kernel);

  size_t subscribers() const;

 private:
  void OnRequestHeaders(const Exchange& x, uint64_t id, uint64_t ts_ns);
  void OnResponseHeaders(const Exchange& x, uint64_t id, uint16_t status, uint64_t ts_ns);
  void OnExchange(Exchange&& x);
  // The request's `limit` counts exchanges in the order their requests were seen (as the
  // control plane's --max-requests does): an exchange takes a place when its request matches,
  // or at its end if its request was not seen. False when the places are taken.
  bool Admit(Subscription& s);
  void Push(Subscription& s, tapkit::tap::v1::ObserveEvent&& e);
  tapkit::tap::v1::ObserveEvent MakeStats(const Subscription& s, const KernelStats& k) const;
  Direction DirectionOf(const Exchange& x) const;

  ObserverOptions options_;
  std::unique_ptr<CaptureEngine> engine_;
  std::vector<IpAddress> pod_ips_;
  std::unordered_map<uint64_t, uint64_t> request_ts_;  // stream id -> request first byte (ns)
  mutable std::mutex mu_;                              // guards subs_
  std::vector<std::shared_ptr<Subscription>> subs_;
  uint64_t matched_ = 0;
  uint64_t last_ts_ns_ = 0;
};

}  // namespace tapkit

#endif  // TAPKIT_SIDECAR_OBSERVER_H_
