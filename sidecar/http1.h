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
#include <optional>
#include <span>
#include <string>

#include "format/exchange.h"
#include "format/format.h"  // kDefaultBodyLimit

namespace tapkit {

struct Http1Options {
  uint64_t body_limit = format::kDefaultBodyLimit;  // bytes of each body kept (--snaplen-body)
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

// Where bytes handed to Http1Connection sit in their TCP stream (tcp_reassembly.h).
struct StreamPosition {
  uint64_t ts_ns = 0;   // capture time of the segment that completed them
  uint64_t offset = 0;  // stream offset of the first byte
  // The peer's stream offset the segment carrying the first byte acknowledged (everything the
  // sender had received from the peer when it sent it); nullopt when unknown.
  std::optional<int64_t> peer_ack;
  // The same as the raw acknowledgement number, for when the peer's stream had not begun yet (a
  // capture picked up mid-connection): Http1Connection maps it later (set_sequence_mapper).
  std::optional<uint32_t> peer_ack_seq;
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
  // Pairing (Http1Connection): responses the TCP evidence could not pair with one request, the
  // requests they may have answered, requests whose response was lost in a gap, responses whose
  // request was, and connections found to pipeline.
  uint64_t ambiguous_responses = 0;
  uint64_t ambiguous_requests = 0;
  uint64_t responses_lost = 0;
  uint64_t requests_lost = 0;
  uint64_t pipelined_connections = 0;
  uint64_t partial_fields_dropped = 0;    // header fields cut by a gap or the snaplen, not kept
  uint64_t chunked_with_length = 0;       // messages framed by both Transfer-Encoding and C-L
  uint64_t non_http_replies = 0;          // replies kept as bytes: HTTP/0.9 or not HTTP at all
  uint64_t interim_with_body_header = 0;  // 1xx carrying Content-Length or T-E (ignored)
  // Server bytes a request acknowledged that came before the first one captured (a capture
  // picked up mid-connection that lost the response after the first request).
  uint64_t unseen_server_bytes = 0;
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

  // Bytes of the client's (server's) stream at `at`. Server bytes must come only after the
  // client bytes they acknowledge (at.peer_ack) were given, or given up as a gap: the capture
  // engine holds them back (engine.h) so that a response is paired once every request it may
  // answer is known.
  void OnClientData(std::span<const uint8_t> data, const StreamPosition& at);
  void OnServerData(std::span<const uint8_t> data, const StreamPosition& at);
  // Without positions (tests, fuzzers): offsets follow the bytes given, no ACK evidence.
  void OnClientData(std::span<const uint8_t> data, uint64_t ts_ns);
  void OnServerData(std::span<const uint8_t> data, uint64_t ts_ns);
  // Bytes [offset, offset + bytes) of that stream were lost (`snaplen`: cut by the snaplen).
  void OnClientGap(uint64_t offset, uint64_t bytes, uint64_t ts_ns, bool snaplen = false);
  void OnServerGap(uint64_t offset, uint64_t bytes, uint64_t ts_ns, bool snaplen = false);
  void OnClientGap(uint64_t bytes, uint64_t ts_ns);
  void OnServerGap(uint64_t bytes, uint64_t ts_ns);
  // The client or server closed its side (FIN): a read-until-close body ends here.
  void OnServerEnd(uint64_t ts_ns);
  // The connection is gone: every exchange still open is written with `how`.
  void Close(Completion how, std::string_view reason, uint64_t ts_ns);

  bool opaque() const;  // HTTP ended (Upgrade, CONNECT tunnel)

  // Maps a raw acknowledgement number to a stream offset (`server_stream`: the server's stream),
  // or nullopt while that stream has not begun. Lets a request whose segment acknowledged a
  // server stream the capture had not seen begin yet be placed once it has.
  using SequenceMapper = std::function<std::optional<int64_t>(bool server_stream, uint32_t seq)>;
  void set_sequence_mapper(SequenceMapper mapper) { mapper_ = std::move(mapper); }

 private:
  struct Side;
  struct Pending;
  // A place in the client's sequence of requests that a response may answer (see PairResponse):
  // a request seen, or client bytes the capture lost or could not parse, which may hold
  // requests never seen.
  struct Slot {
    Pending* p = nullptr;             // nullptr: lost or unparsed client bytes
    uint64_t begin = 0, end = 0;      // client stream offsets (a request: its first byte)
    std::optional<int64_t> ack;       // server offset its first segment acknowledged (lost: before)
    std::optional<uint32_t> ack_seq;  // the same, raw, until the server stream began
    uint32_t min = 0;                 // lost bytes: requests they hold at least
    bool ambiguous = false;           // an ambiguous response may have answered it
  };
  // Server bytes lost or unparsed since the last response began.
  struct ServerLoss {
    bool any = false;
    uint32_t min = 0;  // responses they hold at least (a gap at a message boundary: one)
    uint64_t end = 0;  // server offset where the last of them ends
    uint64_t bytes = 0;
  };
  void Feed(Side& side, std::span<const uint8_t> data, const StreamPosition& at);
  void Gap(Side& side, uint64_t offset, uint64_t bytes, uint64_t ts_ns, bool snaplen);
  void Finish(Pending& p, Completion how, std::string_view reason);
  void KeepPartial(Side& side, bool cut);
  void Hold(Side& side, std::span<const uint8_t> data);
  void ReleaseHeld(uint64_t ts_ns);
  void EndResponse(Side& side, Completion how, const std::string& why);
  // The exchange the response starting at side.msg_offset belongs to (decided once per message).
  Pending* ResponseTarget(Side& side);
  // True when that answer is plain (no loss, no ambiguity, and the first request fits: *target
  // is then that request's exchange); decides
  // nothing (the fast path asks before it commits to reading the message, so that it and
  // http-parser decide alike).
  bool PlainResponseTarget(const Side& side, Pending** target) const;
  Pending* PairResponse(uint64_t begin, std::optional<int64_t> ack);
  void AddRequestSlot(Pending* p, uint64_t begin, std::optional<int64_t> ack);
  void AddClientLoss(uint64_t begin, uint64_t end, uint32_t min, std::optional<int64_t> ack);
  void AddServerLoss(uint64_t end, uint64_t bytes, uint32_t min);
  // The request of `slot` will get no response from the capture: lost or ambiguous.
  void Retire(const Slot& slot);
  void Forget(Pending* p);  // `p` leaves pending_: its slot goes too
  void ResponseEnded(Pending* p, uint64_t end);
  void WriteIfWhole(Pending* p);

  friend struct Http1Callbacks;
  Exchange base_;
  Http1Options options_;
  uint64_t* next_stream_id_;
  Emit emit_;
  Http1Counters* counters_;
  std::unique_ptr<Side> client_, server_;
  // Exchanges whose request started, in order, until written.
  std::deque<std::unique_ptr<Pending>> pending_;
  // Places a response may answer, oldest first; the next response answers one of the first
  // limbo_ + 1 (an ambiguous response left it unknown which of them are answered).
  std::deque<Slot> slots_;
  size_t limbo_ = 0;
  ServerLoss loss_;
  bool pipelined_ = false;  // the client sent a request before the previous response ended
  // The last response paired exactly ended here (server offset), answering the last slot.
  std::optional<uint64_t> last_end_;
  std::unique_ptr<Pending> orphan_;  // a response with no request it can be paired with
  SequenceMapper mapper_;
  bool start_checked_ = false;  // server bytes before the first one captured were looked for
  bool tunnel_ = false;
  bool release_held_ = false;  // a declined Upgrade: Feed hands the held client bytes back
};

}  // namespace tapkit

#endif  // TAPKIT_SIDECAR_HTTP1_H_
