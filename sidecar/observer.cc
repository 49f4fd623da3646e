#include "sidecar/observer.h"

#include <algorithm>
#include <utility>

#include "absl/strings/str_cat.h"
#include "format/codec.h"

namespace tapkit {

namespace v1 = tapkit::tap::v1;

namespace {

void ToProto(const Endpoint& e, v1::Endpoint* out) {
  out->set_ip(e.ip.ToString());
  out->set_port(e.port);
}

v1::Direction ToProto(Direction d) {
  switch (d) {
    case Direction::kInbound:
      return v1::INBOUND;
    case Direction::kOutbound:
      return v1::OUTBOUND;
    default:
      return v1::DIRECTION_UNKNOWN;
  }
}

// What the subscriber asked to carry: header lists, bodies up to the limit.
void ApplyExtract(const v1::Extract& e, Exchange* x) {
  uint64_t limit = e.body_limit() ? e.body_limit() : format::kDefaultBodyLimit;
  auto body = [&](Body& b) {
    uint64_t keep = e.bodies() ? std::min<uint64_t>(limit, b.data.size()) : 0;
    if (b.data.size() > keep) {
      b.data.resize(keep);
      b.truncated = true;
    }
  };
  auto lists = [&](std::vector<Header>& h, std::vector<Header>& t) {
    if (!e.headers()) {
      h.clear();
      t.clear();
    }
  };
  if (x->request) {
    lists(x->request->headers, x->request->trailers);
    body(x->request->body);
  }
  for (InterimResponse& i : x->interim) {
    if (!e.headers()) i.headers.clear();
  }
  if (x->response) {
    lists(x->response->headers, x->response->trailers);
    body(x->response->body);
  }
}

}  // namespace

bool Subscription::Next(int timeout_ms, size_t max_bytes, v1::ObserveEvents* batch, bool* ended) {
  batch->Clear();
  std::unique_lock<std::mutex> l(mu);
  cv.wait_for(l, std::chrono::milliseconds(timeout_ms),
              [&] { return stats.has_value() || !queue.empty() || done || cancelled; });
  if (stats) {
    *batch->add_events() = std::move(*stats);
    stats.reset();
  }
  size_t bytes = 0;
  while (!queue.empty() && (batch->events_size() == 0 || bytes < max_bytes)) {
    v1::ObserveEvent& e = queue.front();
    if (e.has_exchange()) bytes += e.exchange().exchange().size() + e.exchange().bodies().size();
    batch->mutable_events()->Add(std::move(e));
    queue.pop_front();
  }
  *ended = queue.empty() && (done || cancelled);
  return batch->events_size() > 0;
}

void Subscription::Cancel() {
  std::lock_guard<std::mutex> l(mu);
  cancelled = true;
  cv.notify_all();
}

Observer::Observer(ObserverOptions options) : options_(std::move(options)) {
  for (const std::string& a : options_.pod_addresses) {
    if (std::optional<IpAddress> ip = IpAddress::Parse(a)) pod_ips_.push_back(*ip);
  }
  EngineOptions eo = options_.engine;
  eo.capture_point = options_.capture_point_id;
  eo.http.on_request_headers = [this](const Exchange& x, uint64_t id, uint64_t ts) {
    OnRequestHeaders(x, id, ts);
  };
  eo.http.on_response_headers = [this](const Exchange& x, uint64_t id, uint16_t status,
                                       uint64_t ts) { OnResponseHeaders(x, id, status, ts); };
  engine_ = std::make_unique<CaptureEngine>(eo, [this](Exchange&& x) { OnExchange(std::move(x)); });
}

Observer::~Observer() = default;

absl::StatusOr<std::shared_ptr<Subscription>> Observer::Subscribe(
    const v1::ObserveRequest& request) {
  absl::StatusOr<CompiledMatch> m = CompiledMatch::Compile(request.match());
  if (!m.ok()) return m.status();
  auto s = std::make_shared<Subscription>();
  s->request = request;
  s->match = *std::move(m);
  if (const v1::Redaction& red = request.redaction(); red.enabled()) {
    RedactionRules rules;
    rules.headers.assign(red.headers().begin(), red.headers().end());
    rules.query_params.assign(red.query_params().begin(), red.query_params().end());
    if (rules.query_params.empty()) rules.query_params = DefaultRedactedQueryParams();
    for (const std::string& text : red.json_fields()) {
      absl::StatusOr<JsonPointer> p = ParseJsonPointer(text);
      if (!p.ok()) {
        return absl::InvalidArgumentError(
            absl::StrCat("redaction.json_fields: ", p.status().message()));
      }
      rules.json_fields.push_back(*std::move(p));
    }
    s->redactor.emplace(std::move(rules), red.key());
  }
  std::lock_guard<std::mutex> l(mu_);
  subs_.push_back(s);
  return s;
}

size_t Observer::subscribers() const {
  std::lock_guard<std::mutex> l(mu_);
  return subs_.size();
}

Direction Observer::DirectionOf(const Exchange& x) const {
  for (const IpAddress& ip : pod_ips_) {
    if (x.destination.ip == ip) return Direction::kInbound;
  }
  for (const IpAddress& ip : pod_ips_) {
    if (x.source.ip == ip) return Direction::kOutbound;
  }
  return Direction::kUnknown;
}

void Observer::Push(Subscription& s, v1::ObserveEvent&& e) {
  std::lock_guard<std::mutex> l(s.mu);
  if (s.cancelled) return;
  if (s.queue.size() >= options_.queue_events) {
    ++s.dropped;  // a slow client: the capture thread does not wait for it
    return;
  }
  s.queue.push_back(std::move(e));  // the reader is woken at Tick: one wake-up per batch
}

bool Observer::Admit(Subscription& s) {
  if (s.request.limit() && s.admitted >= s.request.limit()) return false;
  ++s.admitted;
  return true;
}

void Observer::OnFrame(const Frame& f) {
  last_ts_ns_ = std::max(last_ts_ns_, f.ts_ns);
  engine_->OnPacket(f.link_type, f.ts_ns, f.data, f.wire_length);
}

void Observer::OnRequestHeaders(const Exchange& x, uint64_t id, uint64_t ts) {
  request_ts_[id] = ts;
  std::lock_guard<std::mutex> l(mu_);
  for (auto& sp : subs_) {
    Subscription& s = *sp;
    if (!s.match.Evaluate(x.source, x.destination, x.request ? &*x.request : nullptr)) continue;
    if (!Admit(s)) continue;
    s.matched.insert(id);
    if (!s.request.phases()) continue;
    v1::ObserveEvent e;
    v1::RequestSeen* r = e.mutable_request();
    r->mutable_id()->set_capture_point(options_.capture_point);
    r->mutable_id()->set_capture_point_id(options_.capture_point_id);
    r->mutable_id()->set_stream_id(id);
    ToProto(x.source, r->mutable_source());
    ToProto(x.destination, r->mutable_destination());
    r->set_direction(ToProto(DirectionOf(x)));
    r->set_ts_ns(ts);
    if (x.request) {
      r->set_method(x.request->method);
      r->set_scheme(x.request->scheme);
      r->set_authority(x.request->authority);
      std::string path = x.request->path;
      if (s.redactor) s.redactor->RedactUrl(&path);
      r->set_path(std::move(path));
    }
    Push(s, std::move(e));
  }
}

void Observer::OnResponseHeaders(const Exchange&, uint64_t id, uint16_t status, uint64_t ts) {
  auto rt = request_ts_.find(id);
  std::lock_guard<std::mutex> l(mu_);
  for (auto& sp : subs_) {
    Subscription& s = *sp;
    if (!s.request.phases() || !s.matched.count(id)) continue;
    v1::ObserveEvent e;
    v1::ResponseSeen* r = e.mutable_response();
    r->mutable_id()->set_capture_point(options_.capture_point);
    r->mutable_id()->set_capture_point_id(options_.capture_point_id);
    r->mutable_id()->set_stream_id(id);
    r->set_ts_ns(ts);
    r->set_status(status);
    if (rt != request_ts_.end() && ts >= rt->second) r->set_latency_ns(ts - rt->second);
    Push(s, std::move(e));
  }
}

void Observer::OnExchange(Exchange&& x) {
  request_ts_.erase(x.stream_id);
  x.direction = DirectionOf(x);
  std::lock_guard<std::mutex> l(mu_);
  std::vector<Subscription*> takers;
  for (auto& sp : subs_) {
    Subscription& s = *sp;
    // Admitted when its request was seen, or now if that was not seen (or did not match then).
    bool matched =
        s.matched.erase(x.stream_id) > 0 ||
        (s.match.Evaluate(x.source, x.destination, x.request ? &*x.request : nullptr) && Admit(s));
    if (!matched) continue;
    std::lock_guard<std::mutex> sl(s.mu);
    if (!s.done && !s.cancelled) takers.push_back(&s);
  }
  for (size_t i = 0; i < takers.size(); ++i) {
    Subscription& s = *takers[i];
    ++matched_;
    // Each subscriber extracts and redacts its own way: a copy each, but the last (in practice
    // the only one) works on the exchange itself. Endpoints and ids are not touched.
    std::optional<Exchange> copy;
    Exchange& mine = i + 1 == takers.size() ? x : copy.emplace(x);
    ApplyExtract(s.request.extract(), &mine);
    if (s.redactor) s.redactor->Apply(&mine);
    flatbuffers::FlatBufferBuilder builder;
    std::string bodies;
    if (!EncodeExchange(mine, &builder, &bodies).ok()) continue;  // over the record caps
    v1::ObserveEvent e;
    v1::ExchangeEnded* out = e.mutable_exchange();
    out->mutable_id()->set_capture_point(options_.capture_point);
    out->mutable_id()->set_capture_point_id(options_.capture_point_id);
    out->mutable_id()->set_stream_id(x.stream_id);
    out->set_exchange(reinterpret_cast<const char*>(builder.GetBufferPointer()), builder.GetSize());
    out->set_bodies(std::move(bodies));
    ToProto(x.source, out->mutable_source());
    ToProto(x.destination, out->mutable_destination());
    out->set_direction(ToProto(x.direction));
    Push(s, std::move(e));
    if (uint64_t limit = s.request.limit(); limit && ++s.sent >= limit) {
      std::lock_guard<std::mutex> sl(s.mu);
      s.done = true;
      s.cv.notify_all();
    }
  }
}

v1::ObserveEvent Observer::MakeStats(const Subscription& s, const KernelStats& k) const {
  v1::ObserveEvent e;
  v1::Stats* st = e.mutable_stats();
  st->set_capture_point(options_.capture_point);
  for (const auto& [name, n] : engine_->Drops()) (*st->mutable_drops())[name] = n;
  for (const auto& [name, n] : engine_->Counters()) (*st->mutable_counters())[name] = n;
  st->set_kernel_received(k.received);
  st->set_kernel_dropped(k.dropped);
  st->set_interface_dropped(k.interface_dropped);
  st->set_events_dropped(s.dropped);
  st->set_exchanges_matched(s.sent);
  return e;
}

void Observer::Tick(uint64_t now_ns, const KernelStats& kernel) {
  // Responses held for client bytes that never came go on once the reorder window has passed,
  // even when no packet follows (before the lock: what it writes goes through OnExchange).
  engine_->Advance(now_ns);
  std::lock_guard<std::mutex> l(mu_);
  for (auto& sp : subs_) {
    Subscription& s = *sp;
    uint64_t interval =
        uint64_t{s.request.stats_interval_ms() ? s.request.stats_interval_ms() : 1000} * 1'000'000;
    std::lock_guard<std::mutex> sl(s.mu);
    if (now_ns >= s.next_stats_ns) {
      s.next_stats_ns = now_ns + interval;
      s.stats = MakeStats(s, kernel);
    }
    if (s.stats || !s.queue.empty()) s.cv.notify_one();
  }
  // Subscriptions whose client went away, or that reached their limit and were drained.
  subs_.erase(std::remove_if(subs_.begin(), subs_.end(),
                             [](const std::shared_ptr<Subscription>& s) {
                               std::lock_guard<std::mutex> sl(s->mu);
                               return s->cancelled || (s->done && s->queue.empty());
                             }),
              subs_.end());
}

void Observer::Finish(uint64_t now_ns, const KernelStats& kernel) {
  engine_->Finish(std::max(last_ts_ns_, now_ns));
  std::lock_guard<std::mutex> l(mu_);
  for (auto& sp : subs_) {
    Subscription& s = *sp;
    std::lock_guard<std::mutex> sl(s.mu);
    s.stats = MakeStats(s, kernel);
    s.done = true;
    s.cv.notify_all();
  }
  subs_.clear();
}

}  // namespace tapkit
