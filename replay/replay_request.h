// replay_request.h (private to replay/): a recorded request turned into the request a replay
// sends (the rules in replay.h: Host, hop-by-hop fields, redaction markers, --set-header,
// --drop-header, --rewrite-path, Content-Length framing), and a live response read back from
// libcurl's header and write callbacks.
//
// Thread-safety: a RequestPlan is immutable once made; the rest are per transfer, one thread.
#ifndef TAPKIT_REPLAY_REPLAY_REQUEST_H_
#define TAPKIT_REPLAY_REPLAY_REQUEST_H_

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

// --target checked: "http://HOST[:PORT][/]". `url` is what libcurl connects to
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
// Errors name the flag: "--set-header 'X': ...", "--rewrite-path 'A=B': ...".
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
  std::string error;  // the request cannot be sent as recorded (a CR, LF or NUL in the target)
};

// Builds `*out` from `recorded` (which must outlive `*out`: the body is not copied).
void BuildRequest(const RequestPlan& plan, const Request& recorded, OutgoingRequest* out);

// True for the hop-by-hop fields of RFC 9110 section 7.6.1 (lower-case name), and the framing
// fields the replay sets itself (Content-Length).
bool IsHopByHop(std::string_view lower_name);

// Reads a response from libcurl's header callback (status lines, fields, the blank line of each
// header section, trailers after the body) and write callback (the body as received: no
// Content-Encoding undone). Interim 1xx responses are kept in order.
class ResponseReader {
 public:
  static constexpr uint64_t kMaxBodyBytes = 64ull << 20;  // kept; the rest only counted

  void Reset();
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
  bool final_started_ = false;  // a status line was read
  bool in_headers_ = false;     // between a status line and its blank line
  bool final_done_ = false;     // the final response's header section ended: trailers follow
};

}  // namespace tapkit::replay::internal

#endif  // TAPKIT_REPLAY_REPLAY_REQUEST_H_
