#include "controlplane/tap_service.h"

#include <grpcpp/grpcpp.h>
#include <openssl/rand.h>

#include <chrono>
#include <cmath>
#include <condition_variable>
#include <deque>
#include <map>
#include <mutex>
#include <optional>
#include <thread>
#include <unordered_map>
#include <utility>
#include <vector>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"

namespace tapkit {

namespace v1 = tapkit::tap::v1;

grpc::Status ToGrpc(const absl::Status& s) {
  return grpc::Status(static_cast<grpc::StatusCode>(static_cast<int>(s.code())),
                      std::string(s.message()));
}

namespace {

// Events of every sidecar of one tap, in arrival order. Bounded: a reader thread waits when the
// tap's writer falls behind (the sidecar then drops and counts in its own queue).
class Merged {
 public:
  void Push(std::vector<v1::TapEvent>* events, const std::atomic<bool>& stop) {
    std::unique_lock<std::mutex> l(mu_);
    space_.wait(l, [&] { return q_.size() < kMax || stop; });
    if (stop) return;
    bool was_empty = q_.empty();
    for (v1::TapEvent& e : *events) q_.push_back(std::move(e));
    events->clear();
    if (was_empty) ready_.notify_one();  // the tap thread sleeps only on an empty queue
  }
  void Push(v1::TapEvent&& e, const std::atomic<bool>& stop) {
    std::vector<v1::TapEvent> one;
    one.push_back(std::move(e));
    Push(&one, stop);
  }
  // Everything waiting (waits up to `timeout_ms` milliseconds for something); false if nothing.
  bool Pop(std::vector<v1::TapEvent>* out, int timeout_ms) {
    out->clear();
    std::unique_lock<std::mutex> l(mu_);
    if (!ready_.wait_for(l, std::chrono::milliseconds(timeout_ms), [&] { return !q_.empty(); })) {
      return false;
    }
    while (!q_.empty()) {
      out->push_back(std::move(q_.front()));
      q_.pop_front();
    }
    space_.notify_all();
    return true;
  }
  void WakeAll() { space_.notify_all(); }

 private:
  static constexpr size_t kMax = 65536;
  std::mutex mu_;
  std::condition_variable ready_, space_;
  std::deque<v1::TapEvent> q_;
};

// Linkerd-style resource labels for an address, from the inventory, worked out once per address
// for the tap (an event's endpoints are labelled on the tap's hot path; the inventory does not
// change under a running tap).
class Labeller {
 public:
  explicit Labeller(const Inventory& inv) : inv_(inv) {}
  void Label(v1::Endpoint* e) {
    auto it = cache_.find(e->ip());
    if (it == cache_.end()) it = cache_.emplace(e->ip(), Compute(e->ip())).first;
    for (const auto& [k, v] : it->second) (*e->mutable_labels())[k] = v;
  }

 private:
  std::vector<std::pair<std::string, std::string>> Compute(const std::string& ip) const {
    std::vector<std::pair<std::string, std::string>> l;
    const PodInfo* p = inv_.PodByIp(ip);
    if (!p) return l;
    l.emplace_back("namespace", p->namespace_);
    l.emplace_back("pod", p->name);
    if (!p->workload_kind.empty()) {
      l.emplace_back("workload_kind", p->workload_kind);
      l.emplace_back("workload", p->workload_name);
    }
    // The first service of the pod's namespace whose selector matches it.
    for (const std::string& svc : inv_.Names(ResourceType::kService, p->namespace_)) {
      if (inv_.Matches(TargetRef{ResourceType::kService, svc}, p->namespace_, *p)) {
        l.emplace_back("service", svc);
        break;
      }
    }
    return l;
  }
  const Inventory& inv_;
  std::unordered_map<std::string, std::vector<std::pair<std::string, std::string>>> cache_;
};

// One pod of the tap: its sidecar started, then its stream read, on a thread of its own into
// the tap's merged queue.
struct Stream {
  PodInfo pod;
  uint32_t capture_point_id = 0;
  std::mutex mu;                     // guards sidecar (until the thread is joined) and drain
  std::unique_ptr<Sidecar> sidecar;  // set by the thread
  bool drain = false;                // the tap drains: a sidecar that comes up is told to finish
  grpc::ClientContext context;
  std::thread thread;
};

// About this many bytes of exchanges per message to the client at most (tap.proto: batches).
constexpr size_t kBatchBytes = 1 << 20;

// A token bucket over exchanges: `rate` per second, a burst of max(1, rate).
class RateLimit {
 public:
  explicit RateLimit(double rate) : rate_(rate), tokens_(std::max(1.0, rate)) {}
  bool Take() {
    if (rate_ <= 0) return true;
    auto now = std::chrono::steady_clock::now();
    double secs = std::chrono::duration<double>(now - last_).count();
    last_ = now;
    tokens_ = std::min(std::max(1.0, rate_), tokens_ + secs * rate_);
    if (tokens_ < 1.0) return false;
    tokens_ -= 1.0;
    return true;
  }

 private:
  double rate_, tokens_;
  std::chrono::steady_clock::time_point last_ = std::chrono::steady_clock::now();
};

}  // namespace

TapService::TapService(Runtime* runtime, std::string token)
    : runtime_(runtime), token_(std::move(token)) {}

grpc::Status TapService::Authenticate(grpc::ServerContext* ctx) const {
  if (token_.empty()) return grpc::Status::OK;
  auto it = ctx->client_metadata().find("authorization");
  if (it == ctx->client_metadata().end() ||
      std::string(it->second.data(), it->second.size()) != "Bearer " + token_) {
    return grpc::Status(grpc::StatusCode::UNAUTHENTICATED,
                        "this control plane needs a bearer token (taprec --token-file FILE)");
  }
  return grpc::Status::OK;
}

grpc::Status TapService::Stop(grpc::ServerContext* ctx, const v1::StopRequest* req,
                              v1::StopResponse*) {
  if (grpc::Status a = Authenticate(ctx); !a.ok()) return a;
  std::lock_guard<std::mutex> l(taps_mu_);
  auto it = drain_.find(req->tap_id());
  if (it == drain_.end()) {
    return grpc::Status(grpc::StatusCode::NOT_FOUND,
                        absl::StrCat("no running tap ", req->tap_id()));
  }
  *it->second = true;
  return grpc::Status::OK;
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
  const Inventory& inv = runtime_->inventory();
  std::string ns = req->namespace_().empty() ? "default" : req->namespace_();
  absl::StatusOr<std::vector<PodInfo>> pods = inv.Resolve(req->target(), ns, req->label_selector());
  if (!pods.ok()) return ToGrpc(pods.status());

  // The match every sidecar evaluates.
  v1::ObserveRequest observe;
  v1::Match::Seq* all = observe.mutable_match()->mutable_all();
  auto peer = [&](const std::string& resource, const std::string& rns, bool to) -> absl::Status {
    if (resource.empty()) return absl::OkStatus();
    absl::StatusOr<std::vector<PodInfo>> peers = inv.Resolve(resource, rns.empty() ? ns : rns, "");
    if (!peers.ok()) {
      return absl::Status(peers.status().code(),
                          absl::StrCat(to ? "--to: " : "--from: ", peers.status().message()));
    }
    v1::NetMatch* n =
        to ? all->add_matches()->mutable_destination() : all->add_matches()->mutable_source();
    for (const PodInfo& p : *peers) n->add_addresses(p.ip);
    return absl::OkStatus();
  };
  if (absl::Status s = peer(req->to(), req->to_namespace(), true); !s.ok()) return ToGrpc(s);
  if (absl::Status s = peer(req->from(), req->from_namespace(), false); !s.ok()) return ToGrpc(s);
  if (!req->method().empty()) all->add_matches()->mutable_http()->set_method(req->method());
  if (!req->authority().empty()) {
    all->add_matches()->mutable_http()->set_authority(req->authority());
  }
  if (!req->path().empty()) all->add_matches()->mutable_http()->set_path_prefix(req->path());
  observe.set_limit(req->max_requests());
  *observe.mutable_extract() = req->extract();
  *observe.mutable_redaction() = req->redaction();
  if (req->redaction().enabled() && req->redaction().key().empty()) {
    std::string key(32, '\0');  // one random key for every sidecar of this tap, never stored
    RAND_bytes(reinterpret_cast<unsigned char*>(key.data()), 32);
    observe.mutable_redaction()->set_key(key);
  }
  observe.set_phases(req->phases());
  observe.set_stats_interval_ms(1000);

  // The tap's id, for Tap.Stop; registered while the tap runs.
  std::atomic<bool> drain_asked{false};
  std::string tap_id;
  {
    unsigned char raw[8];
    RAND_bytes(raw, sizeof raw);
    for (unsigned char c : raw) absl::StrAppend(&tap_id, absl::Hex(c, absl::kZeroPad2));
    std::lock_guard<std::mutex> l(taps_mu_);
    drain_[tap_id] = &drain_asked;
  }
  struct Unregister {
    TapService* self;
    const std::string& id;
    ~Unregister() {
      std::lock_guard<std::mutex> l(self->taps_mu_);
      self->drain_.erase(id);
    }
  } unregister{this, tap_id};

  std::atomic<bool> stop{false};
  Merged merged;
  auto status_event = [](const PodInfo& p, v1::PodStatus::State st, const std::string& msg) {
    v1::TapEvent e;
    v1::PodStatus* s = e.mutable_pod_status();
    s->set_namespace_(p.namespace_);
    s->set_pod(p.name);
    s->set_state(st);
    s->set_message(msg);
    return e;
  };
  // Every pod's sidecar starts at once, each on its pod's thread: a tap of N pods is live about
  // as soon as one sidecar is, and a pod streams from the moment its own sidecar is up.
  std::vector<std::unique_ptr<Stream>> streams;
  v1::TapEvents starting;
  starting.add_events()->mutable_started()->set_tap_id(tap_id);
  for (const PodInfo& p : *pods) {
    auto st = std::make_unique<Stream>();
    st->pod = p;
    st->capture_point_id = static_cast<uint32_t>(streams.size() + 1);
    *starting.add_events() = status_event(p, v1::PodStatus::STARTING, "");
    streams.push_back(std::move(st));
  }
  writer->Write(starting);
  std::atomic<size_t> started{0};
  for (auto& sp : streams) {
    Stream* st = sp.get();
    st->thread = std::thread([this, st, req, &observe, &merged, &stop, &status_event, &started] {
      SidecarSpec spec;
      spec.capture_point_id = st->capture_point_id;
      spec.body_limit = req->extract().body_limit() ? req->extract().body_limit() : 65536;
      absl::StatusOr<std::unique_ptr<Sidecar>> sc = runtime_->StartSidecar(st->pod, spec);
      if (!sc.ok()) {
        merged.Push(status_event(st->pod, v1::PodStatus::LOST, std::string(sc.status().message())),
                    stop);
        return;
      }
      {
        std::lock_guard<std::mutex> l(st->mu);
        st->sidecar = *std::move(sc);
        if (st->drain) st->sidecar->Terminate();
      }
      ++started;
      grpc::ChannelArguments args;
      args.SetMaxReceiveMessageSize(-1);  // an exchange's bodies may exceed gRPC's 4 MiB
      auto channel = grpc::CreateCustomChannel(st->sidecar->address(),
                                               grpc::InsecureChannelCredentials(), args);
      auto stub = v1::Sidecar::NewStub(channel);
      std::unique_ptr<grpc::ClientReader<v1::ObserveEvents>> r =
          stub->Observe(&st->context, observe);
      v1::ObserveEvents batch;
      std::vector<v1::TapEvent> out;
      bool streaming = false;
      while (r->Read(&batch)) {
        // The sidecar's first event (its stats, sent as the subscription starts) says the
        // stream is live: only from now on is its traffic seen.
        if (!streaming) {
          streaming = true;
          out.push_back(status_event(st->pod, v1::PodStatus::STREAMING, ""));
        }
        for (v1::ObserveEvent& ev : *batch.mutable_events()) {
          v1::TapEvent& te = out.emplace_back();
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
        merged.Push(&out, stop);
      }
      grpc::Status s = r->Finish();
      std::string how;
      bool running = st->sidecar->Running(&how);
      bool asked_to_finish;  // the tap drains: however its stream ended, the sidecar was not lost
      {
        std::lock_guard<std::mutex> l(st->mu);
        asked_to_finish = st->drain;
      }
      if (s.ok() || stop || asked_to_finish) {
        merged.Push(status_event(st->pod, v1::PodStatus::ENDED, ""), stop);
      } else {
        std::string msg = absl::StrCat("stream failed: ", s.error_message());
        if (!running) msg = absl::StrCat("sidecar ", how, "; ", msg);
        merged.Push(status_event(st->pod, v1::PodStatus::LOST, msg), stop);
      }
    });
  }

  // Admission: whether an exchange goes to the client is decided once, when the tap first hears
  // of it: its RequestSeen in a live view (so that no `req` line is shown whose `end` is then
  // held back), else its ExchangeEnded. Key: capture point id << 40 ^ stream id.
  std::unordered_map<uint64_t, bool> decided;
  auto key = [](const v1::ExchangeId& id) {
    return (uint64_t{id.capture_point_id()} << 40) ^ id.stream_id();
  };
  uint64_t admitted = 0, sent = 0, held_back = 0, over_limit = 0;
  RateLimit rate(req->max_rps());
  auto admit = [&] {
    if (req->max_requests() && admitted >= req->max_requests()) {
      ++over_limit;
      return false;
    }
    if (!rate.Take()) {
      ++held_back;
      return false;
    }
    ++admitted;
    return true;
  };
  // A pod that ended or was lost: its admitted exchanges that never ended give their places back.
  auto forget_pod = [&](const v1::PodStatus& p) {
    for (const auto& st : streams) {
      if (st->pod.namespace_ != p.namespace_() || st->pod.name != p.pod()) continue;
      for (auto it = decided.begin(); it != decided.end();) {
        if ((it->first >> 40) != st->capture_point_id) {
          ++it;
          continue;
        }
        if (it->second) --admitted;
        it = decided.erase(it);
      }
    }
  };

  size_t open = streams.size();
  Labeller labeller(inv);
  auto last_stats = std::chrono::steady_clock::now();
  auto own_stats = [&] {
    v1::TapEvent e;
    v1::Stats* s = e.mutable_stats();
    s->set_exchanges_matched(sent);
    s->set_exchanges_held_back(held_back);
    if (over_limit) (*s->mutable_drops())["over_max_requests"] = over_limit;
    return e;
  };
  v1::TapEvents out;
  size_t out_bytes = 0;
  auto flush = [&] {
    if (out.events_size() == 0) return true;
    bool ok = writer->Write(out);
    out.Clear();
    out_bytes = 0;
    return ok;
  };
  std::vector<v1::TapEvent> in;
  bool client_gone = false;
  // Draining (Tap.Stop, or the limit reached): every sidecar is asked to finish; what they still
  // send (open exchanges as "capture ended", their last stats) is read until their streams end,
  // for at most kDrainMs.
  constexpr int kDrainMs = 3000;
  std::optional<std::chrono::steady_clock::time_point> draining;
  auto start_drain = [&] {
    if (draining) return;
    draining = std::chrono::steady_clock::now();
    for (auto& st : streams) {
      std::lock_guard<std::mutex> l(st->mu);
      st->drain = true;
      if (st->sidecar) st->sidecar->Terminate();
    }
  };
  while (open > 0 && !client_gone) {
    if (ctx->IsCancelled() || stopping_) break;
    if (drain_asked) start_drain();
    if (draining &&
        std::chrono::steady_clock::now() - *draining > std::chrono::milliseconds(kDrainMs)) {
      break;
    }
    if (std::chrono::steady_clock::now() - last_stats > std::chrono::seconds(1)) {
      last_stats = std::chrono::steady_clock::now();
      *out.add_events() = own_stats();
    }
    if (!merged.Pop(&in, out.events_size() ? 0 : 100)) {
      if (!flush()) break;
      continue;
    }
    for (v1::TapEvent& e : in) {
      switch (e.event_case()) {
        case v1::TapEvent::kRequest: {
          bool ok = admit();
          decided[key(e.request().id())] = ok;
          if (!ok) continue;
          labeller.Label(e.mutable_request()->mutable_source());
          labeller.Label(e.mutable_request()->mutable_destination());
          break;
        }
        case v1::TapEvent::kResponse: {
          auto it = decided.find(key(e.response().id()));
          if (it == decided.end() || !it->second) continue;
          break;
        }
        case v1::TapEvent::kExchange: {
          v1::ExchangeEnded* x = e.mutable_exchange();
          bool ok;
          if (auto it = decided.find(key(x->id())); it != decided.end()) {
            ok = it->second;
            decided.erase(it);
          } else {
            ok = admit();
          }
          if (!ok) continue;
          // The labels go in the event's endpoints; the exchange's bytes pass through untouched
          // (decoding and re-encoding each one here cost as much CPU as the sidecar's capture).
          labeller.Label(x->mutable_source());
          labeller.Label(x->mutable_destination());
          out_bytes += x->exchange().size() + x->bodies().size();
          ++sent;
          break;
        }
        case v1::TapEvent::kPodStatus:
          if (e.pod_status().state() == v1::PodStatus::ENDED ||
              e.pod_status().state() == v1::PodStatus::LOST) {
            forget_pod(e.pod_status());
            --open;
          }
          break;
        default:
          break;
      }
      if (!req->phases() &&
          (e.event_case() == v1::TapEvent::kRequest || e.event_case() == v1::TapEvent::kResponse)) {
        continue;
      }
      out.mutable_events()->Add(std::move(e));
      if (req->max_requests() && sent >= req->max_requests()) start_drain();
      if (out_bytes >= kBatchBytes && !flush()) {
        client_gone = true;
        break;
      }
    }
    if (!flush()) break;  // the client went away
  }
  // The tap ends: stop reading, stop the sidecars, say how it ended.
  stop = true;
  merged.WakeAll();
  for (auto& st : streams) st->context.TryCancel();
  for (auto& st : streams) {
    if (st->thread.joinable()) st->thread.join();
    if (st->sidecar) st->sidecar->Stop(2000);
  }
  *out.add_events() = own_stats();
  flush();
  if (started == 0) {
    return grpc::Status(grpc::StatusCode::UNAVAILABLE,
                        absl::StrCat("no sidecar could be started for ", req->target(), " in ", ns,
                                     " (see the pod status events)"));
  }
  if (open == 0 && sent == 0 && !ctx->IsCancelled() && !draining) {
    return grpc::Status(grpc::StatusCode::UNAVAILABLE,
                        "every sidecar of the tap was lost (each pod's LOST status says why)");
  }
  return grpc::Status::OK;
}

}  // namespace tapkit
