// protocol.h: the seam between the capture engine and the parser of one TCP connection's protocol.
//
// The engine (engine.h) reassembles each TCP connection into two byte streams and decides which
// protocol the connection speaks; from then on it talks to that connection's ProtocolParser only
// through this interface: the client's and the server's bytes (with where they sit in their
// stream, StreamPosition), the bytes each side lost (gaps), the server's FIN, and the end of the
// connection. HTTP/1 (http1.h, Http1Connection) is one implementation; HTTP/2 is meant to be
// another, registered through EngineOptions::protocols (a ProtocolFactory) without changes to
// the engine.
//
// A parser may switch the connection to another protocol: HTTP/1 does when a `101 Switching
// Protocols` answers a request carrying `Upgrade` (RFC 9110 sections 7.8 and 15.2.2; h2c, RFC 7540
// section 3.2 / RFC 9113 section 3.1; WebSocket, RFC 6455 section 4). It then reports a
// ProtocolSwitch (ReportSwitch) holding the protocol token and every byte it was given after the
// switch (the server's after the 101's header section, the client's after the upgrade request),
// with their positions. The engine asks its factory for a parser for the token, hands it those
// bytes and every later one, and keeps the old parser until the connection ends (its open
// exchanges end with the connection). With no parser for the token, the bytes are counted as
// `opaque_bytes_after_upgrade`, as they always were. The engine also asks the factory for token
// "h2c" when a connection begins with the HTTP/2 connection preface (RFC 9113 section 3.4,
// prior knowledge); with no parser, its bytes are the drop `http2_bytes`.
//
// Thread-safety: a ProtocolParser is not thread-safe: one per connection, created and called by
// the engine's thread only (the engine itself is used by one thread). A ProtocolFactory is called
// from that thread too, once per connection that needs a parser; it must be callable again
// (engines run on several threads each need their own factory or a thread-safe one).
#ifndef TAPKIT_SIDECAR_PROTOCOL_H_
#define TAPKIT_SIDECAR_PROTOCOL_H_

#include <cstdint>
#include <functional>
#include <map>
#include <memory>
#include <optional>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include "format/exchange.h"

namespace tapkit {

// Where bytes handed to a ProtocolParser sit in their TCP stream (tcp_reassembly.h).
struct StreamPosition {
  uint64_t ts_ns = 0;   // capture time of the segment that completed them (ns since the epoch)
  uint64_t offset = 0;  // stream offset of the first byte (0: the byte after the SYN)
  // The peer's stream offset the segment carrying the first byte acknowledged (everything the
  // sender had received from the peer when it sent it); nullopt when unknown.
  std::optional<int64_t> peer_ack;
  // The same as the raw acknowledgement number, for when the peer's stream had not begun yet (a
  // capture picked up mid-connection): Http1Connection maps it later (set_sequence_mapper).
  std::optional<uint32_t> peer_ack_seq;
};

// What a parser reports when the connection switched protocols (ProtocolParser::ReportSwitch).
struct ProtocolSwitch {
  // The protocol switched to, lower-case (protocol names are case-insensitive, RFC 9110 section
  // 7.8): the first protocol of the 101's Upgrade field (or of the request's, when the 101 has
  // none), with its "/version" if it carries one: "h2c", "websocket". Comes from the wire: never
  // use it as a counter name.
  std::string token;
  // The exchange whose request asked for the upgrade, with the 101 as its response (its stream
  // id set, its times not yet relative): for h2c, the request the server answers on HTTP/2
  // stream 1 (RFC 7540 section 3.2). nullopt when the 101 answered no request the capture holds.
  std::optional<Exchange> upgrade;
  // Every byte the parser was given after the switch, in the order it was given: the client's
  // bytes after the upgrade request (held until the 101 came) first, then the server's after the
  // 101's header section, each with its own position.
  struct Bytes {
    bool client = false;  // from the client's stream (else the server's)
    std::string data;
    StreamPosition at;
  };
  std::vector<Bytes> bytes;
};

// How a protocol began on a connection (ProtocolStart::how).
enum class ProtocolStartKind : uint8_t {
  kUpgrade,         // after a 101 (ProtocolStart::upgrade is set when the capture holds the request)
  kPriorKnowledge,  // the client's first bytes are the protocol's own (the HTTP/2 preface)
};

// What a ProtocolFactory gets to build a parser for one connection. Pointers and views are valid
// for the factory call only, except `next_stream_id`, `counters` and `drops`, which outlive the
// parser.
struct ProtocolStart {
  std::string_view token;  // "h2c", "websocket", ... (ProtocolSwitch::token)
  ProtocolStartKind how = ProtocolStartKind::kUpgrade;
  const Exchange* upgrade = nullptr;  // kUpgrade: ProtocolSwitch::upgrade, when there is one
  // The fields every exchange of the connection shares: endpoints (source = the client), capture
  // point, direction, TLS.
  Exchange base;
  uint64_t* next_stream_id = nullptr;  // numbers exchanges: take (*next_stream_id)++ for each
  std::function<void(Exchange&&)> emit;  // writes an exchange (the engine's callback)
  uint64_t body_limit = 0;               // bytes of each body kept (--snaplen-body)
  // The engine's counters and drops (CaptureEngine::Counters / Drops). Names must be fixed
  // strings of the parser's, never bytes from the wire; add to them rarely (at Close, say), not
  // per byte.
  std::map<std::string, uint64_t>* counters = nullptr;
  std::map<std::string, uint64_t>* drops = nullptr;
};

class ProtocolParser {
 public:
  virtual ~ProtocolParser() = default;

  // Bytes of the client's (server's) stream at `at`, in stream order, never overlapping. The
  // engine gives server bytes only after the client bytes they acknowledge (at.peer_ack) were
  // given or given up as a gap, so that a response is paired once every request it may answer is
  // known. `data` is valid for the call only.
  virtual void OnClientData(std::span<const uint8_t> data, const StreamPosition& at) = 0;
  virtual void OnServerData(std::span<const uint8_t> data, const StreamPosition& at) = 0;
  // Bytes [offset, offset + bytes) of that stream were lost (`snaplen`: cut by the snaplen);
  // `ts_ns` is when the capture found out.
  virtual void OnClientGap(uint64_t offset, uint64_t bytes, uint64_t ts_ns, bool snaplen) = 0;
  virtual void OnServerGap(uint64_t offset, uint64_t bytes, uint64_t ts_ns, bool snaplen) = 0;
  // The client (server) closed its side (FIN), every byte before it given: for the server, a
  // body read until the close (RFC 9112 section 6.3 item 8) ends here.
  virtual void OnClientEnd(uint64_t ts_ns) { (void)ts_ns; }
  virtual void OnServerEnd(uint64_t ts_ns) = 0;
  // The connection is gone (both FINs, a RST, idle expiry, the capture's end, at `ts_ns`): every
  // exchange still open is written with `how` and `reason`. Nothing is called after it.
  virtual void Close(Completion how, std::string_view reason, uint64_t ts_ns) = 0;

  // The connection switched protocols in the bytes given last (see the file comment). The engine
  // checks after every call and takes the switch at once; a parser gets no bytes after it
  // reported one, only Close.
  bool switched() const { return switch_ != nullptr; }
  std::unique_ptr<ProtocolSwitch> TakeSwitch() { return std::move(switch_); }

 protected:
  void ReportSwitch(std::unique_ptr<ProtocolSwitch> s) { switch_ = std::move(s); }

 private:
  std::unique_ptr<ProtocolSwitch> switch_;
};

// Returns the parser for `start.token`, or nullptr when there is none (the bytes are then counted
// as they are without a factory). Called on the engine's thread.
using ProtocolFactory = std::function<std::unique_ptr<ProtocolParser>(const ProtocolStart& start)>;

}  // namespace tapkit

#endif  // TAPKIT_SIDECAR_PROTOCOL_H_
