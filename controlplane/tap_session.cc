#include "controlplane/tap_session.h"

#include <grpcpp/grpcpp.h>
#include <openssl/rand.h>

#include <algorithm>
#include <set>
#include <utility>

#include "absl/strings/str_cat.h"

namespace tapkit {

namespace v1 = tapkit::tap::v1;

// ---------------------------------------------------------------------------------------------
// MergeQueue

bool MergeQueue::Push(std::vector<MergedEvent>* events) {
  std::unique_lock<std::mutex> l(mu_);
  space_.wait(l, [&] { return q_.size() < capacity_ || closed_; });
  if (closed_) {
    events->clear();
    return false;
  }
  bool was_empty = q_.empty();
  for (MergedEvent& e : *events) q_.push_back(std::move(e));
  events->clear();
  if (was_empty) ready_.notify_one();  // the tap's thread sleeps only on an empty queue
  return true;
}

bool MergeQueue::Push(MergedEvent&& e) {
  std::vector<MergedEvent> one;
  one.push_back(std::move(e));
  return Push(&one);
}

bool MergeQueue::Pop(std::vector<MergedEvent>* out, std::chrono::milliseconds timeout) {
  out->clear();
  std::unique_lock<std::mutex> l(mu_);
  if (!ready_.wait_for(l, timeout, [&] { return !q_.empty(); })) return false;
  while (!q_.empty()) {
    out->push_back(std::move(q_.front()));
    q_.pop_front();
  }
  space_.notify_all();
  return true;
}

void MergeQueue::Close() {
  std::lock_guard<std::mutex> l(mu_);
  closed_ = true;
  space_.notify_all();
}

size_t MergeQueue::size() {
  std::lock_guard<std::mutex> l(mu_);
  return q_.size();
}

// ---------------------------------------------------------------------------------------------
// Limits

namespace {
class SteadyClock final : public Clock {
 public:
  std::chrono::steady_clock::time_point Now() override { return std::chrono::steady_clock::now(); }
};
}  // namespace

Clock* Clock::Steady() {
  static SteadyClock* c = new SteadyClock;
  return c;
}

TokenBucket::TokenBucket(double rate, Clock* clock)
    : rate_(rate), tokens_(std::max(1.0, rate)), clock_(clock), last_(clock->Now()) {}

bool TokenBucket::Take() {
  if (rate_ <= 0) return true;
  auto now = clock_->Now();
  double secs = std::chrono::duration<double>(now - last_).count();
  last_ = now;
  tokens_ = std::min(std::max(1.0, rate_), tokens_ + secs * rate_);
  if (tokens_ < 1.0) return false;
  tokens_ -= 1.0;
  return true;
}

Admission::Admission(uint64_t max_requests, double max_rps, Clock* clock)
    : max_requests_(max_requests), rate_(max_rps, clock) {}

bool Admission::Admit() {
  if (max_requests_ && admitted_ >= max_requests_) {
    ++over_limit_;
    return false;
  }
  if (!rate_.Take()) {
    ++held_back_;
    return false;
  }
  ++admitted_;
  return true;
}

bool Admission::OnRequest(const v1::ExchangeId& id) {
  bool ok = Admit();
  decided_[Key(id)] = ok;
  return ok;
}

bool Admission::OnResponse(const v1::ExchangeId& id) {
  auto it = decided_.find(Key(id));
  return it != decided_.end() && it->second;
}

bool Admission::OnExchange(const v1::ExchangeId& id) {
  bool ok;
  if (auto it = decided_.find(Key(id)); it != decided_.end()) {
    ok = it->second;
    decided_.erase(it);
  } else {
    ok = Admit();
  }
  if (ok) ++sent_;
  return ok;
}

void Admission::ForgetCapturePoint(uint32_t capture_point_id) {
  for (auto it = decided_.begin(); it != decided_.end();) {
    if ((it->first >> 40) != capture_point_id) {
      ++it;
      continue;
    }
    if (it->second) --admitted_;
    it = decided_.erase(it);
  }
}

// ---------------------------------------------------------------------------------------------
// Labels

void EndpointLabeller::Label(v1::Endpoint* e) {
  auto it = cache_.find(e->ip());
  if (it == cache_.end()) {
    Labels l = resolver_->LabelsFor(e->ip());
    std::vector<std::pair<std::string, std::string>> kv;
    auto add = [&](const char* k, const std::string& v) {
      if (!v.empty()) kv.emplace_back(k, v);
    };
    add("namespace", l.ns);
    add("pod", l.pod);
    add("workload_kind", l.workload_kind);
    add("workload", l.workload_name);
    add("service", l.service);
    it = cache_.emplace(e->ip(), std::move(kv)).first;
  }
  for (const auto& [k, v] : it->second) (*e->mutable_labels())[k] = v;
}

// ---------------------------------------------------------------------------------------------
// Fan-out

v1::TapEvent PodStatusEvent(const PodInfo& p, v1::PodStatus::State state,
                            const std::string& message) {
  v1::TapEvent e;
  v1::PodStatus* s = e.mutable_pod_status();
  s->set_namespace_(p.namespace_);
  s->set_pod(p.name);
  s->set_state(state);
  s->set_message(message);
  return e;
}

struct PodFanOut::Stream {
  PodInfo pod;
  uint32_t id = 0;
  std::mutex mu;                     // guards sidecar (until the thread is joined) and drain
  std::unique_ptr<Sidecar> sidecar;  // set by the thread
  bool drain = false;                // asked to finish: a sidecar that comes up is told to
  grpc::ClientContext context;
  std::thread thread;
};

PodFanOut::PodFanOut(Runtime* runtime, const v1::ObserveRequest* observe, uint64_t body_limit,
                     MergeQueue* merged)
    : runtime_(runtime), observe_(observe), body_limit_(body_limit), merged_(merged) {}

PodFanOut::~PodFanOut() { StopAll(); }

uint32_t PodFanOut::Add(const PodInfo& pod) {
  std::lock_guard<std::mutex> l(mu_);
  auto st = std::make_unique<Stream>();
  st->pod = pod;
  st->id = ++next_id_;
  Stream* raw = st.get();
  streams_[raw->id] = std::move(st);
  raw->thread = std::thread([this, raw] { Run(raw); });
  return raw->id;
}

void PodFanOut::Remove(uint32_t id) {
  std::lock_guard<std::mutex> l(mu_);
  auto it = streams_.find(id);
  if (it == streams_.end()) return;
  std::lock_guard<std::mutex> sl(it->second->mu);
  it->second->drain = true;
  if (it->second->sidecar) it->second->sidecar->Terminate();
}

void PodFanOut::DrainAll() {
  std::lock_guard<std::mutex> l(mu_);
  for (auto& [id, st] : streams_) {
    std::lock_guard<std::mutex> sl(st->mu);
    st->drain = true;
    if (st->sidecar) st->sidecar->Terminate();
  }
}

void PodFanOut::Release(uint32_t id) {
  std::lock_guard<std::mutex> l(mu_);
  auto it = streams_.find(id);
  if (it == streams_.end()) return;
  released_.push_back(std::move(it->second));
  streams_.erase(it);
}

void PodFanOut::Reap() {
  std::lock_guard<std::mutex> l(mu_);
  for (auto it = released_.begin(); it != released_.end();) {
    Stream& st = **it;
    // Its last act was pushing the ENDED or LOST the session has seen: the join is immediate.
    if (st.thread.joinable()) st.thread.join();
    std::string how;
    if (st.sidecar && st.sidecar->Running(&how)) {
      ++it;  // still finishing: a later Reap, or StopAll, lets it go
      continue;
    }
    it = released_.erase(it);  // ~Sidecar: reaped; its socket and log removed
  }
}

size_t PodFanOut::held() {
  std::lock_guard<std::mutex> l(mu_);
  return streams_.size() + released_.size();
}

void PodFanOut::StopAll() {
  stopping_ = true;
  merged_->Close();
  std::lock_guard<std::mutex> l(mu_);
  // Cancelling a call that has not started yet cancels it as it starts (grpc::ClientContext).
  for (auto& [id, st] : streams_) st->context.TryCancel();
  for (auto& [id, st] : streams_) {
    if (st->thread.joinable()) st->thread.join();
    if (st->sidecar) st->sidecar->Stop(2000);
  }
  for (auto& st : released_) {
    if (st->thread.joinable()) st->thread.join();
    if (st->sidecar) st->sidecar->Stop(2000);
  }
}

void PodFanOut::Run(Stream* st) {
  auto push = [&](MergedEvent&& e) { merged_->Push(std::move(e)); };
  auto status = [&](v1::PodStatus::State s, const std::string& msg) {
    return MergedEvent{st->id, PodStatusEvent(st->pod, s, msg)};
  };
  SidecarSpec spec;
  spec.capture_point_id = st->id;
  spec.body_limit = body_limit_;
  absl::StatusOr<std::unique_ptr<Sidecar>> sc = runtime_->StartSidecar(st->pod, spec);
  if (!sc.ok()) {
    push(status(v1::PodStatus::LOST, std::string(sc.status().message())));
    return;
  }
  {
    std::lock_guard<std::mutex> l(st->mu);
    st->sidecar = *std::move(sc);
    if (st->drain) st->sidecar->Terminate();
  }
  ++started_;
  grpc::ChannelArguments args;
  args.SetMaxReceiveMessageSize(-1);  // an exchange's bodies may exceed gRPC's 4 MiB
  auto channel =
      grpc::CreateCustomChannel(st->sidecar->address(), grpc::InsecureChannelCredentials(), args);
  auto stub = v1::Sidecar::NewStub(channel);
  std::unique_ptr<grpc::ClientReader<v1::ObserveEvents>> r = stub->Observe(&st->context, *observe_);
  v1::ObserveEvents batch;
  std::vector<MergedEvent> out;
  bool streaming = false;
  while (r->Read(&batch)) {
    // The sidecar's first event (its stats, sent as the subscription starts) says the stream is
    // live: only from now on is its traffic seen.
    if (!streaming) {
      streaming = true;
      out.push_back(status(v1::PodStatus::STREAMING, ""));
    }
    for (v1::ObserveEvent& ev : *batch.mutable_events()) {
      MergedEvent& me = out.emplace_back();
      me.capture_point_id = st->id;
      v1::TapEvent& te = me.event;
      switch (ev.event_case()) {
        case v1::ObserveEvent::kRequest:
          *te.mutable_request() = std::move(*ev.mutable_request());
          break;
        case v1::ObserveEvent::kResponse:
          *te.mutable_response() = std::move(*ev.mutable_response());
          break;
        case v1::ObserveEvent::kExchange:
          *te.mutable_exchange() = std::move(*ev.mutable_exchange());
          break;
        case v1::ObserveEvent::kStats:
          *te.mutable_stats() = std::move(*ev.mutable_stats());
          break;
        default:
          out.pop_back();
          break;
      }
    }
    merged_->Push(&out);
  }
  grpc::Status s = r->Finish();
  std::string how;
  bool running = st->sidecar->Running(&how);
  bool asked_to_finish;  // drained or removed: however its stream ended, it was not lost
  {
    std::lock_guard<std::mutex> l(st->mu);
    asked_to_finish = st->drain;
  }
  if (s.ok() || stopping_ || asked_to_finish) {
    push(status(v1::PodStatus::ENDED, ""));
  } else {
    std::string msg = absl::StrCat("stream failed: ", s.error_message());
    if (!running) msg = absl::StrCat("sidecar ", how, "; ", msg);
    push(status(v1::PodStatus::LOST, msg));
  }
}

// ---------------------------------------------------------------------------------------------
// Ending

grpc::Status TapEnd::Status(const std::string& target, const std::string& ns) const {
  switch (reason) {
    case TapEndReason::kLimitReached:
    case TapEndReason::kStopAsked:
      return grpc::Status::OK;
    case TapEndReason::kClientGone:
      return grpc::Status(grpc::StatusCode::CANCELLED, "the client went away");
    case TapEndReason::kShutdown:
      return grpc::Status(grpc::StatusCode::UNAVAILABLE,
                          absl::StrCat("the control plane is shutting down (",
                                       why.empty() ? "asked to stop" : why, ")"));
    case TapEndReason::kNoSidecar:
      return grpc::Status(grpc::StatusCode::UNAVAILABLE,
                          absl::StrCat("no sidecar could be started for ", target, " in ", ns,
                                       " (see the pod status events)"));
    case TapEndReason::kSidecarsGone:
      return grpc::Status(grpc::StatusCode::UNAVAILABLE,
                          why.empty() ? "every sidecar of the tap ended" : why);
  }
  return grpc::Status(grpc::StatusCode::INTERNAL, "unknown end of tap");
}

void TapControl::Shutdown(const std::string& why) {
  std::lock_guard<std::mutex> l(mu_);
  why_ = why;
  shutdown_ = true;
}

std::optional<std::string> TapControl::shutdown() {
  if (!shutdown_) return std::nullopt;
  std::lock_guard<std::mutex> l(mu_);
  return why_;
}

// ---------------------------------------------------------------------------------------------
// The session

absl::StatusOr<v1::ObserveRequest> BuildObserveRequest(Resolver* resolver,
                                                       const v1::TapRequest& req) {
  std::string ns = req.namespace_().empty() ? "default" : req.namespace_();
  v1::ObserveRequest observe;
  v1::Match::Seq* all = observe.mutable_match()->mutable_all();
  auto peer = [&](const std::string& resource, const std::string& rns, bool to) -> absl::Status {
    if (resource.empty()) return absl::OkStatus();
    absl::StatusOr<std::vector<std::string>> peers =
        resolver->PeerAddresses(resource, rns.empty() ? ns : rns);
    if (!peers.ok()) {
      return absl::Status(peers.status().code(),
                          absl::StrCat(to ? "--to: " : "--from: ", peers.status().message()));
    }
    v1::NetMatch* n =
        to ? all->add_matches()->mutable_destination() : all->add_matches()->mutable_source();
    for (const std::string& ip : *peers) n->add_addresses(ip);
    return absl::OkStatus();
  };
  if (absl::Status s = peer(req.to(), req.to_namespace(), true); !s.ok()) return s;
  if (absl::Status s = peer(req.from(), req.from_namespace(), false); !s.ok()) return s;
  if (!req.method().empty()) all->add_matches()->mutable_http()->set_method(req.method());
  if (!req.authority().empty()) all->add_matches()->mutable_http()->set_authority(req.authority());
  if (!req.path().empty()) all->add_matches()->mutable_http()->set_path_prefix(req.path());
  // Each sidecar may stop at the tap's limit, since it matches no fewer than the tap admits;
  // not under --max-rps, which holds some matched exchanges back here: a sidecar that stopped at
  // N would end the tap with fewer than N.
  observe.set_limit(req.max_rps() > 0 ? 0 : req.max_requests());
  *observe.mutable_extract() = req.extract();
  *observe.mutable_redaction() = req.redaction();
  if (req.redaction().enabled() && req.redaction().key().empty()) {
    std::string key(32, '\0');  // one random key for every sidecar of this tap, never stored
    if (RAND_bytes(reinterpret_cast<unsigned char*>(key.data()), 32) != 1) {
      return absl::InternalError(
          "cannot make a redaction key (the random number generator failed); the tap is not "
          "started rather than redacted with a guessable key");
    }
    observe.mutable_redaction()->set_key(key);
  }
  observe.set_phases(req.phases());
  observe.set_stats_interval_ms(1000);
  return observe;
}

TapSession::TapSession(Runtime* runtime, TapSessionOptions options, std::vector<PodInfo> pods)
    : runtime_(runtime),
      resolver_(runtime->resolver()),
      options_(std::move(options)),
      initial_(std::move(pods)),
      merged_(options_.queue_capacity),
      fanout_(runtime_, &options_.observe,
              options_.request.extract().body_limit() ? options_.request.extract().body_limit()
                                                      : format::kDefaultBodyLimit,
              &merged_) {}

void TapSession::AddPod(const PodInfo& p, v1::TapEvents* out) {
  *out->add_events() = PodStatusEvent(p, v1::PodStatus::STARTING, "");
  uint32_t id = fanout_.Add(p);
  pods_[id] = Pod{p, true, false};
}

namespace {
std::string PodKey(const PodInfo& p) { return absl::StrCat(p.namespace_, "/", p.name, "@", p.ip); }
}  // namespace

void TapSession::Resync(v1::TapEvents* out) {
  const v1::TapRequest& req = options_.request;
  absl::StatusOr<std::vector<PodInfo>> now =
      resolver_->Resolve(req.target(), req.namespace_(), req.label_selector());
  std::vector<PodInfo> pods;
  if (now.ok()) {
    pods = *std::move(now);
  } else if (!absl::IsNotFound(now.status())) {
    return;  // the resolver cannot say now: the tap keeps its pods until it can
  }          // NotFound: the target has no pods now
  std::set<std::string> want;
  for (const PodInfo& p : pods) want.insert(PodKey(p));
  std::set<std::string> have;
  for (auto& [id, pod] : pods_) {
    if (pod.removed) continue;
    if (!want.count(PodKey(pod.info))) {
      pod.removed = true;
      ++pods_removed_;
      fanout_.Remove(id);
    } else {
      have.insert(PodKey(pod.info));
    }
  }
  for (const PodInfo& p : pods) {
    if (have.count(PodKey(p))) continue;
    ++pods_added_;
    AddPod(p, out);
  }
}

TapEnd TapSession::Run(const Sink& sink, TapControl* control,
                       const std::function<bool()>& client_gone) {
  using Steady = std::chrono::steady_clock;
  const v1::TapRequest& req = options_.request;
  Clock* clock = options_.clock ? options_.clock : Clock::Steady();
  Admission admission(req.max_requests(), req.max_rps(), clock);
  EndpointLabeller labeller(resolver_);
  version_ = options_.resolved_version;

  v1::TapEvents out;
  size_t out_bytes = 0;
  bool gone = false;
  auto flush = [&] {
    if (gone) return false;
    if (out.events_size() == 0) return true;
    if (!sink(out)) gone = true;
    out.Clear();
    out_bytes = 0;
    return !gone;
  };
  // Every pod's sidecar starts at once, each on its pod's thread: a tap of N pods is live about
  // as soon as one sidecar is, and a pod streams from the moment its own sidecar is up.
  out.add_events()->mutable_started()->set_tap_id(options_.tap_id);
  for (const PodInfo& p : initial_) AddPod(p, &out);
  flush();

  auto own_stats = [&] {
    v1::TapEvent e;
    v1::Stats* s = e.mutable_stats();
    s->set_exchanges_matched(admission.sent());
    s->set_exchanges_held_back(admission.held_back());
    if (admission.over_limit()) (*s->mutable_drops())["over_max_requests"] = admission.over_limit();
    if (pods_added_) (*s->mutable_counters())["pods_added"] = pods_added_;
    if (pods_removed_) (*s->mutable_counters())["pods_removed"] = pods_removed_;
    return e;
  };
  auto open_pods = [&] {
    size_t n = 0;
    for (const auto& [id, p] : pods_) n += p.open;
    return n;
  };

  std::optional<TapEnd> end;
  std::optional<Steady::time_point> draining;
  TapEndReason drain_reason = TapEndReason::kStopAsked;
  auto start_drain = [&](TapEndReason why) {
    if (draining) return;
    draining = Steady::now();
    drain_reason = why;
    fanout_.DrainAll();
  };
  uint64_t lost = 0, ended_by_sidecar = 0, ended_removed = 0;
  auto last_stats = Steady::now(), last_resolve = Steady::now();
  const auto poll = std::chrono::milliseconds(std::clamp(options_.resolve_interval_ms, 1, 100));
  std::vector<MergedEvent> in;
  while (!gone) {
    if (client_gone()) {
      gone = true;
      break;
    }
    if (std::optional<std::string> why = control->shutdown()) {
      end = TapEnd{TapEndReason::kShutdown, *why};
      break;
    }
    if (control->stop_asked()) start_drain(TapEndReason::kStopAsked);
    auto now = Steady::now();
    if (draining && now - *draining > std::chrono::milliseconds(options_.drain_ms)) break;
    if (open_pods() == 0) break;
    if (!draining &&
        now - last_resolve >= std::chrono::milliseconds(options_.resolve_interval_ms)) {
      last_resolve = now;
      fanout_.Reap();  // streams that ended, their sidecars exited since
      if (uint64_t v = resolver_->Version(); v != version_) {
        version_ = v;
        labeller.Clear();
        Resync(&out);
      }
    }
    if (now - last_stats > std::chrono::milliseconds(options_.stats_interval_ms)) {
      last_stats = now;
      *out.add_events() = own_stats();
    }
    if (!merged_.Pop(&in, out.events_size() ? std::chrono::milliseconds(0) : poll)) {
      flush();
      continue;
    }
    for (MergedEvent& me : in) {
      v1::TapEvent& e = me.event;
      switch (e.event_case()) {
        case v1::TapEvent::kRequest:
          if (!admission.OnRequest(e.request().id())) continue;
          labeller.Label(e.mutable_request()->mutable_source());
          labeller.Label(e.mutable_request()->mutable_destination());
          break;
        case v1::TapEvent::kResponse:
          if (!admission.OnResponse(e.response().id())) continue;
          break;
        case v1::TapEvent::kExchange: {
          v1::ExchangeEnded* x = e.mutable_exchange();
          if (!admission.OnExchange(x->id())) continue;
          // The labels go in the event's endpoints; the exchange's bytes pass through untouched
          // (decoding and re-encoding each one here cost as much CPU as the sidecar's capture).
          labeller.Label(x->mutable_source());
          labeller.Label(x->mutable_destination());
          out_bytes += x->exchange().size() + x->bodies().size();
          break;
        }
        case v1::TapEvent::kPodStatus:
          if (e.pod_status().state() == v1::PodStatus::ENDED ||
              e.pod_status().state() == v1::PodStatus::LOST) {
            // Its admitted exchanges that never ended give their places back; its thread and
            // sidecar go once the sidecar has exited (Reap, below).
            admission.ForgetCapturePoint(me.capture_point_id);
            fanout_.Release(me.capture_point_id);
            auto it = pods_.find(me.capture_point_id);
            if (it != pods_.end() && it->second.open) {
              it->second.open = false;
              if (it->second.removed) {
                ++ended_removed;
              } else if (e.pod_status().state() == v1::PodStatus::LOST) {
                ++lost;
              } else {
                ++ended_by_sidecar;
              }
            }
          }
          break;
        default:
          break;
      }
      if (!req.phases() &&
          (e.event_case() == v1::TapEvent::kRequest || e.event_case() == v1::TapEvent::kResponse)) {
        continue;
      }
      out.mutable_events()->Add(std::move(e));
      if (admission.LimitReached()) start_drain(TapEndReason::kLimitReached);
      if (out_bytes >= options_.batch_bytes && !flush()) break;
    }
    flush();
  }
  // The tap ends: stop reading, stop the sidecars, say how it ended.
  fanout_.StopAll();
  *out.add_events() = own_stats();
  flush();
  if (gone) return TapEnd{TapEndReason::kClientGone, ""};
  if (fanout_.started() == 0 && (!end || end->reason != TapEndReason::kShutdown)) {
    return TapEnd{TapEndReason::kNoSidecar, ""};
  }
  if (end) return *end;
  if (draining) return TapEnd{drain_reason, ""};
  // Every stream ended without the tap asking.
  if (req.max_requests() && req.max_rps() <= 0 && lost == 0 && ended_removed == 0) {
    // Each sidecar reached its own limit (ObserveRequest.limit) while some of its exchanges
    // were held back here: the tap's limit, as far as its pods go.
    return TapEnd{TapEndReason::kLimitReached, ""};
  }
  if (ended_by_sidecar == 0 && ended_removed == 0) {
    return TapEnd{TapEndReason::kSidecarsGone,
                  "every sidecar of the tap was lost (each pod's LOST status says why)"};
  }
  return TapEnd{TapEndReason::kSidecarsGone,
                absl::StrCat("every pod stream of the tap ended: ", lost, " lost, ", ended_removed,
                             " left the target, ", ended_by_sidecar,
                             " ended by their sidecar (see the pod status events)")};
}

}  // namespace tapkit
