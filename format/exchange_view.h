// exchange_view.h: read-only, zero-copy access to one stored exchange.
//
// A Reader hands out ExchangeView objects over a FlatBuffer it has already verified and the
// segment's decompressed body frame (when it was read). Every string_view returned points into the
// Reader's buffers and is valid until the Reader's next Next() or Seek() call; call ToExchange() to
// keep an owned copy. Accessors never fail: fields the file does not carry read as empty, zero or
// "unknown", exactly as format/tap.fbs defines their defaults.
//
// Thread-safety: a view is immutable; it may be read from several threads while the Reader that
// produced it is not advanced.
#ifndef TAPKIT_FORMAT_EXCHANGE_VIEW_H_
#define TAPKIT_FORMAT_EXCHANGE_VIEW_H_

#include <cstdint>
#include <optional>
#include <string_view>

#include "format/exchange.h"
#include "format/tap_generated.h"

namespace tapkit {

// A packed header list (SPEC.md section 4.3) in wire order. The Reader checked its encoding
// (CheckExchangeRefs) before handing it out, so iteration needs no error path.
class HeaderListView {
 public:
  struct Field {
    std::string_view name;
    std::string_view value;
  };
  class Iterator {
   public:
    Iterator(std::string_view rest) : rest_(rest) { Advance(); }
    const Field& operator*() const { return field_; }
    const Field* operator->() const { return &field_; }
    Iterator& operator++() {
      Advance();
      return *this;
    }
    bool operator==(const Iterator& o) const {
      return done_ == o.done_ && rest_.data() == o.rest_.data();
    }
    bool operator!=(const Iterator& o) const { return !(*this == o); }

   private:
    void Advance();
    std::string_view rest_;
    Field field_;
    bool done_ = false;
  };

  HeaderListView() = default;
  explicit HeaderListView(const flatbuffers::Vector<uint8_t>* packed);
  Iterator begin() const { return Iterator(packed_); }
  Iterator end() const { return Iterator(std::string_view(packed_.data() + packed_.size(), 0)); }
  bool empty() const { return packed_.empty(); }
  size_t size() const;  // walks the list
  // The first value whose name equals `name` ignoring ASCII case (RFC 9110 section 5.1).
  std::optional<std::string_view> Find(std::string_view name) const;

 private:
  std::string_view packed_;
};

// Packed strings (SPEC.md section 4.3): varint(length) then the bytes. Decodes one from the front
// of `*in`, advancing it; false (and `*in` unchanged) when it is not whole and well-formed.
bool NextPackedString(std::string_view* in, std::string_view* out);
void AppendPackedString(std::string_view s, std::string* out);
// True when `packed` is a whole number of packed strings; with `pairs`, an even number.
bool CheckPackedStrings(std::string_view packed, bool pairs);
// Endpoint labels <-> their packed form (namespace, pod, kind, name, service).
void PackLabels(const Labels& l, std::string* out);
Labels UnpackLabels(std::string_view packed);

// Decodes one packed field from the front of `*in`, advancing it. False (and `*in` unchanged)
// when the bytes there are not a whole, well-formed field.
bool NextHeaderField(std::string_view* in, std::string_view* name, std::string_view* value);
// Appends the packed encoding of one field.
void AppendHeaderField(std::string_view name, std::string_view value, std::string* out);
// True when `packed` is a well-formed header list.
bool CheckHeaderList(std::string_view packed);

// A body as stored. data() is empty when the Reader was opened headers-only (loaded() is false).
class BodyView {
 public:
  BodyView() = default;
  BodyView(const fb::BodyRef* ref, std::string_view frame, bool loaded);
  bool present() const { return ref_ != nullptr; }
  bool loaded() const { return loaded_; }
  std::string_view data() const;
  uint64_t stored() const { return ref_ ? ref_->stored() : 0; }  // bytes kept in the file
  uint64_t length() const { return ref_ ? ref_->length() : 0; }  // bytes on the wire
  bool truncated() const { return ref_ && ref_->truncated(); }

 private:
  const fb::BodyRef* ref_ = nullptr;
  std::string_view frame_;
  bool loaded_ = false;
};

class RequestView {
 public:
  RequestView(const fb::Request* r, std::string_view bodies, bool loaded)
      : r_(r), bodies_(bodies), loaded_(loaded) {}
  HttpVersion version() const { return static_cast<HttpVersion>(r_->version()); }
  std::string_view method() const;
  std::string_view scheme() const;
  std::string_view authority() const;
  std::string_view path() const;
  HeaderListView headers() const { return HeaderListView(r_->headers()); }
  BodyView body() const { return BodyView(r_->body(), bodies_, loaded_); }
  HeaderListView trailers() const { return HeaderListView(r_->trailers()); }

 private:
  const fb::Request* r_;
  std::string_view bodies_;
  bool loaded_;
};

class ResponseView {
 public:
  ResponseView(const fb::Response* r, std::string_view bodies, bool loaded)
      : r_(r), bodies_(bodies), loaded_(loaded) {}
  HttpVersion version() const { return static_cast<HttpVersion>(r_->version()); }
  uint16_t status() const { return r_->status(); }
  std::string_view reason() const;
  HeaderListView headers() const { return HeaderListView(r_->headers()); }
  BodyView body() const { return BodyView(r_->body(), bodies_, loaded_); }
  HeaderListView trailers() const { return HeaderListView(r_->trailers()); }

 private:
  const fb::Response* r_;
  std::string_view bodies_;
  bool loaded_;
};

class InterimView {
 public:
  explicit InterimView(const fb::Interim* i) : i_(i) {}
  uint16_t status() const { return i_->status(); }
  std::string_view reason() const;
  HeaderListView headers() const { return HeaderListView(i_->headers()); }
  uint64_t offset_ns() const { return i_->offset_ns(); }

 private:
  const fb::Interim* i_;
};

// An endpoint's labels as views into the stored bytes (Labels without the copies), for printing
// at reading speed. Valid as long as the ExchangeView it came from.
struct LabelsView {
  std::string_view ns, pod, workload_kind, workload_name, service;
};
struct EndpointView {
  IpAddress ip;
  uint16_t port = 0;
  LabelsView labels;
};

class ExchangeView {
 public:
  ExchangeView() = default;
  // `e` must have passed fb::VerifyExchange...; `bodies` is the segment's body frame (empty when
  // not loaded). Both must outlive the view.
  ExchangeView(const fb::Exchange* e, std::string_view bodies, bool bodies_loaded)
      : e_(e), bodies_(bodies), loaded_(bodies_loaded) {}

  bool valid() const { return e_ != nullptr; }

  // Time, nanoseconds (see exchange.h).
  uint64_t sort_key_ns() const { return e_->sort_key(); }
  uint64_t request_end_ns() const;
  uint64_t response_start_ns() const;
  uint64_t response_end_ns() const;
  uint64_t latency_ns() const;   // response first byte - request first byte; 0 without both
  uint64_t duration_ns() const;  // response last byte - response first byte; 0 without response

  uint32_t capture_point() const { return e_->capture_point(); }
  uint64_t stream_id() const { return e_->stream_id(); }
  uint32_t h2_stream_id() const { return e_->h2_stream_id(); }
  Endpoint source() const;
  Endpoint destination() const;
  // The same without copying the labels.
  EndpointView source_view() const;
  EndpointView destination_view() const;
  Direction direction() const { return static_cast<Direction>(e_->direction()); }
  TlsState tls() const { return static_cast<TlsState>(e_->tls()); }

  bool has_request() const { return e_->request() != nullptr; }
  RequestView request() const { return RequestView(e_->request(), bodies_, loaded_); }
  size_t interim_count() const { return e_->interim() ? e_->interim()->size() : 0; }
  InterimView interim(size_t i) const { return InterimView(e_->interim()->Get(i)); }
  bool has_response() const { return e_->response() != nullptr; }
  ResponseView response() const { return ResponseView(e_->response(), bodies_, loaded_); }

  Completion completion() const { return static_cast<Completion>(e_->completion()); }
  std::string_view reason() const;
  std::optional<int32_t> grpc_status() const;
  std::string_view grpc_message() const;
  std::optional<uint32_t> h2_reset_code() const;
  // Format 1.3: the recorded exchange this one re-sent (tapreplay -w); nullopt when the exchange
  // is not a replay, and in every file before 1.3.
  std::optional<ExchangeId> replay_of() const;

  // An owned copy of everything (bodies empty when they were not loaded).
  Exchange ToExchange() const;

  const fb::Exchange* raw() const { return e_; }

 private:
  uint64_t offset(int which) const;

  const fb::Exchange* e_ = nullptr;
  std::string_view bodies_;
  bool loaded_ = false;
};

// Checks what FlatBuffers verification cannot: every BodyRef lies inside a body frame of
// `body_frame_size` bytes and long_offsets has 0 or 3 entries. Returns false when it does not.
bool CheckExchangeRefs(const fb::Exchange* e, uint64_t body_frame_size);

}  // namespace tapkit

#endif  // TAPKIT_FORMAT_EXCHANGE_VIEW_H_
