// http1.h: HTTP/1.0 and 1.1 exchanges from the two reassembled byte streams of one connection.
//
// Messages are parsed with the nodejs http-parser library (Debian's libhttp-parser, 2.9) in
// lenient mode, one parser per direction; the plainest whole messages (HTTP/1.1, Content-Length
// framing, nothing http-parser would read differently) take a fast path that reads them without
// the library's per-byte callbacks and gives the same exchanges (Http1Options::fast_path); requests
// and responses are paired in order (RFC 9112 section 9.3, pipelining). Interim 1xx responses join
// the exchange they precede; HEAD responses and CONNECT 2xx carry no body (RFC 9112 section 6.3);
// an Upgrade (101) or CONNECT tunnel ends HTTP on the connection, whose remaining bytes are counted
// as opaque. A parse error marks the exchange malformed with the parser's reason and parsing
// resumes at the next message start, as it does after a gap in the TCP stream.
//
// Thread-safety: not thread-safe; one object per connection, used by one thread.
#ifndef TAPKIT_SIDECAR_HTTP1_H_
#define TAPKIT_SIDECAR_HTTP1_H_

#include <cstdint>
#include <deque>
#include <functional>
#include <memory>
#include <span>
#include <string>

#include "format/exchange.h"

namespace tapkit {

struct Http1Options {
  uint64_t body_limit = 64 << 10;  // bytes of each body kept (--snaplen-body)
  // Read the plainest whole messages without http-parser (http1.cc, Http1Callbacks::Fast): the
  // same exchanges, about three times faster on typical service traffic. Off: every byte goes
  // through http-parser (the tests compare the two).
  bool fast_path = true;
  // Live views (DESIGN.md section 2, the first two phases): called when a request's header
  // section ends, with the exchange as far as it goes (endpoints, request line and headers, no
  // body), and when a final response's header section ends (1xx are not final). `id` is the
  // stream id the whole exchange will carry; `ts_ns` the message's first byte. Unset: not called.
  std::function<void(const Exchange& x, uint64_t id, uint64_t ts_ns)> on_request_headers;
  std::function<void(const Exchange& x, uint64_t id, uint16_t status, uint64_t ts_ns)>
      on_response_headers;
};

struct Http1Counters {
  uint64_t requests = 0;
  uint64_t responses = 0;
  uint64_t malformed = 0;
  uint64_t resyncs = 0;         // times parsing skipped ahead to the next message start
  uint64_t skipped_bytes = 0;   // bytes skipped while resynchronising
  uint64_t body_truncated = 0;  // bodies cut at the body limit
  uint64_t opaque_bytes = 0;    // after an Upgrade or CONNECT
  uint64_t upgrades = 0;
  uint64_t h2c_upgrades = 0;
  uint64_t held_bytes_dropped = 0;  // client bytes after an Upgrade request, over the hold cap
  uint64_t pending_limit = 0;       // requests written without response at the queue cap
  uint64_t fast_path_messages = 0;  // messages read by the fast path (Http1Options::fast_path)
};

// True when `data` begins like an HTTP/1 request line ("GET /", "OPTIONS * ", a method token of
// capital letters then a space) or a status line ("HTTP/1."). `*is_request` says which.
bool LooksLikeHttp1Start(std::span<const uint8_t> data, bool* is_request);

class Http1Connection {
 public:
  using Emit = std::function<void(Exchange&&)>;
  // `base` carries the fields every exchange of the connection shares: endpoints (source = the
  // client), capture point, direction, TLS. `next_stream_id` numbers the exchanges.
  // `client_at_start` / `server_at_start`: that side's stream begins with its first byte (the
  // capture saw the SYN and nothing was delivered yet), so its first message is read as it is;
  // otherwise the side skips to the first recognisable message start.
  Http1Connection(Exchange base, Http1Options options, uint64_t* next_stream_id, Emit emit,
                  Http1Counters* counters, bool client_at_start = false,
                  bool server_at_start = false);
  ~Http1Connection();

  void OnClientData(std::span<const uint8_t> data, uint64_t ts_ns);
  void OnServerData(std::span<const uint8_t> data, uint64_t ts_ns);
  void OnClientGap(uint64_t bytes, uint64_t ts_ns);
  void OnServerGap(uint64_t bytes, uint64_t ts_ns);
  // The client or server closed its side (FIN): a read-until-close body ends here.
  void OnServerEnd(uint64_t ts_ns);
  // The connection is gone: every exchange still open is written with `how`.
  void Close(Completion how, std::string_view reason, uint64_t ts_ns);

  bool opaque() const;  // HTTP ended (Upgrade, CONNECT tunnel)

 private:
  struct Side;
  struct Pending;
  void Feed(Side& side, std::span<const uint8_t> data, uint64_t ts_ns);
  void Gap(Side& side, uint64_t bytes, uint64_t ts_ns);
  void Finish(Pending& p, Completion how, std::string_view reason);
  void KeepPartial(Side& side);
  void Hold(Side& side, std::span<const uint8_t> data);
  void ReleaseHeld(uint64_t ts_ns);
  void EndResponse(Side& side, Completion how, const std::string& why);

  friend struct Http1Callbacks;
  Exchange base_;
  Http1Options options_;
  uint64_t* next_stream_id_;
  Emit emit_;
  Http1Counters* counters_;
  std::unique_ptr<Side> client_, server_;
  // Exchanges whose request started, in order; the front one is what the next response answers.
  std::deque<std::unique_ptr<Pending>> pending_;
  std::unique_ptr<Pending> orphan_;  // a response with no captured request
  bool tunnel_ = false;
  bool release_held_ = false;  // a declined Upgrade: Feed hands the held client bytes back
};

}  // namespace tapkit

#endif  // TAPKIT_SIDECAR_HTTP1_H_
