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

EndpointView ToEndpointView(const fb::Endpoint* e) {
  EndpointView out;
  if (!e) return out;
  out.port = e->port();
  if (const auto* ip = e->ip()) {
    if (ip->size() == 4 || ip->size() == 16) {
      out.ip.family = ip->size() == 4 ? 4 : 6;
      std::memcpy(out.ip.bytes.data(), ip->data(), ip->size());
    }
  }
  if (const auto* l = e->labels()) {
    std::string_view packed = Bytes(l);
    std::string_view* parts[] = {&out.labels.ns, &out.labels.pod, &out.labels.workload_kind,
                                 &out.labels.workload_name, &out.labels.service};
    for (std::string_view* part : parts) {
      if (!NextPackedString(&packed, part)) break;
    }
  }
  return out;
}

Endpoint ToEndpoint(const fb::Endpoint* e) {
  EndpointView v = ToEndpointView(e);
  Endpoint out;
  out.ip = v.ip;
  out.port = v.port;
  out.labels = Labels{std::string(v.labels.ns), std::string(v.labels.pod),
                      std::string(v.labels.workload_kind), std::string(v.labels.workload_name),
                      std::string(v.labels.service)};
  return out;
}

std::vector<Header> ToHeaders(HeaderListView list) {
  std::vector<Header> out;
  for (const HeaderListView::Field& f : list) {
    out.push_back(Header{std::string(f.name), std::string(f.value)});
  }
  return out;
}

inline bool ReadVarint(std::string_view* in, uint32_t* v) {
  // Fast path: lengths under 128 take one byte, nearly every header name and most values.
  if (!in->empty() && !(static_cast<uint8_t>((*in)[0]) & 0x80)) {
    *v = static_cast<uint8_t>((*in)[0]);
    in->remove_prefix(1);
    return true;
  }
  uint64_t x = 0;
  for (size_t i = 0; i < 5 && i < in->size(); ++i) {
    uint8_t b = static_cast<uint8_t>((*in)[i]);
    x |= uint64_t{b & 0x7fu} << (7 * i);
    if (!(b & 0x80)) {
      if (x > UINT32_MAX) return false;
      *v = static_cast<uint32_t>(x);
      in->remove_prefix(i + 1);
      return true;
    }
  }
  return false;
}

bool HeaderListOk(const flatbuffers::Vector<uint8_t>* v) {
  return v == nullptr || CheckHeaderList(Bytes(v));
}

Body ToBody(const BodyView& b) {
  Body out;
  out.data = std::string(b.data());
  out.length = b.length();
  out.truncated = b.truncated();
  return out;
}

bool RefInside(const fb::BodyRef* ref, uint64_t size) {
  return ref == nullptr || (static_cast<uint64_t>(ref->offset()) + ref->stored() <= size &&
                            ref->stored() <= ref->length());
}

}  // namespace

bool NextPackedString(std::string_view* in, std::string_view* out) {
  std::string_view rest = *in;
  uint32_t n = 0;
  if (!ReadVarint(&rest, &n) || n > rest.size()) return false;
  *out = rest.substr(0, n);
  rest.remove_prefix(n);
  *in = rest;
  return true;
}

void AppendPackedString(std::string_view s, std::string* out) {
  char varint[10];
  size_t k = 0;
  uint64_t n = s.size();
  do {
    uint8_t b = n & 0x7f;
    n >>= 7;
    varint[k++] = static_cast<char>(n ? b | 0x80 : b);
  } while (n);
  out->append(varint, k);
  out->append(s);
}

bool NextHeaderField(std::string_view* in, std::string_view* name, std::string_view* value) {
  std::string_view rest = *in;
  if (!NextPackedString(&rest, name) || !NextPackedString(&rest, value)) return false;
  *in = rest;
  return true;
}

void AppendHeaderField(std::string_view name, std::string_view value, std::string* out) {
  AppendPackedString(name, out);
  AppendPackedString(value, out);
}

bool CheckPackedStrings(std::string_view packed, bool pairs) {
  // The walk of NextPackedString without building views: each length in bounds. Single-byte
  // lengths (under 128) take the short path; `i` may pass `n` only by a length, checked at once.
  const auto* p = reinterpret_cast<const uint8_t*>(packed.data());
  const size_t n = packed.size();
  size_t i = 0, count = 0;
  while (i < n) {
    uint8_t b = p[i];
    if (b < 0x80) {
      i += 1 + size_t{b};
    } else {
      uint64_t len = 0;
      int shift = 0;
      for (;;) {
        if (i >= n || shift > 28) return false;
        b = p[i++];
        len |= uint64_t{b & 0x7fu} << shift;
        if (!(b & 0x80)) break;
        shift += 7;
      }
      if (len > UINT32_MAX) return false;
      i += len;
    }
    if (i > n) return false;
    ++count;
  }
  return !pairs || count % 2 == 0;  // every header name has its value
}

bool CheckHeaderList(std::string_view packed) { return CheckPackedStrings(packed, true); }

void PackLabels(const Labels& l, std::string* out) {
  const std::string* parts[] = {&l.ns, &l.pod, &l.workload_kind, &l.workload_name, &l.service};
  size_t last = 0;  // trailing empty strings are left out
  for (size_t i = 0; i < 5; ++i) {
    if (!parts[i]->empty()) last = i + 1;
  }
  for (size_t i = 0; i < last; ++i) AppendPackedString(*parts[i], out);
}

Labels UnpackLabels(std::string_view packed) {
  Labels l;
  std::string* parts[] = {&l.ns, &l.pod, &l.workload_kind, &l.workload_name, &l.service};
  std::string_view s;
  for (std::string* part : parts) {
    if (!NextPackedString(&packed, &s)) break;
    part->assign(s);
  }
  return l;
}

HeaderListView::HeaderListView(const flatbuffers::Vector<uint8_t>* packed)
    : packed_(Bytes(packed)) {}

void HeaderListView::Iterator::Advance() {
  if (rest_.empty() || !NextHeaderField(&rest_, &field_.name, &field_.value)) {
    // End (or, for a list that was never checked, the first malformed byte): stop here.
    rest_ = std::string_view(rest_.data() + rest_.size(), 0);
    done_ = true;
    return;
  }
  done_ = false;
}

size_t HeaderListView::size() const {
  size_t n = 0;
  for (auto it = begin(); it != end(); ++it) ++n;
  return n;
}

std::optional<std::string_view> HeaderListView::Find(std::string_view wanted) const {
  for (const Field& f : *this) {
    std::string_view n = f.name;
    if (n.size() == wanted.size() &&
        std::equal(n.begin(), n.end(), wanted.begin(), [](char a, char b) {
          return absl::ascii_tolower(static_cast<unsigned char>(a)) ==
                 absl::ascii_tolower(static_cast<unsigned char>(b));
        })) {
      return f.value;
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
    case 0:
      return e_->request_end();
    case 1:
      return e_->response_start();
    default:
      return e_->response_end();
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


EndpointView ExchangeView::source_view() const { return ToEndpointView(e_->source()); }
EndpointView ExchangeView::destination_view() const {
  return ToEndpointView(e_->destination());
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

std::optional<ExchangeId> ExchangeView::replay_of() const {
  const fb::ExchangeId* id = e_->replay_of();
  if (!id) return std::nullopt;
  return ExchangeId{id->capture_point(), id->stream_id()};
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
    x.interim.push_back(InterimResponse{v.status(), std::string(v.reason()), ToHeaders(v.headers()),
                                        v.offset_ns()});
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
  x.replay_of = replay_of();
  return x;
}

bool CheckExchangeRefs(const fb::Exchange* e, uint64_t body_frame_size) {
  if (const auto* lo = e->long_offsets(); lo && lo->size() != 3) return false;
  for (const fb::Endpoint* ep : {e->source(), e->destination()}) {
    if (ep && ep->labels() && !CheckPackedStrings(Bytes(ep->labels()), false)) return false;
  }
  if (const fb::Request* r = e->request()) {
    if (!RefInside(r->body(), body_frame_size) || !HeaderListOk(r->headers()) ||
        !HeaderListOk(r->trailers())) {
      return false;
    }
  }
  if (const fb::Response* r = e->response()) {
    if (!RefInside(r->body(), body_frame_size) || !HeaderListOk(r->headers()) ||
        !HeaderListOk(r->trailers())) {
      return false;
    }
  }
  if (const auto* interim = e->interim()) {
    for (const fb::Interim* i : *interim) {
      if (!HeaderListOk(i->headers())) return false;
    }
  }
  return true;
}

}  // namespace tapkit
