// exchange.h: one HTTP exchange as tapkit stores it, in owned C++ form.
//
// An exchange: one request, its final response (docs/architecture.md section 2), timing, endpoints
// and how it ended. The capture engine builds these and the Writer stores them; a Reader hands out
// ExchangeView (exchange_view.h) over the stored bytes and can turn a view into this owned form.
// Field meanings, units and defaults are those of format/tap.fbs.
//
// Thread-safety: plain values; no internal synchronisation.
#ifndef TAPKIT_FORMAT_EXCHANGE_H_
#define TAPKIT_FORMAT_EXCHANGE_H_

#include <array>
#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

namespace tapkit {

enum class Direction : uint8_t { kUnknown = 0, kInbound = 1, kOutbound = 2 };
enum class TlsState : uint8_t { kUnknown = 0, kNo = 1, kYes = 2 };
enum class HttpVersion : uint8_t {
  kUnknown = 0,
  kHttp09 = 1,
  kHttp10 = 2,
  kHttp11 = 3,
  kHttp2 = 4,
  kHttp3 = 5
};
enum class Completion : uint8_t {
  kComplete = 0,
  kNoResponse = 1,
  kNoRequest = 2,
  kReset = 3,
  kGap = 4,
  kTruncated = 5,
  kCaptureEnded = 6,
  kMalformed = 7,
  kTimeout = 8,
  // The TCP evidence could not tell which request a response answers (format 1.1): the
  // response and the requests it may answer are written apart, none paired.
  kAmbiguousPairing = 9,
};

// Names used in text and JSON output: "in"/"out"/"-", "HTTP/1.1", "no-response", ...
std::string_view DirectionName(Direction d);
std::string_view TlsName(TlsState t);
std::string_view HttpVersionName(HttpVersion v);
std::string_view CompletionName(Completion c);  // "complete", "no-response", ..., or "unknown"

// An IPv4 or IPv6 address in network byte order. family 0 means unknown.
struct IpAddress {
  uint8_t family = 0;               // 0 unknown, 4, or 6
  std::array<uint8_t, 16> bytes{};  // IPv4 uses the first 4

  static IpAddress V4(uint8_t a, uint8_t b, uint8_t c, uint8_t d);
  static IpAddress V6(const std::array<uint8_t, 16>& b);
  // Parses dotted IPv4 or RFC 5952 IPv6 text; nullopt when it is neither.
  static std::optional<IpAddress> Parse(std::string_view text);
  size_t size() const { return family == 4 ? 4 : family == 6 ? 16 : 0; }
  // "10.0.0.1", "2001:db8::1" (RFC 5952 form), or "-" when unknown.
  std::string ToString() const;
  bool operator==(const IpAddress&) const = default;
};

struct Labels {
  std::string ns;  // namespace
  std::string pod;
  std::string workload_kind;  // kubectl singular resource name: "deployment", "statefulset", ...
  std::string workload_name;
  std::string service;
  bool empty() const {
    return ns.empty() && pod.empty() && workload_kind.empty() && workload_name.empty() &&
           service.empty();
  }
  bool operator==(const Labels&) const = default;
};

struct Endpoint {
  IpAddress ip;
  uint16_t port = 0;
  Labels labels;
  // "10.0.0.1:80", "[2001:db8::1]:80".
  std::string ToString() const;
  bool operator==(const Endpoint&) const = default;
};

// A header field as on the wire: raw bytes, any value (binary included), duplicates kept.
struct Header {
  std::string name;
  std::string value;
  bool operator==(const Header&) const = default;
};

// A message body after de-chunking, Content-Encoding kept as sent.
struct Body {
  std::string data;     // the stored bytes: at most the body limit
  uint64_t length = 0;  // the full length on the wire, bytes
  // The body was cut (body limit, gap, capture ended): data.size() < length, or the full length
  // is unknown and `length` is what was seen.
  bool truncated = false;
  // Not stored whole: cut (body limit, gap, capture ended) or emptied by redaction
  // (format/redact.h keeps the length): `truncated`, or fewer bytes than `length`.
  bool cut() const { return truncated || data.size() < length; }
  bool operator==(const Body&) const = default;
};

struct Request {
  HttpVersion version = HttpVersion::kUnknown;
  std::string method;
  std::string scheme;
  std::string authority;
  std::string path;  // path with query
  std::vector<Header> headers;
  Body body;
  std::vector<Header> trailers;
  bool operator==(const Request&) const = default;
};

struct InterimResponse {
  uint16_t status = 0;
  std::string reason;
  std::vector<Header> headers;
  uint64_t offset_ns = 0;  // first byte, nanoseconds after the exchange's sort key
  bool operator==(const InterimResponse&) const = default;
};

struct Response {
  HttpVersion version = HttpVersion::kUnknown;
  uint16_t status = 0;
  std::string reason;
  std::vector<Header> headers;
  Body body;
  std::vector<Header> trailers;
  bool operator==(const Response&) const = default;
};

// Names one exchange within a capture: the capture point that saw it and its stream id.
struct ExchangeId {
  uint32_t capture_point = 0;
  uint64_t stream_id = 0;
  bool operator==(const ExchangeId&) const = default;
};

struct Exchange {
  // Time: sort_key_ns is the request's first byte (the response's first byte when there is no
  // request), nanoseconds since the Unix epoch; the rest are nanoseconds after it.
  uint64_t sort_key_ns = 0;
  uint64_t request_end_ns = 0;
  uint64_t response_start_ns = 0;
  uint64_t response_end_ns = 0;

  uint32_t capture_point = 0;
  uint64_t stream_id = 0;
  uint32_t h2_stream_id = 0;  // 0 for HTTP/1.x

  Endpoint source;       // client side
  Endpoint destination;  // server side
  Direction direction = Direction::kUnknown;
  TlsState tls = TlsState::kUnknown;

  std::optional<Request> request;
  std::vector<InterimResponse> interim;
  std::optional<Response> response;

  Completion completion = Completion::kComplete;
  std::string reason;
  std::optional<int32_t> grpc_status;
  std::string grpc_message;
  std::optional<uint32_t> h2_reset_code;
  // Format 1.3: the exchange was sent by tapreplay, re-sending this recorded exchange (its id
  // in the capture that was replayed).
  std::optional<ExchangeId> replay_of;

  // linkerd's latency: response first byte - request first byte, nanoseconds (0 without both).
  uint64_t latency_ns() const { return request && response ? response_start_ns : 0; }
  // linkerd's end duration: response last byte - response first byte, nanoseconds.
  uint64_t duration_ns() const {
    return response && response_end_ns >= response_start_ns ? response_end_ns - response_start_ns
                                                            : 0;
  }
  bool operator==(const Exchange&) const = default;
};

}  // namespace tapkit

#endif  // TAPKIT_FORMAT_EXCHANGE_H_
