#include "format/exchange_view.h"

#include <algorithm>
#include <cstring>

#include "absl/strings/ascii.h"

namespace tapkit {
namespace {

std::string_view Str(const flatbuffers::String* s) {
  return s ? std::string_view(s->data(), s->size()) : std::string_view();
}

std::string_view Bytes(const flatbuffers::Vector<uint8_t>* v) {
  return v ? std::string_view(reinterpret_cast<const char*>(v->data()), v->size())
           : std::string_view();
}

Endpoint ToEndpoint(const fb::Endpoint* e) {
  Endpoint out;
  if (!e) return out;
  out.port = e->port();
  if (const auto* ip = e->ip()) {
    if (ip->size() == 4 || ip->size() == 16) {
      out.ip.family = ip->size() == 4 ? 4 : 6;
      std::memcpy(out.ip.bytes.data(), ip->data(), ip->size());
    }
  }
  if (const auto* l = e->labels()) {
    out.labels.ns = Str(l->namespace_());
    out.labels.pod = Str(l->pod());
    out.labels.workload_kind = Str(l->workload_kind());
    out.labels.workload_name = Str(l->workload_name());
    out.labels.service = Str(l->service());
  }
  return out;
}

std::vector<Header> ToHeaders(HeaderListView list) {
  std::vector<Header> out;
  out.reserve(list.size());
  for (size_t i = 0; i < list.size(); ++i) {
    out.push_back(Header{std::string(list.name(i)), std::string(list.value(i))});
  }
  return out;
}

Body ToBody(const BodyView& b) {
  Body out;
  out.data = std::string(b.data());
  out.length = b.length();
  out.truncated = b.truncated();
  return out;
}

bool RefInside(const fb::BodyRef* ref, uint64_t size) {
  return ref == nullptr ||
         (static_cast<uint64_t>(ref->offset()) + ref->stored() <= size && ref->stored() <= ref->length());
}

}  // namespace

std::string_view HeaderListView::name(size_t i) const { return Bytes(list_->Get(i)->name()); }
std::string_view HeaderListView::value(size_t i) const { return Bytes(list_->Get(i)->value()); }

std::optional<std::string_view> HeaderListView::Find(std::string_view wanted) const {
  for (size_t i = 0; i < size(); ++i) {
    std::string_view n = name(i);
    if (n.size() == wanted.size() &&
        std::equal(n.begin(), n.end(), wanted.begin(), [](char a, char b) {
          return absl::ascii_tolower(static_cast<unsigned char>(a)) ==
                 absl::ascii_tolower(static_cast<unsigned char>(b));
        })) {
      return value(i);
    }
  }
  return std::nullopt;
}

BodyView::BodyView(const fb::BodyRef* ref, std::string_view frame, bool loaded)
    : ref_(ref), frame_(frame), loaded_(loaded) {}

std::string_view BodyView::data() const {
  // The Reader checked the reference against the frame (CheckExchangeRefs) before handing it out.
  if (!ref_ || !loaded_) return {};
  return frame_.substr(ref_->offset(), ref_->stored());
}

std::string_view RequestView::method() const { return Str(r_->method()); }
std::string_view RequestView::scheme() const { return Str(r_->scheme()); }
std::string_view RequestView::authority() const { return Str(r_->authority()); }
std::string_view RequestView::path() const { return Str(r_->path()); }
std::string_view ResponseView::reason() const { return Str(r_->reason()); }
std::string_view InterimView::reason() const { return Str(i_->reason()); }

uint64_t ExchangeView::offset(int which) const {
  if (const auto* lo = e_->long_offsets(); lo && lo->size() == 3) return lo->Get(which);
  switch (which) {
    case 0: return e_->request_end();
    case 1: return e_->response_start();
    default: return e_->response_end();
  }
}

uint64_t ExchangeView::request_end_ns() const { return offset(0); }
uint64_t ExchangeView::response_start_ns() const { return offset(1); }
uint64_t ExchangeView::response_end_ns() const { return offset(2); }

uint64_t ExchangeView::latency_ns() const {
  return has_request() && has_response() ? response_start_ns() : 0;
}

uint64_t ExchangeView::duration_ns() const {
  if (!has_response()) return 0;
  uint64_t start = response_start_ns(), end = response_end_ns();
  return end >= start ? end - start : 0;
}

Endpoint ExchangeView::source() const { return ToEndpoint(e_->source()); }
Endpoint ExchangeView::destination() const { return ToEndpoint(e_->destination()); }
std::string_view ExchangeView::reason() const { return Str(e_->reason()); }
std::string_view ExchangeView::grpc_message() const { return Str(e_->grpc_message()); }

std::optional<int32_t> ExchangeView::grpc_status() const {
  if (e_->grpc_status() < 0) return std::nullopt;
  return e_->grpc_status();
}

std::optional<uint32_t> ExchangeView::h2_reset_code() const {
  int64_t code = e_->h2_reset_code();
  if (code < 0 || code > UINT32_MAX) return std::nullopt;
  return static_cast<uint32_t>(code);
}

Exchange ExchangeView::ToExchange() const {
  Exchange x;
  x.sort_key_ns = sort_key_ns();
  x.request_end_ns = request_end_ns();
  x.response_start_ns = response_start_ns();
  x.response_end_ns = response_end_ns();
  x.capture_point = capture_point();
  x.stream_id = stream_id();
  x.h2_stream_id = h2_stream_id();
  x.source = source();
  x.destination = destination();
  x.direction = direction();
  x.tls = tls();
  if (has_request()) {
    RequestView r = request();
    Request& q = x.request.emplace();
    q.version = r.version();
    q.method = r.method();
    q.scheme = r.scheme();
    q.authority = r.authority();
    q.path = r.path();
    q.headers = ToHeaders(r.headers());
    q.body = ToBody(r.body());
    q.trailers = ToHeaders(r.trailers());
  }
  for (size_t i = 0; i < interim_count(); ++i) {
    InterimView v = interim(i);
    x.interim.push_back(InterimResponse{v.status(), std::string(v.reason()),
                                        ToHeaders(v.headers()), v.offset_ns()});
  }
  if (has_response()) {
    ResponseView r = response();
    Response& s = x.response.emplace();
    s.version = r.version();
    s.status = r.status();
    s.reason = r.reason();
    s.headers = ToHeaders(r.headers());
    s.body = ToBody(r.body());
    s.trailers = ToHeaders(r.trailers());
  }
  x.completion = completion();
  x.reason = reason();
  x.grpc_status = grpc_status();
  x.grpc_message = grpc_message();
  x.h2_reset_code = h2_reset_code();
  return x;
}

bool CheckExchangeRefs(const fb::Exchange* e, uint64_t body_frame_size) {
  if (const auto* lo = e->long_offsets(); lo && lo->size() != 3) return false;
  if (e->request() && !RefInside(e->request()->body(), body_frame_size)) return false;
  if (e->response() && !RefInside(e->response()->body(), body_frame_size)) return false;
  return true;
}

}  // namespace tapkit
