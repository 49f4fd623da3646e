#include "recorder/recorder.h"

#include <utility>

#include "format/codec.h"
#include "sidecar/packet_source.h"

namespace tapkit {

namespace v1 = tapkit::tap::v1;

namespace {
// Exchanges --max-rps kept out: asked for, not lost (the trailer lists them with the drops).
constexpr char kHeldBack[] = "max_rps_held_back";
}  // namespace

Endpoint EndpointFromProto(const v1::Endpoint& e) {
  Endpoint out;
  if (std::optional<IpAddress> ip = IpAddress::Parse(e.ip())) out.ip = *ip;
  out.port = static_cast<uint16_t>(e.port());
  auto get = [&](const char* k) {
    auto it = e.labels().find(k);
    return it == e.labels().end() ? std::string() : it->second;
  };
  out.labels.ns = get("namespace");
  out.labels.pod = get("pod");
  out.labels.workload_kind = get("workload_kind");
  out.labels.workload_name = get("workload");
  out.labels.service = get("service");
  return out;
}

Direction DirectionFromProto(v1::Direction d) {
  return d == v1::INBOUND    ? Direction::kInbound
         : d == v1::OUTBOUND ? Direction::kOutbound
                             : Direction::kUnknown;
}

absl::StatusOr<Exchange> ExchangeFromEvent(const v1::ExchangeEnded& e) {
  absl::StatusOr<Exchange> x = DecodeExchange(e.exchange(), e.bodies());
  if (!x.ok()) return x;
  // The control plane's labels travel beside the exchange's bytes (tap.proto).
  x->source.labels = EndpointFromProto(e.source()).labels;
  x->destination.labels = EndpointFromProto(e.destination()).labels;
  return x;
}

Recorder::Recorder(std::string path, CaptureMetadata metadata, RotationOptions rotation)
    : writer_(std::make_unique<RotatingWriter>(std::move(path), std::move(metadata), rotation,
                                               [this] { return Trailer(); })) {}

Recorder::~Recorder() = default;

absl::Status Recorder::Open() { return writer_->Open(); }

absl::Status Recorder::Append(Exchange&& x, const std::string& capture_point) {
  if (!points_.count(x.capture_point)) {
    points_[x.capture_point] = {x.capture_point, "pod", capture_point, {}, {}};
  }
  return writer_->Append(std::move(x));
}

void Recorder::OnStats(const v1::Stats& s) { stats_[s.capture_point()] = s; }

absl::Status Recorder::EndOfMessage() {
  if (absl::Status s = writer_->Submit(); !s.ok()) return s;
  return writer_->Tick();
}

absl::Status Recorder::Close() { return writer_->Close(); }

uint64_t Recorder::drops() const {
  uint64_t n = 0;
  for (const auto& [name, v] : Trailer().drops) {
    if (name != kHeldBack) n += v;
  }
  return n;
}

uint64_t Recorder::held_back() const {
  TrailerInput t = Trailer();
  auto it = t.drops.find(kHeldBack);
  return it == t.drops.end() ? 0 : it->second;
}

TrailerInput Recorder::Trailer() const {
  TrailerInput t;
  for (const auto& [cp, s] : stats_) {
    for (const auto& [n, v] : s.drops()) t.drops[n] += v;
    for (const auto& [n, v] : s.counters()) t.counters[n] += v;
    // Named as taprec -i names its own capture's (sidecar/packet_source.h).
    KernelStats k;
    k.dropped = s.kernel_dropped();
    k.interface_dropped = s.interface_dropped();
    AddKernelDrops(k, &t.drops);
    if (s.events_dropped()) t.drops["sidecar_events_dropped"] += s.events_dropped();
    if (s.exchanges_held_back()) t.drops["max_rps_held_back"] += s.exchanges_held_back();
  }
  for (const auto& [id, p] : points_) t.capture_points.push_back(p);
  // A pod whose sidecar was lost stopped being captured: the file says so.
  if (pods_lost_) t.drops["pods_lost"] = pods_lost_;
  return t;
}

}  // namespace tapkit
