// tap_session.h: one tap of the control plane (one Tap.Watch call), made of small parts that are
// tested on their own (tap_session_test.cc, with fake sidecars and a fake resolver):
//
//   PodFanOut    fan-out: one sidecar per pod (Runtime::StartSidecar), each pod's Observe stream
//                read on a thread of its own into the merge; pods join and leave while it runs.
//   MergeQueue   merge: the events of every pod in arrival order, bounded (a reader waits when
//                the client falls behind; the sidecar then drops and counts in its own queue).
//   Admission    limits: --max-requests exactly and --max-rps as a token bucket over an
//                injected Clock, decided once per exchange when the tap first hears of it.
//   EndpointLabeller  labels: Resolver::LabelsFor by address, cached per address until the
//                resolver's version changes, as the proto's label map.
//   TapEnd       ending: why the tap ended, and the gRPC status that says so.
//   TapSession   the loop that joins them: starts the pods, follows the resolver's pods (a pod
//                that appears gets a sidecar, one that leaves has its stream ended), applies the
//                limits and labels, batches events to the client, and ends.
//
// How a tap ends (TapEnd::reason) and what the client sees (status; every Watch also carries the
// trailing metadata "tapkit-ended-by: controlplane", added by TapService):
//   kLimitReached     --max-requests exchanges were sent; the tap drained.       OK
//   kStopAsked        Tap.Stop (the client's Ctrl+C); the tap drained.            OK
//   kClientGone       the client cancelled or stopped reading.                    CANCELLED
//   kShutdown         the control plane is stopping (SIGTERM/SIGINT).             UNAVAILABLE
//                     "the control plane is shutting down (SIGTERM)"
//   kNoSidecar        no sidecar of the tap could be started.                     UNAVAILABLE
//   kSidecarsGone     every pod's stream ended or was lost, and not because the
//                     tap asked (sidecars killed, pods removed).                  UNAVAILABLE
// Draining (limit, Tap.Stop): every sidecar is asked to finish (Sidecar::Terminate); what they
// still send (open exchanges as "capture ended", last stats) is read until their streams end, for
// at most TapSessionOptions::drain_ms.
//
// Pods joining and leaving: the session polls Resolver::Version() (every resolve_interval_ms) and,
// when it changed, resolves the tap's target again. A pod (namespace, name and address) that is
// new is started as at the tap's start (PodStatus STARTING, then STREAMING); one that is gone is
// asked to finish and its stream ends (PodStatus ENDED). The tap's own Stats (capture_point "")
// count them in counters "pods_added" and "pods_removed" (present once not zero). --to and --from
// are resolved once, at the start: the match the sidecars got does not change.
//
// Thread-safety: MergeQueue, TapControl and PodFanOut's methods may be called from any thread;
// Admission, EndpointLabeller and TapSession belong to the one thread that runs the tap.
#ifndef TAPKIT_CONTROLPLANE_TAP_SESSION_H_
#define TAPKIT_CONTROLPLANE_TAP_SESSION_H_

#include <atomic>
#include <chrono>
#include <condition_variable>
#include <cstdint>
#include <deque>
#include <functional>
#include <map>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <thread>
#include <unordered_map>
#include <vector>

#include "absl/status/statusor.h"
#include "controlplane/api/tap.grpc.pb.h"
#include "controlplane/resolver.h"
#include "controlplane/runtime.h"

namespace tapkit {

namespace tapv1 = tapkit::tap::v1;

// ---------------------------------------------------------------------------------------------
// Merge.

// One event in the merge, with the capture point (pod stream) it came from.
struct MergedEvent {
  uint32_t capture_point_id = 0;
  tapv1::TapEvent event;
};

// The events of every pod of one tap, in arrival order. A pusher waits while `capacity` or more
// are waiting, then adds its whole batch: at most `capacity` plus one batch per pod stream wait
// (a sidecar's message holds up to about 1 MiB of exchanges).
class MergeQueue {
 public:
  explicit MergeQueue(size_t capacity = 65536) : capacity_(capacity) {}
  // Appends `events` (emptied), first waiting while `capacity` or more are waiting, until there
  // is room or Close(). After Close() the events are dropped. Returns false when closed.
  bool Push(std::vector<MergedEvent>* events);
  bool Push(MergedEvent&& e);
  // Moves everything waiting into `out` (cleared first), waiting up to `timeout` for something;
  // false if nothing came.
  bool Pop(std::vector<MergedEvent>* out, std::chrono::milliseconds timeout);
  // Wakes and fails every waiting and future Push.
  void Close();
  size_t size();

 private:
  const size_t capacity_;
  std::mutex mu_;
  std::condition_variable ready_, space_;
  std::deque<MergedEvent> q_;
  bool closed_ = false;
};

// ---------------------------------------------------------------------------------------------
// Limits.

// Monotonic time, injected so that the rate limit is tested without sleeping.
class Clock {
 public:
  virtual ~Clock() = default;
  virtual std::chrono::steady_clock::time_point Now() = 0;
  static Clock* Steady();  // the real one (std::chrono::steady_clock); lives forever
};

// A token bucket over exchanges: `rate` per second (0 = unlimited), a burst of max(1, rate),
// starting full.
class TokenBucket {
 public:
  TokenBucket(double rate, Clock* clock);
  bool Take();

 private:
  double rate_, tokens_;
  Clock* clock_;
  std::chrono::steady_clock::time_point last_;
};

// Whether each exchange goes to the client, decided once, when the tap first hears of it: its
// RequestSeen in a live view (so that no `req` line is shown whose end is then held back), else
// its ExchangeEnded. Over --max-requests: counted as "over_max_requests"; over --max-rps: held
// back (counted). A capture point that ended gives back the places of its admitted exchanges
// that never ended.
class Admission {
 public:
  // `max_requests` 0 = none; `max_rps` 0 = none; `clock` outlives this.
  Admission(uint64_t max_requests, double max_rps, Clock* clock);
  bool OnRequest(const tapv1::ExchangeId& id);
  bool OnResponse(const tapv1::ExchangeId& id);  // as its request was decided; false if unseen
  bool OnExchange(const tapv1::ExchangeId& id);  // admitted ones count as sent
  void ForgetCapturePoint(uint32_t capture_point_id);
  // --max-requests exchanges were sent.
  bool LimitReached() const { return max_requests_ && sent_ >= max_requests_; }
  uint64_t sent() const { return sent_; }
  uint64_t held_back() const { return held_back_; }
  uint64_t over_limit() const { return over_limit_; }
  size_t undecided_open() const { return decided_.size(); }

 private:
  static uint64_t Key(const tapv1::ExchangeId& id) {
    return (uint64_t{id.capture_point_id()} << 40) ^ id.stream_id();
  }
  bool Admit();
  uint64_t max_requests_;
  TokenBucket rate_;
  std::unordered_map<uint64_t, bool> decided_;  // by Key; erased at the exchange's end
  uint64_t admitted_ = 0, sent_ = 0, held_back_ = 0, over_limit_ = 0;
};

// ---------------------------------------------------------------------------------------------
// Labels.

// Linkerd-style resource labels for endpoints (keys namespace, pod, workload_kind, workload,
// service; empty values left out), from Resolver::LabelsFor, computed once per address while the
// resolver's version stays the same (an event's endpoints are labelled on the tap's hot path).
class EndpointLabeller {
 public:
  explicit EndpointLabeller(Resolver* resolver) : resolver_(resolver) {}
  void Label(tapv1::Endpoint* e);
  // Forget every cached address (the resolver's answers changed).
  void Clear() { cache_.clear(); }

 private:
  Resolver* resolver_;
  std::unordered_map<std::string, std::vector<std::pair<std::string, std::string>>> cache_;
};

// ---------------------------------------------------------------------------------------------
// Fan-out.

// The pods of one tap and their streams. Each Add starts the pod's sidecar on a thread of its
// own, then reads its Observe stream into `merged` (PodStatus STREAMING at its first message,
// ENDED or LOST at its end). Events carry the pod's capture point id (1, 2, ... in order of Add).
class PodFanOut {
 public:
  // `runtime`, `observe` and `merged` outlive this. `body_limit`: bytes of each body kept.
  PodFanOut(Runtime* runtime, const tapv1::ObserveRequest* observe, uint64_t body_limit,
            MergeQueue* merged);
  ~PodFanOut();  // StopAll()
  PodFanOut(const PodFanOut&) = delete;
  PodFanOut& operator=(const PodFanOut&) = delete;

  // Starts the pod's stream; returns its capture point id.
  uint32_t Add(const PodInfo& pod);
  // The pod left: its sidecar is asked to finish; its stream ends with ENDED, not LOST.
  void Remove(uint32_t capture_point_id);
  // Asks every sidecar (those still starting too) to finish.
  void DrainAll();
  // The pod's stream has ended (its ENDED or LOST came out of the queue): its thread, sidecar
  // and the sidecar's socket and log are let go by Reap once the sidecar has exited, instead of
  // at the tap's end (a long tap of a deployment that rolls would otherwise keep them all).
  void Release(uint32_t capture_point_id);
  // Joins and frees the released streams whose sidecar has exited; never waits on a sidecar.
  void Reap();
  // Ends every stream now (cancels, joins the threads, stops the sidecars). Idempotent.
  void StopAll();
  // Sidecars that started.
  size_t started() const { return started_; }
  // Streams held: running, or released and not yet reaped.
  size_t held();

 private:
  struct Stream;
  void Run(Stream* st);

  Runtime* runtime_;
  const tapv1::ObserveRequest* observe_;
  uint64_t body_limit_;
  MergeQueue* merged_;
  std::atomic<size_t> started_{0};
  std::atomic<bool> stopping_{false};
  std::mutex mu_;  // guards streams_ (the map; each Stream locks itself)
  std::map<uint32_t, std::unique_ptr<Stream>> streams_;
  std::vector<std::unique_ptr<Stream>> released_;  // guarded by mu_
  uint32_t next_id_ = 0;
};

// PodStatus event for `pod`.
tapv1::TapEvent PodStatusEvent(const PodInfo& pod, tapv1::PodStatus::State state,
                               const std::string& message);

// ---------------------------------------------------------------------------------------------
// Ending.

enum class TapEndReason {
  kLimitReached,
  kStopAsked,
  kClientGone,
  kShutdown,
  kNoSidecar,
  kSidecarsGone,
};

struct TapEnd {
  TapEndReason reason = TapEndReason::kClientGone;
  std::string why;  // kShutdown: e.g. "SIGTERM"; kSidecarsGone: how the pods ended
  // The status Watch ends with (the table at the top of this file). `target` and `ns` name the
  // tap in the kNoSidecar message.
  grpc::Status Status(const std::string& target, const std::string& ns) const;
};

// What other threads tell a running tap. Thread-safe.
class TapControl {
 public:
  void Stop() { stop_ = true; }  // Tap.Stop: drain, then end OK
  // The control plane is stopping: end now; `why` goes in the status ("SIGTERM").
  void Shutdown(const std::string& why);
  bool stop_asked() const { return stop_; }
  std::optional<std::string> shutdown();

 private:
  std::atomic<bool> stop_{false};
  std::atomic<bool> shutdown_{false};
  std::mutex mu_;
  std::string why_;
};

// ---------------------------------------------------------------------------------------------
// The session.

struct TapSessionOptions {
  std::string tap_id;             // TapStarted.tap_id
  tapv1::TapRequest request;      // as validated by TapService
  tapv1::ObserveRequest observe;  // BuildObserveRequest
  uint64_t resolved_version = 0;  // Resolver::Version() before the target was first resolved
  int drain_ms = 3000;            // longest drain (milliseconds)
  int stats_interval_ms = 1000;   // the tap's own Stats (milliseconds)
  int resolve_interval_ms = 100;  // how often the resolver's version is polled (milliseconds)
  size_t batch_bytes = 1 << 20;   // about this many bytes of exchanges per message at most
  size_t queue_capacity = 65536;  // MergeQueue capacity (events)
  Clock* clock = nullptr;         // for --max-rps; null = Clock::Steady()
};

// The match and extraction every sidecar of a tap gets, from the request: --to/--from resolved
// through `resolver` (errors name the flag: "--to: deployment \"x\" not found ..."), method,
// authority, path, max_requests as the limit, and a random redaction key when redaction is on
// and none was given (Internal error when the random generator fails: never an all-zero key).
absl::StatusOr<tapv1::ObserveRequest> BuildObserveRequest(Resolver* resolver,
                                                          const tapv1::TapRequest& request);

class TapSession {
 public:
  // Returns false when the client is gone.
  using Sink = std::function<bool(const tapv1::TapEvents&)>;

  // `runtime` (its resolver() too) outlives the session; `pods` are the target's pods at
  // options.resolved_version (not empty).
  TapSession(Runtime* runtime, TapSessionOptions options, std::vector<PodInfo> pods);

  // Runs the tap to its end: writes TapStarted and the pods' STARTING first, then the merged
  // events, and the tap's own last Stats. `client_gone` is polled (ServerContext::IsCancelled).
  TapEnd Run(const Sink& sink, TapControl* control, const std::function<bool()>& client_gone);

  // Counters of the tap, valid after Run.
  uint64_t pods_added() const { return pods_added_; }
  uint64_t pods_removed() const { return pods_removed_; }

 private:
  struct Pod {
    PodInfo info;
    bool open = true;      // its stream has not ended
    bool removed = false;  // it left the target
  };
  void AddPod(const PodInfo& p, tapv1::TapEvents* out);
  void Resync(tapv1::TapEvents* out);

  Runtime* runtime_;
  Resolver* resolver_;
  TapSessionOptions options_;
  std::vector<PodInfo> initial_;
  MergeQueue merged_;
  PodFanOut fanout_;
  std::map<uint32_t, Pod> pods_;  // by capture point id
  uint64_t version_ = 0;
  uint64_t pods_added_ = 0, pods_removed_ = 0;
};

}  // namespace tapkit

#endif  // TAPKIT_CONTROLPLANE_TAP_SESSION_H_
