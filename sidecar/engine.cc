#include "sidecar/engine.h"

#include <algorithm>
#include <cstring>
#include <deque>
#include <unordered_map>

#include "absl/strings/str_cat.h"
#include "sidecar/decode.h"
#include "sidecar/tcp_reassembly.h"

namespace tapkit {
namespace {

// A connection's two endpoints, in a canonical order so both directions find the same entry.
struct ConnKey {
  IpAddress a, b;
  uint16_t a_port = 0, b_port = 0;
  bool operator==(const ConnKey&) const = default;
};

struct ConnKeyHash {
  size_t operator()(const ConnKey& k) const {
    uint64_t h = 1469598103934665603ull;
    auto mix = [&h](const void* p, size_t n) {
      const auto* b = static_cast<const uint8_t*>(p);
      for (size_t i = 0; i < n; ++i) h = (h ^ b[i]) * 1099511628211ull;
    };
    mix(k.a.bytes.data(), k.a.size());
    mix(k.b.bytes.data(), k.b.size());
    mix(&k.a_port, 2);
    mix(&k.b_port, 2);
    return static_cast<size_t>(h);
  }
};

bool Less(const IpAddress& x, uint16_t xp, const IpAddress& y, uint16_t yp) {
  if (x.family != y.family) return x.family < y.family;
  int c = std::memcmp(x.bytes.data(), y.bytes.data(), 16);
  if (c != 0) return c < 0;
  return xp < yp;
}

constexpr std::string_view kH2Preface = "PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n";

// What a connection speaks. kParsed: its bytes go to a ProtocolParser (protocol.h): HTTP/1, or
// one EngineOptions::protocols returned; kHttp2 is HTTP/2 with no parser for it (counted only).
enum class Proto : uint8_t { kUnknown, kParsed, kTls, kHttp2, kOpaque };

// How long a closed connection's 4-tuple is remembered (capture time), so that retransmissions of
// its last segments are not taken for a new connection picked up mid-stream. They come within
// the retransmission timeout (RFC 6298: 1 s initially, doubling); 10 s covers several. Only the
// 4-tuple is kept, so memory stays flat at any connection rate.
constexpr uint64_t kClosedLinger = 10'000'000'000ull;

}  // namespace

std::string TlsClientHelloSni(std::span<const uint8_t> d) {
  // TLS record: type 22 (handshake), version, length; handshake: type 1 (ClientHello), length.
  if (d.size() < 9 || d[0] != 0x16 || d[1] != 0x03 || d[5] != 0x01) return {};
  size_t rec_len = size_t{d[3]} << 8 | d[4];
  std::span<const uint8_t> h = d.subspan(5, std::min(rec_len, d.size() - 5));
  size_t at = 4 + 2 + 32;  // handshake header, client_version, random
  auto need = [&h, &at](size_t n) { return at + n <= h.size(); };
  if (!need(1)) return {};
  at += 1 + h[at];  // session id
  if (!need(2)) return {};
  at += 2 + (size_t{h[at]} << 8 | h[at + 1]);  // cipher suites
  if (!need(1)) return {};
  at += 1 + h[at];  // compression methods
  if (!need(2)) return {};
  size_t ext_end = std::min(h.size(), at + 2 + (size_t{h[at]} << 8 | h[at + 1]));
  at += 2;
  while (at + 4 <= ext_end) {
    size_t type = size_t{h[at]} << 8 | h[at + 1];
    size_t len = size_t{h[at + 2]} << 8 | h[at + 3];
    at += 4;
    if (at + len > ext_end) return {};
    if (type == 0 && len >= 5) {  // server_name: list length, name type 0 (host_name), length
      size_t name_len = size_t{h[at + 3]} << 8 | h[at + 4];
      if (h[at + 2] == 0 && 5 + name_len <= len) {
        return std::string(reinterpret_cast<const char*>(h.data() + at + 5), name_len);
      }
      return {};
    }
    at += len;
  }
  return {};
}

struct CaptureEngine::Impl {
  struct Conn;

  // Forwards one direction's reassembled stream to its connection.
  struct DirSink final : StreamSink {
    Conn* conn = nullptr;
    int dir = 0;
    void OnData(std::span<const uint8_t> data, const ChunkInfo& at) override;
    void OnGap(uint64_t offset, uint64_t bytes, uint64_t ts, bool snaplen) override;
  };

  // Bytes (or a gap) of one direction kept before they reach the parser: while the protocol
  // is undecided, and, on the server side, while they acknowledge client bytes not seen yet.
  struct Piece {
    ChunkInfo at;
    std::string data;
    uint64_t gap_bytes = 0;  // a gap of this many bytes at at.offset instead of data
    bool snaplen = false;
  };

  struct Conn {
    Impl* engine = nullptr;
    ConnKey key;
    IpAddress ip[2];
    uint16_t port[2] = {0, 0};
    TcpReassembler stream[2];
    DirSink sink[2];
    int client = -1;  // which direction's sender is the client: known from SYN or content
    Proto proto = Proto::kUnknown;
    // The connection's parser, once the protocol is known; the parsers it switched away from
    // (protocol.h, ProtocolSwitch) wait in `earlier` for the connection's end, which ends their
    // open exchanges.
    std::unique_ptr<ProtocolParser> parser;
    std::vector<std::unique_ptr<ProtocolParser>> earlier;
    uint64_t undecided[2] = {0, 0};  // bytes looked at without finding a protocol
    std::string held[2];  // those bytes, kept (up to the cap) until the protocol is known
    std::vector<Piece> held_pieces[2];    // the same as they came, with offsets and ACKs
    size_t skip[2] = {0, 0};              // held bytes before the message start Decide found
    uint64_t deciding_bytes[2] = {0, 0};  // size of the chunk being decided on, per direction
    uint64_t last_ts = 0;
    bool fin[2] = {false, false};  // the direction has ended (FIN and every byte before it)
    // Server bytes waiting for the client bytes they acknowledge (cross-direction reordering),
    // oldest first; `inbox_since`: capture time the front began to wait.
    std::deque<Piece> inbox;
    uint64_t inbox_since = 0;
    bool server_end_sent = false;  // ProtocolParser::OnServerEnd was called
    bool client_end_sent = false;  // ProtocolParser::OnClientEnd was called

    Conn(Impl* e, size_t cap, uint64_t window)
        : engine(e), stream{TcpReassembler(cap, window), TcpReassembler(cap, window)} {
      for (int d = 0; d < 2; ++d) {
        sink[d].conn = this;
        sink[d].dir = d;
      }
    }
  };

  EngineOptions options;
  Emit emit;
  std::unordered_map<ConnKey, std::unique_ptr<Conn>, ConnKeyHash> conns;
  // Recently closed connections: 4-tuple -> close time, and the same in close order for expiry.
  struct Tombstone {
    uint64_t ts;
    bool by_reset;
  };
  std::unordered_map<ConnKey, Tombstone, ConnKeyHash> closed;
  std::deque<std::pair<uint64_t, ConnKey>> closed_order;
  Http1Counters http_counters;
  uint64_t next_stream_id = 1;
  std::map<std::string, uint64_t> counters, drops;
  std::vector<uint16_t> link_types;
  size_t buffered_total = 0;
  size_t waiting_conns = 0;  // connections whose inbox holds server bytes
  uint64_t last_expiry_check = 0;
  uint64_t clock = 0;  // capture time for expiry, advanced at most 1 s per packet
  uint64_t last_full_expiry = 0;

  // IPv4 fragments in progress, by (src, dst, id, protocol).
  struct Datagram {
    std::string data;
    std::vector<std::pair<uint32_t, uint32_t>> have;  // [start, end) ranges
    uint32_t total = 0;                               // known once the last fragment arrived
    uint64_t first_ts = 0;
  };
  std::map<std::tuple<std::array<uint8_t, 16>, std::array<uint8_t, 16>, uint16_t, uint8_t>,
           Datagram>
      fragments;

  void Count(const std::string& name, uint64_t n = 1) { counters[name] += n; }
  void Drop(const std::string& name, uint64_t n = 1) { drops[name] += n; }

  void OnTcp(const TcpSegment& seg, uint64_t ts);
  void OnFragment(const Ipv4Fragment& f, uint64_t ts);
  void Decide(Conn& c, int dir, std::span<const uint8_t> data, size_t newest);
  void Close(Conn& c, Completion how, std::string_view reason, uint64_t ts, bool by_reset = false);
  void Expire(uint64_t ts);
  void StartHttp(Conn& c, int client_dir);
  // The fields every exchange of the connection shares (source = the client).
  Exchange Base(const Conn& c, int client_dir) const;
  ProtocolStart StartOf(const Conn& c, std::string_view token, ProtocolStartKind how,
                        const Exchange* upgrade);
  // Hand-over to the parser, in the order the peers sent the bytes (see Ready).
  void ToParser(Conn& c, int dir, std::span<const uint8_t> data, const ChunkInfo& at);
  void GapToParser(Conn& c, int dir, uint64_t offset, uint64_t bytes, uint64_t ts, bool snaplen);
  // The only calls into a parser's bytes; each takes a protocol switch the call reported.
  void ParserData(Conn& c, int dir, std::span<const uint8_t> data, const StreamPosition& at);
  void ParserGap(Conn& c, int dir, uint64_t offset, uint64_t bytes, uint64_t ts, bool snaplen);
  // The parser reported a ProtocolSwitch: the factory's parser for it takes the connection over.
  void Switch(Conn& c);
  void ClientEnd(Conn& c);
  void Deliver(Conn& c, int dir, Piece&& p);
  bool Ready(Conn& c, const ChunkInfo& at) const;
  void Pump(Conn& c);
  // Server bytes that waited a reorder window for client bytes: the client bytes are lost.
  void ExpireInbox(Conn& c, uint64_t now, bool force);
  StreamPosition Position(Conn& c, int dir, const ChunkInfo& at) const;
  // The drop that counts the bytes of a connection of protocol `p` (not HTTP/1).
  static const std::string& DropName(Proto p) {
    static const std::string tls = "tls_bytes", h2 = "http2_bytes", other = "opaque_bytes";
    return p == Proto::kTls ? tls : p == Proto::kHttp2 ? h2 : other;
  }
};

StreamPosition CaptureEngine::Impl::Position(Conn& c, int dir, const ChunkInfo& at) const {
  StreamPosition pos;
  pos.ts_ns = at.ts_ns;
  pos.offset = at.offset;
  if (at.has_ack) {
    pos.peer_ack = c.stream[1 - dir].OffsetOf(at.ack);
    if (!pos.peer_ack) pos.peer_ack_seq = at.ack;
  }
  return pos;
}

// Server bytes go to the parser only once the client bytes their segment acknowledges have been
// delivered (or given up as lost): a response is paired only when every request it may answer
// is known, however the capture ordered the two directions (merged captures, -i any).
bool CaptureEngine::Impl::Ready(Conn& c, const ChunkInfo& at) const {
  if (!at.has_ack) return true;
  const TcpReassembler& peer = c.stream[c.client];
  std::optional<int64_t> off = peer.OffsetOf(at.ack);
  if (!off) return false;  // the client stream has not begun: its first bytes may be on the way
  // Once the client's FIN and every byte before it are in, nothing more can come (an ACK of the
  // FIN covers one sequence number past the last byte).
  return *off <= static_cast<int64_t>(peer.delivered()) || peer.finished();
}

void CaptureEngine::Impl::ParserData(Conn& c, int dir, std::span<const uint8_t> data,
                                     const StreamPosition& at) {
  if (dir == c.client) {
    c.parser->OnClientData(data, at);
  } else {
    c.parser->OnServerData(data, at);
  }
  if (c.parser->switched()) Switch(c);
}

void CaptureEngine::Impl::ParserGap(Conn& c, int dir, uint64_t offset, uint64_t bytes,
                                    uint64_t ts, bool snaplen) {
  if (dir == c.client) {
    c.parser->OnClientGap(offset, bytes, ts, snaplen);
  } else {
    c.parser->OnServerGap(offset, bytes, ts, snaplen);
  }
  if (c.parser->switched()) Switch(c);
}

void CaptureEngine::Impl::Switch(Conn& c) {
  std::unique_ptr<ProtocolSwitch> sw = c.parser->TakeSwitch();
  std::unique_ptr<ProtocolParser> next;
  if (options.protocols) {
    next = options.protocols(StartOf(c, sw->token, ProtocolStartKind::kUpgrade,
                                     sw->upgrade ? &*sw->upgrade : nullptr));
  }
  if (!next) {
    // No parser for the protocol: its bytes give no exchange (as without a factory), and the
    // parser that switched counts every later byte the same way.
    for (const ProtocolSwitch::Bytes& b : sw->bytes) http_counters.opaque_bytes += b.data.size();
    return;
  }
  Count("protocol_switches");
  c.earlier.push_back(std::move(c.parser));
  c.parser = std::move(next);
  for (const ProtocolSwitch::Bytes& b : sw->bytes) {
    ParserData(c, b.client ? c.client : 1 - c.client,
               std::span<const uint8_t>(reinterpret_cast<const uint8_t*>(b.data.data()),
                                        b.data.size()),
               b.at);
  }
  // A side that had already ended has ended for the new parser too.
  if (c.client_end_sent) c.parser->OnClientEnd(c.last_ts);
  if (c.server_end_sent) c.parser->OnServerEnd(c.last_ts);
}

void CaptureEngine::Impl::ClientEnd(Conn& c) {
  if (!c.parser || !c.fin[c.client] || c.client_end_sent) return;
  c.client_end_sent = true;
  c.parser->OnClientEnd(c.last_ts);
  if (c.parser->switched()) Switch(c);
}

void CaptureEngine::Impl::Deliver(Conn& c, int dir, Piece&& p) {
  if (p.gap_bytes) {
    ParserGap(c, dir, p.at.offset, p.gap_bytes, p.at.ts_ns, p.snaplen);
    return;
  }
  std::span<const uint8_t> bytes(reinterpret_cast<const uint8_t*>(p.data.data()), p.data.size());
  if (bytes.empty()) return;
  ParserData(c, dir, bytes, Position(c, dir, p.at));
}

void CaptureEngine::Impl::Pump(Conn& c) {
  while (!c.inbox.empty() && c.parser) {
    Piece& p = c.inbox.front();
    if (!p.gap_bytes && !Ready(c, p.at)) return;
    Piece piece = std::move(p);
    c.inbox.pop_front();
    c.inbox_since = c.last_ts;
    if (c.inbox.empty()) --waiting_conns;
    Deliver(c, 1 - c.client, std::move(piece));
  }
  // The server's FIN ends a body read until the close, once every byte before it was parsed.
  if (c.parser && c.inbox.empty() && c.fin[1 - c.client] && !c.server_end_sent) {
    c.server_end_sent = true;
    c.parser->OnServerEnd(c.last_ts);
    if (c.parser->switched()) Switch(c);
  }
}

void CaptureEngine::Impl::ExpireInbox(Conn& c, uint64_t now, bool force) {
  while (!c.inbox.empty() && c.parser) {
    if (!force && now < c.inbox_since + options.reorder_window_ns) return;
    Piece& p = c.inbox.front();
    TcpReassembler& peer = c.stream[c.client];
    std::optional<int64_t> off = p.at.has_ack ? peer.OffsetOf(p.at.ack) : std::nullopt;
    if (off && *off > static_cast<int64_t>(peer.delivered())) {
      // The server acknowledged client bytes the capture never showed within the window: they
      // were lost (or reordered further than the window allows).
      if (!force) Count("reorder_window_expired");
      size_t before = peer.buffered_bytes();
      peer.SkipTo(static_cast<uint64_t>(*off), now, &c.sink[c.client]);
      buffered_total -= std::min(buffered_total, before - std::min(before, peer.buffered_bytes()));
    }
    // No client bytes at all, or an ACK past the client's end: pair without its evidence.
    if (!c.inbox.empty() && !Ready(c, c.inbox.front().at)) c.inbox.front().at.has_ack = false;
    Pump(c);
    if (!c.inbox.empty()) c.inbox_since = now;
  }
}

void CaptureEngine::Impl::ToParser(Conn& c, int dir, std::span<const uint8_t> data,
                                 const ChunkInfo& at) {
  if (dir == c.client) {
    ParserData(c, dir, data, Position(c, dir, at));
    Pump(c);
    return;
  }
  if (c.inbox.empty() && Ready(c, at)) {
    ParserData(c, dir, data, Position(c, dir, at));
    return;
  }
  if (c.inbox.empty()) {
    c.inbox_since = at.ts_ns;
    ++waiting_conns;
  }
  Piece& p = c.inbox.emplace_back();
  p.at = at;
  p.data.assign(reinterpret_cast<const char*>(data.data()), data.size());
}

void CaptureEngine::Impl::GapToParser(Conn& c, int dir, uint64_t offset, uint64_t bytes, uint64_t ts,
                                    bool snaplen) {
  if (dir == c.client) {
    ParserGap(c, dir, offset, bytes, ts, snaplen);
    Pump(c);
    return;
  }
  if (c.inbox.empty()) {
    ParserGap(c, dir, offset, bytes, ts, snaplen);
    return;
  }
  Piece& p = c.inbox.emplace_back();  // behind bytes that wait: in order
  p.at.offset = offset;
  p.at.ts_ns = ts;
  p.gap_bytes = bytes;
  p.snaplen = snaplen;
}

void CaptureEngine::Impl::DirSink::OnData(std::span<const uint8_t> data, const ChunkInfo& at) {
  Conn& c = *conn;
  Impl& e = *c.engine;
  if (c.proto == Proto::kUnknown) {
    // A request line may come in pieces ("GE", "T / HTTP/1.1..."): decide on all the bytes of
    // this direction so far, and hand them all over once decided.
    std::string& held = c.held[dir];
    if (held.size() < e.options.max_undecided_bytes) {
      size_t keep = std::min(data.size(), e.options.max_undecided_bytes - held.size());
      held.append(reinterpret_cast<const char*>(data.data()), keep);
      Piece& p = c.held_pieces[dir].emplace_back();
      p.at = at;
      p.data.assign(reinterpret_cast<const char*>(data.data()), keep);
    }
    std::span<const uint8_t> all(reinterpret_cast<const uint8_t*>(held.data()), held.size());
    e.Decide(c, dir, all, data.size());
    if (c.proto != Proto::kParsed) {
      if (c.proto != Proto::kUnknown) {
        e.Drop(e.DropName(c.proto), c.held[0].size() + c.held[1].size());
        for (int d = 0; d < 2; ++d) {
          c.held[d].clear();
          c.held_pieces[d].clear();
        }
      }
      return;
    }
    // Decided: replay what was held, the other direction's first (it came earlier); the server's
    // bytes wait, as any, for the client bytes they acknowledge.
    std::vector<Piece> pieces[2] = {std::move(c.held_pieces[0]), std::move(c.held_pieces[1])};
    for (int d = 0; d < 2; ++d) {
      c.held[d].clear();
      c.held_pieces[d].clear();
    }
    for (int d : {1 - dir, dir}) {
      size_t skip = c.skip[d];  // bytes before the message start Decide found
      for (Piece& p : pieces[d]) {
        if (p.gap_bytes) {
          e.GapToParser(c, d, p.at.offset, p.gap_bytes, p.at.ts_ns, p.snaplen);
          continue;
        }
        size_t cut = std::min(skip, p.data.size());
        skip -= cut;
        if (cut == p.data.size()) continue;
        ChunkInfo at2 = p.at;
        at2.offset += cut;
        e.ToParser(c, d,
                 std::span<const uint8_t>(reinterpret_cast<const uint8_t*>(p.data.data()) + cut,
                                          p.data.size() - cut),
                 at2);
      }
    }
    e.ClientEnd(c);  // the client's FIN may have come while the protocol was undecided
    return;
  }
  if (c.proto == Proto::kParsed) {
    e.ToParser(c, dir, data, at);
  } else {
    // TLS, HTTP/2 without a parser and other protocols: bytes that give no exchange.
    e.Drop(e.DropName(c.proto), data.size());
  }
}

void CaptureEngine::Impl::DirSink::OnGap(uint64_t offset, uint64_t bytes, uint64_t ts,
                                         bool snaplen) {
  Conn& c = *conn;
  Impl& e = *c.engine;
  e.Count("tcp_gaps");
  e.Drop(snaplen ? "snaplen_bytes" : "tcp_gap_bytes", bytes);
  if (c.proto == Proto::kParsed) {
    e.GapToParser(c, dir, offset, bytes, ts, snaplen);
  } else if (c.proto == Proto::kUnknown) {
    // Kept for the HTTP/1 parser, should the connection turn out to be HTTP/1: a loss before
    // its first bytes is still a place a request or response may have been.
    Piece& p = c.held_pieces[dir].emplace_back();
    p.at.offset = offset;
    p.at.ts_ns = ts;
    p.gap_bytes = bytes;
    p.snaplen = snaplen;
  }
}

Exchange CaptureEngine::Impl::Base(const Conn& c, int client_dir) const {
  Exchange base;
  base.capture_point = options.capture_point;
  base.source.ip = c.ip[client_dir];
  base.source.port = c.port[client_dir];
  base.destination.ip = c.ip[1 - client_dir];
  base.destination.port = c.port[1 - client_dir];
  base.tls = TlsState::kNo;
  return base;
}

ProtocolStart CaptureEngine::Impl::StartOf(const Conn& c, std::string_view token,
                                           ProtocolStartKind how, const Exchange* upgrade) {
  ProtocolStart s;
  s.token = token;
  s.how = how;
  s.upgrade = upgrade;
  s.base = Base(c, c.client);
  s.next_stream_id = &next_stream_id;
  s.emit = emit;
  s.body_limit = options.http.body_limit;
  s.counters = &counters;
  s.drops = &drops;
  return s;
}

void CaptureEngine::Impl::StartHttp(Conn& c, int client_dir) {
  c.client = client_dir;
  c.proto = Proto::kParsed;
  Count("http1_connections");
  // A side whose stream began at its SYN and has delivered nothing but the bytes being decided is
  // read from its first byte; a side picked up mid-stream looks for a message start first.
  auto at_start = [&c](int d) {
    if (!c.stream[d].syn_seen()) return false;
    // What was held while undecided begins at offset 0 (with bytes, or with their loss).
    if (!c.held_pieces[d].empty()) return c.held_pieces[d].front().at.offset == 0;
    return c.stream[d].delivered() <= c.deciding_bytes[d];
  };
  auto http = std::make_unique<Http1Connection>(Base(c, client_dir), options.http, &next_stream_id,
                                                emit, &http_counters, at_start(client_dir),
                                                at_start(1 - client_dir));
  Conn* conn = &c;  // owns the parser, so outlives it
  http->set_sequence_mapper([conn](bool server_stream, uint32_t seq) {
    return conn->stream[server_stream ? 1 - conn->client : conn->client].OffsetOf(seq);
  });
  c.parser = std::move(http);
}

// `data` is everything this direction sent so far (held while undecided); `newest` the size of
// the chunk that just arrived.
void CaptureEngine::Impl::Decide(Conn& c, int dir, std::span<const uint8_t> data, size_t newest) {
  if (data.size() >= 3 && data[0] == 0x16 && data[1] == 0x03 && data[2] <= 0x04) {
    c.proto = Proto::kTls;
    Count("tls_connections");
    // Counted without the name: a counter per server name seen would let a hostile capture grow
    // every stats message and the file trailer without bound (no counter is keyed by wire bytes).
    if (!TlsClientHelloSni(data).empty()) Count("tls_connections_with_sni");
    return;
  }
  std::string_view text(reinterpret_cast<const char*>(data.data()), data.size());
  if (text.substr(0, kH2Preface.size()) ==
          kH2Preface.substr(0, std::min(text.size(), kH2Preface.size())) &&
      text.size() >= 4) {
    c.proto = Proto::kHttp2;
    Count("http2_connections");
    // HTTP/2 with prior knowledge (RFC 9113 section 3.4): the sender of the preface is the
    // client. With a parser for "h2c" (RFC 9113 section 3.1) the bytes go to it; without, they
    // are the drop http2_bytes.
    if (options.protocols) {
      c.client = dir;
      if (auto p = options.protocols(StartOf(c, "h2c", ProtocolStartKind::kPriorKnowledge,
                                             nullptr))) {
        c.parser = std::move(p);
        c.proto = Proto::kParsed;
      }
    }
    return;
  }
  c.deciding_bytes[dir] = data.size();
  bool is_request = false;
  if (LooksLikeHttp1Start(data, &is_request)) {
    StartHttp(c, is_request ? dir : 1 - dir);
    return;
  }
  // A stream seen from its SYN whose first bytes are a capital-letter word ending in a space or
  // line end: a request, however odd its line (zeek's methods test sends "OPTIONS\n").
  if (c.stream[dir].syn_seen() && c.stream[dir].delivered() == data.size() && data.size() > 3 &&
      (c.client < 0 || c.client == dir)) {
    size_t i = 0;
    while (i < data.size() && i < 24 &&
           ((data[i] >= 'A' && data[i] <= 'Z') || data[i] == '_' || data[i] == '-')) {
      ++i;
    }
    if (i >= 3 && i < data.size() && (data[i] == ' ' || data[i] == '\r' || data[i] == '\n')) {
      StartHttp(c, dir);
      return;
    }
  }
  // Picked up mid-message: look for a message start at the beginning of a later line, or where
  // the newest segment begins (a segment boundary is often a message boundary: after a TCP
  // keep-alive probe's stray byte, say).
  size_t segment_start = data.size() - std::min(newest, data.size());
  for (size_t i = 1; i < data.size(); ++i) {
    if (data[i - 1] != '\n' && i != segment_start) continue;
    if (LooksLikeHttp1Start(data.subspan(i), &is_request)) {
      c.skip[dir] = i;  // the bytes before the start are not handed to the parser
      http_counters.skipped_bytes += i;
      StartHttp(c, is_request ? dir : 1 - dir);
      return;
    }
  }
  c.undecided[dir] += newest;
  if (c.undecided[0] + c.undecided[1] > options.max_undecided_bytes) {
    c.proto = Proto::kOpaque;
    Count("opaque_connections");
  }
}

void CaptureEngine::Impl::OnTcp(const TcpSegment& seg, uint64_t ts) {
  ConnKey key;
  bool forward = Less(seg.src, seg.src_port, seg.dst, seg.dst_port);
  key.a = forward ? seg.src : seg.dst;
  key.a_port = forward ? seg.src_port : seg.dst_port;
  key.b = forward ? seg.dst : seg.src;
  key.b_port = forward ? seg.dst_port : seg.src_port;
  if (!closed.empty()) {
    auto gone = closed.find(key);
    if (gone != closed.end()) {
      bool new_syn = (seg.flags & kTcpSyn) && !(seg.flags & kTcpAck);
      bool data_after_reset = gone->second.by_reset && !seg.payload.empty();
      if (!new_syn && !data_after_reset) {
        // The last ACK of a normal close is expected; anything else is a late retransmission.
        if (!seg.payload.empty() || (seg.flags & (kTcpSyn | kTcpFin | kTcpRst))) {
          Count("packets_after_close");
        }
        return;
      }
      closed.erase(gone);  // a new connection on the 4-tuple, or data the RST did not stop
    }
  }
  auto it = conns.find(key);
  if (it == conns.end()) {
    if (seg.payload.empty() && !(seg.flags & kTcpSyn)) return;  // nothing to start a stream on
    if (conns.size() >= options.max_connections) Expire(ts);    // idle ones make room first
    if (conns.size() >= options.max_connections) {
      Drop("connection_limit");
      return;
    }
    auto c =
        std::make_unique<Conn>(this, options.max_buffered_per_direction, options.reorder_window_ns);
    c->key = key;
    c->ip[0] = key.a;
    c->port[0] = key.a_port;
    c->ip[1] = key.b;
    c->port[1] = key.b_port;
    Count("tcp_connections");
    it = conns.emplace(key, std::move(c)).first;
  }
  Conn& c = *it->second;
  c.last_ts = std::max(c.last_ts, clock ? clock : ts);
  int dir = forward ? 0 : 1;  // 0: a -> b
  bool syn = seg.flags & kTcpSyn, ack = seg.flags & kTcpAck, fin = seg.flags & kTcpFin,
       rst = seg.flags & kTcpRst;
  if (syn && c.proto == Proto::kUnknown) c.client = ack ? 1 - dir : dir;
  if (seg.missing) Drop("snaplen_truncated_packets");
  size_t before = c.stream[0].buffered_bytes() + c.stream[1].buffered_bytes();
  c.stream[dir].OnSegment(seg.seq, seg.payload, syn, fin, ts, &c.sink[dir], ack, seg.ack,
                          seg.missing);
  if (ack) c.stream[1 - dir].OnPeerAck(seg.ack, ts, &c.sink[1 - dir]);
  if (!c.inbox.empty()) ExpireInbox(c, ts, false);
  size_t after = c.stream[0].buffered_bytes() + c.stream[1].buffered_bytes();
  buffered_total = buffered_total - before + after;
  if (buffered_total > options.max_buffered_total) {
    Drop("total_buffer_limit");
    before = after;
    c.stream[0].Flush(ts, &c.sink[0]);
    c.stream[1].Flush(ts, &c.sink[1]);
    buffered_total -= before;
  }
  // A direction has ended once every byte before its FIN was seen (the FIN may be captured
  // before the last data segment): for the server, that ends a body read until the close.
  for (int d = 0; d < 2; ++d) {
    if (c.stream[d].finished() && !c.fin[d]) {
      c.fin[d] = true;
      if (c.proto == Proto::kParsed && d != c.client) Pump(c);  // ends the body once delivered
      if (c.proto == Proto::kParsed && d == c.client) ClientEnd(c);
    }
  }
  if (rst) {
    // Exchanges in flight end here. A peer may ignore a RST (a bad MD5 signature, an
    // out-of-window sequence number, RFC 5961): if data follows for the 4-tuple, the tombstone
    // lets it start a connection picked up mid-stream, and HTTP is looked for again.
    Count("tcp_resets");
    Close(c, Completion::kReset,
          absl::StrCat("TCP RST from the ", c.client < 0      ? "peer"
                                            : dir == c.client ? "client"
                                                              : "server"),
          ts, /*by_reset=*/true);
    return;
  }
  // Both sides closed and every byte before each FIN was seen (a FIN can be captured before
  // the last data segment): the connection is over.
  if (c.stream[0].finished() && c.stream[1].finished()) {
    Close(c, Completion::kNoResponse, "the connection closed before a response", ts);
    return;
  }
  // The expiry clock follows capture time but moves at most 1 s per packet, so one packet with
  // a wild timestamp cannot expire every connection at once.
  if (clock == 0) clock = ts;
  if (ts > clock) clock += std::min<uint64_t>(ts - clock, 1'000'000'000);
  if (clock > last_expiry_check + 1'000'000'000) {
    last_expiry_check = clock;
    Expire(clock);
  }
}

void CaptureEngine::Impl::Close(Conn& c, Completion how, std::string_view reason, uint64_t ts,
                                bool by_reset) {
  buffered_total -=
      std::min(buffered_total, c.stream[0].buffered_bytes() + c.stream[1].buffered_bytes());
  c.stream[0].Flush(ts, &c.sink[0]);
  c.stream[1].Flush(ts, &c.sink[1]);
  ExpireInbox(c, ts, /*force=*/true);
  for (int d = 0; d < 2; ++d) {
    const ReassemblyStats& s = c.stream[d].stats();
    if (s.retransmitted_bytes) Count("tcp_retransmitted_bytes", s.retransmitted_bytes);
    if (s.differing_retransmissions) {
      Count("tcp_retransmissions_differing", s.differing_retransmissions);
    }
    if (s.buffer_overflows) Drop("stream_buffer_limit", s.buffer_overflows);
  }
  for (auto& p : c.earlier) p->Close(how, reason, ts);
  if (c.parser) c.parser->Close(how, reason, ts);
  ConnKey key = c.key;
  conns.erase(key);  // destroys c
  closed[key] = Tombstone{ts, by_reset};
  closed_order.emplace_back(ts, key);
}

void CaptureEngine::Impl::Expire(uint64_t ts) {
  while (!closed_order.empty() && ts > closed_order.front().first &&
         ts - closed_order.front().first > kClosedLinger) {
    auto gone = closed.find(closed_order.front().second);
    if (gone != closed.end() && gone->second.ts == closed_order.front().first) closed.erase(gone);
    closed_order.pop_front();
  }
  std::vector<Conn*> idle;
  for (auto& [k, c] : conns) {
    if (!c->inbox.empty()) ExpireInbox(*c, ts, false);
    if (ts > c->last_ts && ts - c->last_ts > options.idle_timeout_ns) idle.push_back(c.get());
  }
  for (Conn* c : idle) {
    Count("idle_expired_connections");
    Close(*c, Completion::kTimeout, "the connection went idle", ts);
  }
  // Fragments that never completed.
  for (auto it = fragments.begin(); it != fragments.end();) {
    if (it->second.first_ts + 30'000'000'000ull < ts) {
      Drop("ipv4_fragments_incomplete");
      it = fragments.erase(it);
    } else {
      ++it;
    }
  }
}

void CaptureEngine::Impl::OnFragment(const Ipv4Fragment& f, uint64_t ts) {
  Count("ipv4_fragments");
  auto key = std::make_tuple(f.src.bytes, f.dst.bytes, f.id, f.protocol);
  auto it = fragments.find(key);
  if (it == fragments.end()) {
    if (fragments.size() >= options.max_fragmented_datagrams) {
      Drop("ipv4_fragment_limit");
      return;
    }
    it = fragments.emplace(key, Datagram{}).first;
    it->second.first_ts = ts;
  }
  Datagram& d = it->second;
  uint32_t end = f.offset + static_cast<uint32_t>(f.data.size());
  if (end > 65535) {
    Drop("ipv4_fragment_malformed");
    fragments.erase(it);
    return;
  }
  if (d.data.size() < end) d.data.resize(end);
  std::memcpy(d.data.data() + f.offset, f.data.data(), f.data.size());
  d.have.emplace_back(f.offset, end);
  if (!f.more) d.total = end;
  if (d.total == 0) return;
  std::sort(d.have.begin(), d.have.end());
  uint32_t covered = 0;
  for (auto [s, e] : d.have) {
    if (s > covered) return;  // a hole remains
    covered = std::max(covered, e);
  }
  if (covered < d.total) return;
  std::string whole = std::move(d.data);
  whole.resize(d.total);
  IpAddress src = f.src, dst = f.dst;
  uint8_t proto = f.protocol;
  fragments.erase(it);
  Count("ipv4_datagrams_reassembled");
  if (proto != 6) return;
  DecodedFrame t = DecodeTcp(
      src, dst,
      std::span<const uint8_t>(reinterpret_cast<const uint8_t*>(whole.data()), whole.size()), 0);
  if (t.kind == FrameKind::kTcp) OnTcp(t.segment, ts);
}

CaptureEngine::CaptureEngine(EngineOptions options, Emit emit) : impl_(std::make_unique<Impl>()) {
  impl_->options = options;
  // With a factory, HTTP/1 reports a 101 as a protocol switch for it (protocol.h).
  if (impl_->options.protocols) impl_->options.http.hand_off_upgrades = true;
  impl_->emit = std::move(emit);
}

CaptureEngine::~CaptureEngine() = default;

void CaptureEngine::OnPacket(int link_type, uint64_t ts_ns, std::span<const uint8_t> data,
                             uint32_t wire_length) {
  Impl& m = *impl_;
  m.Count("frames");
  if (m.link_types.size() < kMaxLinkTypes &&
      std::find(m.link_types.begin(), m.link_types.end(), link_type) == m.link_types.end()) {
    m.link_types.push_back(static_cast<uint16_t>(link_type));
  }
  DecodedFrame f = DecodeFrame(link_type, data, wire_length);
  switch (f.kind) {
    case FrameKind::kTcp:
      return m.OnTcp(f.segment, ts_ns);
    case FrameKind::kIpv4Fragment:
      return m.OnFragment(f.fragment, ts_ns);
    case FrameKind::kNotIp:
      return m.Count("non_ip_frames");
    case FrameKind::kNotTcp:
      return m.Count("non_tcp_packets");
    case FrameKind::kUnsupportedLink:
      return m.Drop("unknown_link_type");  // docs/architecture.md section 6: a named drop
    case FrameKind::kIpv6Fragment:
      return m.Count("ipv6_fragments");
    case FrameKind::kMalformed:
      return m.Count("malformed_frames");
  }
}

void CaptureEngine::Advance(uint64_t now_ns) {
  Impl& m = *impl_;
  if (m.waiting_conns == 0) return;
  std::vector<Impl::Conn*> waiting;
  for (auto& [k, c] : m.conns) {
    if (!c->inbox.empty()) waiting.push_back(c.get());
  }
  for (Impl::Conn* c : waiting) m.ExpireInbox(*c, now_ns, false);
}

void CaptureEngine::Finish(uint64_t ts_ns) {
  Impl& m = *impl_;
  std::vector<Impl::Conn*> all;
  for (auto& [k, c] : m.conns) all.push_back(c.get());
  // Oldest first, so exchanges come out in a stable order.
  std::sort(all.begin(), all.end(), [](auto* a, auto* b) { return a->last_ts < b->last_ts; });
  for (Impl::Conn* c : all) m.Close(*c, Completion::kCaptureEnded, "the capture ended", ts_ns);
}

std::map<std::string, uint64_t> CaptureEngine::Counters() const {
  std::map<std::string, uint64_t> out = impl_->counters;
  const Http1Counters& h = impl_->http_counters;
  auto put = [&out](const char* k, uint64_t v) {
    if (v) out[k] += v;
  };
  put("http1_requests", h.requests);
  put("http1_responses", h.responses);
  put("http1_malformed", h.malformed);
  put("http1_resyncs", h.resyncs);
  put("http1_bodies_truncated", h.body_truncated);
  put("http1_upgrades", h.upgrades);
  put("h2c_upgrades", h.h2c_upgrades);
  put("http1_fast_path_messages", h.fast_path_messages);
  put("http1_ambiguous_responses", h.ambiguous_responses);
  put("http1_ambiguous_requests", h.ambiguous_requests);
  put("http1_responses_lost", h.responses_lost);
  put("http1_requests_lost", h.requests_lost);
  put("http1_pipelined_connections", h.pipelined_connections);
  put("http1_partial_fields_dropped", h.partial_fields_dropped);
  put("http1_chunked_with_content_length", h.chunked_with_length);
  put("http1_non_http_replies", h.non_http_replies);
  put("http1_interim_with_body_headers", h.interim_with_body_header);
  return out;
}

std::map<std::string, uint64_t> CaptureEngine::Drops() const {
  std::map<std::string, uint64_t> out = impl_->drops;
  const Http1Counters& h = impl_->http_counters;
  // The HTTP/1 caps: client bytes held after an Upgrade request, and requests written without
  // their response when 1024 later ones queued behind them.
  if (h.held_bytes_dropped) out["http1_upgrade_hold_limit_bytes"] += h.held_bytes_dropped;
  if (h.pending_limit) out["http1_pending_request_limit"] += h.pending_limit;
  // Bytes the HTTP/1 parser could not turn into an exchange: skipped while looking for the next
  // message start (after a parse error, a gap, or a capture picked up mid-message), and the
  // messages it rejected.
  if (h.skipped_bytes) out["http1_skipped_bytes"] += h.skipped_bytes;
  // After an Upgrade (h2c, WebSocket) or a CONNECT tunnel: not HTTP/1, no exchange of tapkit's.
  if (h.opaque_bytes) out["opaque_bytes_after_upgrade"] += h.opaque_bytes;
  // Server bytes acknowledged by a request but sent before the first server byte captured.
  if (h.unseen_server_bytes) out["tcp_gap_bytes"] += h.unseen_server_bytes;
  if (h.malformed) out["http1_parse_errors"] += h.malformed;
  return out;
}
const std::vector<uint16_t>& CaptureEngine::link_types() const { return impl_->link_types; }

}  // namespace tapkit
