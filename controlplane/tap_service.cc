#include "controlplane/tap_service.h"

#include <grpcpp/grpcpp.h>
#include <openssl/rand.h>

#include <chrono>
#include <cmath>
#include <condition_variable>
#include <deque>
#include <map>
#include <mutex>
#include <thread>
#include <unordered_map>
#include <utility>
#include <vector>

#include "absl/strings/str_cat.h"

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
  void Push(v1::TapEvent&& e, const std::atomic<bool>& stop) {
    std::unique_lock<std::mutex> l(mu_);
    space_.wait(l, [&] { return q_.size() < kMax || stop; });
    if (stop) return;
    q_.push_back(std::move(e));
    ready_.notify_one();
  }
  bool Pop(v1::TapEvent* e, int timeout_ms) {
    std::unique_lock<std::mutex> l(mu_);
    if (!ready_.wait_for(l, std::chrono::milliseconds(timeout_ms), [&] { return !q_.empty(); })) {
      return false;
    }
    *e = std::move(q_.front());
    q_.pop_front();
    space_.notify_one();
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

// One sidecar's stream, read on a thread of its own into the tap's merged queue.
struct Stream {
  std::unique_ptr<Sidecar> sidecar;
  grpc::ClientContext context;
  std::thread reader;
  bool ended = false;  // its PodStatus ENDED or LOST went out (tap thread)
};

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

grpc::Status TapService::Watch(grpc::ServerContext* ctx, const v1::TapRequest* req,
                               grpc::ServerWriter<v1::TapEvent>* writer) {
  // Sent with whatever status this returns: a client tells "the control plane ended the tap"
  // from "the connection to it was lost".
  ctx->AddTrailingMetadata("tapkit-ended-by", "controlplane");
  if (!token_.empty()) {
    auto it = ctx->client_metadata().find("authorization");
    if (it == ctx->client_metadata().end() ||
        std::string(it->second.data(), it->second.size()) != "Bearer " + token_) {
      return grpc::Status(grpc::StatusCode::UNAUTHENTICATED,
                          "this control plane needs a bearer token (taprec --token-file FILE)");
    }
  }
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

  std::atomic<bool> stop{false};
  Merged merged;
  std::vector<std::unique_ptr<Stream>> streams;
  auto status_event = [&](const PodInfo& p, v1::PodStatus::State st, const std::string& msg) {
    v1::TapEvent e;
    v1::PodStatus* s = e.mutable_pod_status();
    s->set_namespace_(p.namespace_);
    s->set_pod(p.name);
    s->set_state(st);
    s->set_message(msg);
    return e;
  };
  uint32_t next_id = 1;
  for (const PodInfo& p : *pods) {
    writer->Write(status_event(p, v1::PodStatus::STARTING, ""));
    SidecarSpec spec;
    spec.capture_point_id = next_id++;
    spec.body_limit = req->extract().body_limit() ? req->extract().body_limit() : 65536;
    absl::StatusOr<std::unique_ptr<Sidecar>> sc = runtime_->StartSidecar(p, spec);
    if (!sc.ok()) {
      writer->Write(status_event(p, v1::PodStatus::LOST, std::string(sc.status().message())));
      continue;
    }
    auto st = std::make_unique<Stream>();
    st->sidecar = *std::move(sc);
    streams.push_back(std::move(st));
  }
  if (streams.empty()) {
    return grpc::Status(grpc::StatusCode::UNAVAILABLE,
                        absl::StrCat("no sidecar could be started for ", req->target(), " in ", ns,
                                     " (see the pod status events)"));
  }
  for (auto& sp : streams) {
    Stream* st = sp.get();
    st->reader = std::thread([st, &observe, &merged, &stop, &status_event] {
      auto channel =
          grpc::CreateChannel(st->sidecar->address(), grpc::InsecureChannelCredentials());
      auto stub = v1::Sidecar::NewStub(channel);
      std::unique_ptr<grpc::ClientReader<v1::ObserveEvent>> r =
          stub->Observe(&st->context, observe);
      v1::ObserveEvent ev;
      bool streaming = false;
      while (r->Read(&ev)) {
        // The sidecar's first event (its stats, sent as the subscription starts) says the
        // stream is live: only from now on is its traffic seen.
        if (!streaming) {
          streaming = true;
          merged.Push(status_event(st->sidecar->pod(), v1::PodStatus::STREAMING, ""), stop);
        }
        v1::TapEvent te;
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
            continue;
        }
        merged.Push(std::move(te), stop);
      }
      grpc::Status s = r->Finish();
      std::string how;
      bool running = st->sidecar->Running(&how);
      if (s.ok() || stop) {
        merged.Push(status_event(st->sidecar->pod(), v1::PodStatus::ENDED, ""), stop);
      } else {
        std::string msg = absl::StrCat("stream failed: ", s.error_message());
        if (!running) msg = absl::StrCat("sidecar ", how, "; ", msg);
        merged.Push(status_event(st->sidecar->pod(), v1::PodStatus::LOST, msg), stop);
      }
    });
  }

  uint64_t sent = 0, held_back = 0, over_limit = 0;
  size_t open = streams.size();
  bool any_streamed = false;
  RateLimit rate(req->max_rps());
  Labeller labeller(inv);
  auto last_stats = std::chrono::steady_clock::now();
  grpc::Status result = grpc::Status::OK;
  auto own_stats = [&] {
    v1::TapEvent e;
    v1::Stats* s = e.mutable_stats();
    s->set_exchanges_matched(sent);
    s->set_exchanges_held_back(held_back);
    if (over_limit) (*s->mutable_drops())["over_max_requests"] = over_limit;
    return e;
  };
  while (open > 0) {
    if (ctx->IsCancelled() || stopping_) break;
    if (std::chrono::steady_clock::now() - last_stats > std::chrono::seconds(1)) {
      last_stats = std::chrono::steady_clock::now();
      if (!writer->Write(own_stats())) break;
    }
    v1::TapEvent e;
    if (!merged.Pop(&e, 100)) continue;
    switch (e.event_case()) {
      case v1::TapEvent::kRequest:
        labeller.Label(e.mutable_request()->mutable_source());
        labeller.Label(e.mutable_request()->mutable_destination());
        break;
      case v1::TapEvent::kExchange: {
        if (req->max_requests() && sent >= req->max_requests()) {
          ++over_limit;
          continue;
        }
        if (!rate.Take()) {
          ++held_back;
          continue;
        }
        // The labels go in the event's endpoints; the exchange's bytes pass through untouched
        // (decoding and re-encoding each one here cost as much CPU as the sidecar's capture).
        v1::ExchangeEnded* x = e.mutable_exchange();
        labeller.Label(x->mutable_source());
        labeller.Label(x->mutable_destination());
        ++sent;
        break;
      }
      case v1::TapEvent::kPodStatus:
        if (e.pod_status().state() == v1::PodStatus::ENDED ||
            e.pod_status().state() == v1::PodStatus::LOST) {
          --open;
        }
        break;
      case v1::TapEvent::kStats:
        any_streamed = true;
        break;
      default:
        break;
    }
    if (!req->phases() &&
        (e.event_case() == v1::TapEvent::kRequest || e.event_case() == v1::TapEvent::kResponse)) {
      continue;
    }
    if (!writer->Write(e)) break;  // the client went away
    if (req->max_requests() && sent >= req->max_requests()) break;
  }
  (void)any_streamed;
  // The tap ends: stop reading, stop the sidecars, say how it ended.
  stop = true;
  merged.WakeAll();
  for (auto& st : streams) st->context.TryCancel();
  for (auto& st : streams) {
    if (st->reader.joinable()) st->reader.join();
    st->sidecar->Stop(2000);
  }
  writer->Write(own_stats());
  if (open == 0 && sent == 0 && !ctx->IsCancelled()) {
    result = grpc::Status(grpc::StatusCode::UNAVAILABLE,
                          "every sidecar of the tap was lost (see the pod status events)");
  }
  return result;
}

}  // namespace tapkit
