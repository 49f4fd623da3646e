// replay_request.h (private to replay/): a recorded request turned into the request a replay
// sends (the rules in replay.h: Host, hop-by-hop fields, redaction markers, --set-header,
// --drop-header, --rewrite-path, Content-Length framing), and a live response read back from
// libcurl's header and write callbacks.
//
// Thread-safety: a RequestPlan is immutable once made; the rest are per transfer, one thread.
#ifndef TAPKIT_REPLAY_REPLAY_REQUEST_H_
#define TAPKIT_REPLAY_REPLAY_REQUEST_H_

#include <curl/curl.h>

#include <cstdint>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

#include "absl/status/statusor.h"
#include "format/exchange.h"
#include "replay/replay.h"

namespace re2 {
class RE2;
}

namespace tapkit::replay::internal {

// --target checked: "http://HOST[:PORT][/]", the scheme in any case (RFC 3986 section 3.1). `url` is what libcurl connects to
// ("http://HOST:PORT/"), `authority` the Host value sent unless keep_authority ("HOST:PORT" as
// given, RFC 9110 section 7.2: the port is left out when the target left it out).
struct Target {
  std::string url;
  std::string authority;
};
absl::StatusOr<Target> ParseTarget(std::string_view target);

// The edits every request gets, checked once.
struct RequestPlan {
  Target target;
  bool keep_authority = false;
  std::vector<Header> set_headers;
  std::vector<std::string> set_lower;   // set_headers' names, lower-case
  std::vector<std::string> drop_lower;  // drop_headers, lower-case
  std::vector<std::shared_ptr<const re2::RE2>> rewrite_regex;
  std::vector<std::string> rewrite_replacement;
};
// Errors name the flag: "--set-header 'X': ...", "--rewrite-path 'A=B': ...". A --set-header
// naming a framing or hop-by-hop field (IsHopByHop: Content-Length, Transfer-Encoding,
// Connection, ...) is refused: the replay frames the body itself, and a second Content-Length or
// Transfer-Encoding beside it would break the request (RFC 9112 sections 6.1 and 6.3). Host may
// be set (it replaces the one sent).
absl::StatusOr<RequestPlan> MakeRequestPlan(const ReplayOptions& options, Target target);

// The request to send.
struct OutgoingRequest {
  std::string method;
  std::string target;     // request target, byte for byte (after --rewrite-path)
  std::string authority;  // the Host value sent (empty when --drop-header host)
  // The fields as sent, in order: the recorded ones edited, Host where the recording had it (or
  // first), Content-Length last when there is a body.
  std::vector<Header> headers;
  bool has_body = false;
  const std::string* body = nullptr;  // the recorded body's stored bytes (owned by the exchange)
  // Lines libcurl must not add on its own ("Accept:", "Expect:", "Content-Type:", "Host:").
  std::vector<std::string> suppress;
  uint64_t redacted_dropped = 0;
  // Redaction markers (format/redact.h) in the request target and the body, sent as they are:
  // the recording replaced those values, the target receives the markers.
  uint64_t redacted_sent = 0;
  std::string error;  // the request cannot be sent as recorded (a CR, LF or NUL in the target)
  // A --rewrite-path turned the recorded target, valid as recorded, into an invalid one: a
  // mistake on the command line, naming the flag and the recorded path.
  std::string usage_error;
};

// Builds `*out` from `recorded` (which must outlive `*out`: the body is not copied).
void BuildRequest(const RequestPlan& plan, const Request& recorded, OutgoingRequest* out);

// True for the hop-by-hop fields of RFC 9110 section 7.6.1 (lower-case name), and the framing
// fields the replay sets itself (Content-Length).
bool IsHopByHop(std::string_view lower_name);

// The field names a Connection field of `headers` lists (RFC 9110 section 7.6.1: those fields
// are hop-by-hop too), lower-case, in order; empty when there is no Connection field.
std::vector<std::string> ConnectionNamed(const std::vector<Header>& headers);

// How many redaction markers `text` holds: kRedactedPrefix and 12 lower-case hex digits, anywhere
// (a query value, a JSON string, a form field).
uint64_t CountRedactionMarkers(std::string_view text);

// The libcurl easy-handle options every outgoing HTTP/1.1 request of tapkit's shares (the replay
// engine's lanes and the mock server's pass-through): HTTP/1.1, the path sent as it is, signals
// left alone, and straight to the target: no proxy from the environment (http_proxy, all_proxy)
// and no getenv("no_proxy") per transfer. Call after curl_easy_reset/curl_easy_init.
void SetDirectHttp11Options(CURL* easy);

// The live body bytes kept for one exchange (ResponseReader::Reset): what the comparison needs,
// the recorded body's stored bytes plus one (a longer live body differs in length anyway), and
// at least kLiveBodyFloorBytes (the -w capture keeps 64 KiB; a differently encoded body still
// decodes). 256 lanes stay within about 64 MiB plus the recorded bodies.
inline constexpr uint64_t kLiveBodyFloorBytes = 256ull << 10;
uint64_t LiveBodyLimit(const Exchange& recorded);

// Reads a response from libcurl's header callback (status lines, fields, the blank line of each
// header section, trailers after the body) and write callback (the body as received: no
// Content-Encoding undone). Interim 1xx responses are kept in order.
class ResponseReader {
 public:
  // Starts a response; at most `max_body` body bytes are kept, the rest only counted in the
  // body's length (and the body marked truncated).
  void Reset(uint64_t max_body = kLiveBodyFloorBytes);
  // One header line as libcurl hands it (with its CRLF). `offset_ns` is called, once per
  // interim response, for the time since the request was sent.
  void HeaderLine(std::string_view line, uint64_t (*offset_ns)(const void*), const void* arg);
  void BodyBytes(std::string_view data);

  bool has_status() const { return final_started_; }
  Response& response() { return response_; }
  std::vector<InterimResponse>& interim() { return interim_; }

 private:
  Response response_;
  std::vector<InterimResponse> interim_;
  uint64_t max_body_ = kLiveBodyFloorBytes;
  bool final_started_ = false;  // a status line was read
  bool in_headers_ = false;     // between a status line and its blank line
  bool final_done_ = false;     // the final response's header section ended: trailers follow
};

}  // namespace tapkit::replay::internal

#endif  // TAPKIT_REPLAY_REPLAY_REQUEST_H_
