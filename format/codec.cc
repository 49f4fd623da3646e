#include "format/codec.h"

#include <algorithm>
#include <cstring>
#include <vector>

#include "absl/strings/str_cat.h"
#include "format/block.h"
#include "format/exchange_view.h"
#include "format/format.h"
#include "format/tap_generated.h"

namespace tapkit {
namespace {

using flatbuffers::FlatBufferBuilder;
using flatbuffers::Offset;
using flatbuffers::Vector;

Offset<Vector<uint8_t>> ByteVec(FlatBufferBuilder& b, std::string_view s) {
  return b.CreateVector(reinterpret_cast<const uint8_t*>(s.data()), s.size());
}

Offset<flatbuffers::String> OptStr(FlatBufferBuilder& b, std::string_view s) {
  return s.empty() ? 0 : b.CreateString(s.data(), s.size());
}

// The packed header list (SPEC.md section 4.3), built in `scratch` and copied in as one vector.
Offset<Vector<uint8_t>> Headers(FlatBufferBuilder& b, const std::vector<Header>& hs,
                                std::string* scratch) {
  if (hs.empty()) return 0;
  scratch->clear();
  size_t bytes = 0;
  for (const Header& h : hs) bytes += h.name.size() + h.value.size() + 4;
  scratch->reserve(bytes);
  for (const Header& h : hs) AppendHeaderField(h.name, h.value, scratch);
  return ByteVec(b, *scratch);
}

Offset<fb::Endpoint> MakeEndpoint(FlatBufferBuilder& b, const Endpoint& e) {
  Offset<Vector<uint8_t>> ip = 0;
  if (e.ip.size()) ip = b.CreateVector(e.ip.bytes.data(), e.ip.size());
  Offset<Vector<uint8_t>> labels = 0;
  if (!e.labels.empty()) {
    std::string packed;
    PackLabels(e.labels, &packed);
    labels = ByteVec(b, packed);
  }
  return fb::CreateEndpoint(b, ip, e.port, labels);
}

absl::Status AddBody(const Body& body, std::string* frame, fb::BodyRef* ref) {
  if (frame->size() + body.data.size() > format::kMaxFrameSize) {
    return absl::InvalidArgumentError(absl::StrCat("body of ", body.data.size(),
                                                   " bytes exceeds the segment frame cap of ",
                                                   format::kMaxFrameSize, " bytes"));
  }
  *ref = fb::BodyRef(static_cast<uint32_t>(frame->size()), static_cast<uint32_t>(body.data.size()),
                     std::max<uint64_t>(body.length, body.data.size()),
                     body.truncated || body.length > body.data.size());
  frame->append(body.data);
  return absl::OkStatus();
}

bool HasBody(const Body& b) { return !b.data.empty() || b.length != 0 || b.truncated; }

}  // namespace

absl::Status EncodeExchange(const Exchange& x, FlatBufferBuilder* builder,
                            std::string* body_frame) {
  FlatBufferBuilder& b = *builder;
  b.Clear();
  static thread_local std::string scratch;

  Offset<fb::Request> request = 0;
  if (x.request) {
    const Request& r = *x.request;
    auto method = OptStr(b, r.method);
    auto scheme = OptStr(b, r.scheme);
    auto authority = OptStr(b, r.authority);
    auto path = OptStr(b, r.path);
    auto headers = Headers(b, r.headers, &scratch);
    auto trailers = Headers(b, r.trailers, &scratch);
    fb::BodyRef ref;
    bool has_body = HasBody(r.body);
    if (has_body) {
      if (absl::Status s = AddBody(r.body, body_frame, &ref); !s.ok()) return s;
    }
    fb::RequestBuilder rb(b);
    rb.add_version(static_cast<fb::HttpVersion>(r.version));
    rb.add_method(method);
    rb.add_scheme(scheme);
    rb.add_authority(authority);
    rb.add_path(path);
    rb.add_headers(headers);
    if (has_body) rb.add_body(&ref);
    rb.add_trailers(trailers);
    request = rb.Finish();
  }

  Offset<Vector<Offset<fb::Interim>>> interim = 0;
  if (!x.interim.empty()) {
    std::vector<Offset<fb::Interim>> offs;
    for (const InterimResponse& i : x.interim) {
      auto reason = OptStr(b, i.reason);
      auto headers = Headers(b, i.headers, &scratch);
      offs.push_back(fb::CreateInterim(b, i.status, reason, headers, i.offset_ns));
    }
    interim = b.CreateVector(offs);
  }

  Offset<fb::Response> response = 0;
  if (x.response) {
    const Response& r = *x.response;
    auto reason = OptStr(b, r.reason);
    auto headers = Headers(b, r.headers, &scratch);
    auto trailers = Headers(b, r.trailers, &scratch);
    fb::BodyRef ref;
    bool has_body = HasBody(r.body);
    if (has_body) {
      if (absl::Status s = AddBody(r.body, body_frame, &ref); !s.ok()) return s;
    }
    fb::ResponseBuilder rb(b);
    rb.add_version(static_cast<fb::HttpVersion>(r.version));
    rb.add_status(r.status);
    rb.add_reason(reason);
    rb.add_headers(headers);
    if (has_body) rb.add_body(&ref);
    rb.add_trailers(trailers);
    response = rb.Finish();
  }

  auto source = MakeEndpoint(b, x.source);
  auto destination = MakeEndpoint(b, x.destination);
  auto reason = OptStr(b, x.reason);
  auto grpc_message = OptStr(b, x.grpc_message);

  // Offsets fit the 32-bit fields unless one reaches 2^32 ns (4.29 s): then all three go wide.
  constexpr uint64_t kNarrow = UINT32_MAX;
  bool wide =
      x.request_end_ns > kNarrow || x.response_start_ns > kNarrow || x.response_end_ns > kNarrow;
  Offset<Vector<uint64_t>> long_offsets = 0;
  if (wide) {
    uint64_t v[3] = {x.request_end_ns, x.response_start_ns, x.response_end_ns};
    long_offsets = b.CreateVector(v, 3);
  }

  fb::ExchangeBuilder eb(b);
  eb.add_sort_key(x.sort_key_ns);
  if (wide) {
    eb.add_long_offsets(long_offsets);
  } else {
    eb.add_request_end(static_cast<uint32_t>(x.request_end_ns));
    eb.add_response_start(static_cast<uint32_t>(x.response_start_ns));
    eb.add_response_end(static_cast<uint32_t>(x.response_end_ns));
  }
  eb.add_capture_point(x.capture_point);
  eb.add_stream_id(x.stream_id);
  eb.add_h2_stream_id(x.h2_stream_id);
  eb.add_source(source);
  eb.add_destination(destination);
  eb.add_direction(static_cast<fb::Direction>(x.direction));
  eb.add_tls(static_cast<fb::Tls>(x.tls));
  eb.add_request(request);
  eb.add_interim(interim);
  eb.add_response(response);
  eb.add_completion(static_cast<fb::Completion>(x.completion));
  eb.add_reason(reason);
  eb.add_grpc_status(x.grpc_status ? *x.grpc_status : -1);
  eb.add_grpc_message(grpc_message);
  eb.add_h2_reset_code(x.h2_reset_code ? static_cast<int64_t>(*x.h2_reset_code) : -1);
  // Format 1.3; left out when absent, so an exchange that is not a replay encodes as in 1.2.
  fb::ExchangeId replay_of;
  if (x.replay_of) {
    replay_of = fb::ExchangeId(x.replay_of->capture_point, x.replay_of->stream_id);
    eb.add_replay_of(&replay_of);
  }
  // Every record's length (prefix included) becomes a multiple of 8, so records laid back to back
  // from an 8-aligned start keep their 8-byte fields aligned (SPEC.md section 4).
  b.TrackMinAlign(8);
  b.FinishSizePrefixed(eb.Finish());
  if (b.GetSize() > format::kMaxRecordSize) {
    return absl::InvalidArgumentError(absl::StrCat("exchange record of ", b.GetSize(),
                                                   " bytes exceeds the cap of ",
                                                   format::kMaxRecordSize, " bytes"));
  }
  return absl::OkStatus();
}

absl::StatusOr<ExchangeView> ViewOfExchange(const Exchange& x, FlatBufferBuilder* builder,
                                            std::string* bodies) {
  bodies->clear();
  if (absl::Status s = EncodeExchange(x, builder, bodies); !s.ok()) return s;
  return ExchangeView(flatbuffers::GetSizePrefixedRoot<fb::Exchange>(builder->GetBufferPointer()),
                      *bodies, /*bodies_loaded=*/true);
}

absl::StatusOr<Exchange> DecodeExchange(std::string_view encoded, std::string_view bodies) {
  if (encoded.size() < 4)
    return absl::InvalidArgumentError("exchange encoding shorter than 4 bytes");
  uint32_t len = format::Get32(encoded.data());
  if (len > format::kMaxRecordSize || len != encoded.size() - 4) {
    return absl::InvalidArgumentError(
        absl::StrCat("exchange encoding of ", encoded.size(), " bytes has a size prefix of ", len));
  }
  // FlatBuffers wants its buffer aligned as it was built: copy into 8-byte-aligned memory.
  std::vector<uint64_t> aligned((encoded.size() + 7) / 8);
  std::memcpy(aligned.data(), encoded.data(), encoded.size());
  const auto* buf = reinterpret_cast<const uint8_t*>(aligned.data());
  flatbuffers::Verifier v(buf, encoded.size(), format::kMaxFlatBufferDepth,
                          format::kMaxFlatBufferTables);
  if (!v.VerifySizePrefixedBuffer<fb::Exchange>(nullptr)) {
    return absl::InvalidArgumentError("exchange encoding fails FlatBuffers verification");
  }
  const fb::Exchange* e = flatbuffers::GetSizePrefixedRoot<fb::Exchange>(buf);
  if (!CheckExchangeRefs(e, bodies.size())) {
    return absl::InvalidArgumentError(
        "exchange encoding has an invalid body reference, header list or labels");
  }
  return ExchangeView(e, bodies, true).ToExchange();
}

}  // namespace tapkit
