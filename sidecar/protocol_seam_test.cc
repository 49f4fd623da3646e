// The protocol seam (protocol.h): a parser registered through EngineOptions::protocols gets
// exactly the bytes after a 101 Switching Protocols (RFC 9110 section 15.2.2) on both sides, with
// their stream offsets and capture times, and the bytes of a connection that begins with the
// HTTP/2 preface; without one, the counting is what it always was. Also: no counter is keyed by
// bytes from the wire (TLS server names).
#include <gtest/gtest.h>

#include <map>
#include <memory>
#include <string>
#include <vector>

#include "sidecar/decode.h"
#include "sidecar/engine.h"
#include "sidecar/protocol.h"
#include "sidecar/testutil.h"

namespace tapkit {
namespace {

using testing::Bytes;
using testing::Ethernet;
using testing::Ipv4Tcp;

// What a FakeParser was told, in order.
struct Call {
  std::string what;  // "client", "server", "client-gap", "server-gap", "client-end", ...
  std::string data;
  uint64_t offset = 0;
  uint64_t ts = 0;
};

struct Started {
  std::string token;
  ProtocolStartKind how;
  std::optional<Exchange> upgrade;
  Exchange base;
  std::vector<Call> calls;
};

class FakeParser final : public ProtocolParser {
 public:
  explicit FakeParser(Started* log) : log_(log) {}
  void OnClientData(std::span<const uint8_t> d, const StreamPosition& at) override {
    log_->calls.push_back({"client", Str(d), at.offset, at.ts_ns});
  }
  void OnServerData(std::span<const uint8_t> d, const StreamPosition& at) override {
    log_->calls.push_back({"server", Str(d), at.offset, at.ts_ns});
  }
  void OnClientGap(uint64_t offset, uint64_t bytes, uint64_t ts, bool) override {
    log_->calls.push_back({"client-gap", std::to_string(bytes), offset, ts});
  }
  void OnServerGap(uint64_t offset, uint64_t bytes, uint64_t ts, bool) override {
    log_->calls.push_back({"server-gap", std::to_string(bytes), offset, ts});
  }
  void OnClientEnd(uint64_t ts) override { log_->calls.push_back({"client-end", "", 0, ts}); }
  void OnServerEnd(uint64_t ts) override { log_->calls.push_back({"server-end", "", 0, ts}); }
  void Close(Completion, std::string_view reason, uint64_t ts) override {
    log_->calls.push_back({"close", std::string(reason), 0, ts});
  }

 private:
  static std::string Str(std::span<const uint8_t> d) {
    return std::string(reinterpret_cast<const char*>(d.data()), d.size());
  }
  Started* log_;
};

// A factory with fake parsers for `tokens`; every start (with a parser or not) is logged.
struct Registry {
  std::vector<std::string> tokens;
  std::vector<std::unique_ptr<Started>> started;
  std::vector<std::string> asked;
  ProtocolFactory Factory() {
    return [this](const ProtocolStart& s) -> std::unique_ptr<ProtocolParser> {
      asked.emplace_back(s.token);
      if (std::find(tokens.begin(), tokens.end(), s.token) == tokens.end()) return nullptr;
      auto& log = started.emplace_back(std::make_unique<Started>());
      log->token = std::string(s.token);
      log->how = s.how;
      if (s.upgrade) log->upgrade = *s.upgrade;
      log->base = s.base;
      return std::make_unique<FakeParser>(log.get());
    };
  }
  // The bytes of one direction the fakes got, in order.
  std::string Got(const std::string& what) const {
    std::string out;
    for (const auto& s : started) {
      for (const Call& c : s->calls) {
        if (c.what == what) out += c.data;
      }
    }
    return out;
  }
};

struct Outcome {
  std::vector<Exchange> exchanges;
  std::map<std::string, uint64_t> counters, drops;
};

Outcome RunFrames(const std::vector<std::pair<Bytes, uint64_t>>& frames, uint64_t end,
              ProtocolFactory factory) {
  Outcome r;
  EngineOptions o;
  o.protocols = std::move(factory);
  CaptureEngine e(o, [&r](Exchange&& x) { r.exchanges.push_back(std::move(x)); });
  for (const auto& [f, t] : frames) e.OnPacket(1, t, f, static_cast<uint32_t>(f.size()));
  e.Finish(end);
  r.counters = e.Counters();
  r.drops = e.Drops();
  return r;
}

Outcome RunFile(const std::string& path, ProtocolFactory factory) {
  EngineOptions o;
  o.protocols = std::move(factory);
  testing::EngineRun e = testing::RunEngine(path, o);
  EXPECT_TRUE(e.status.ok()) << e.status;
  return Outcome{std::move(e.exchanges), std::move(e.counters), std::move(e.drops)};
}

// One hand-built TCP connection, 10.0.0.1:40000 -> 10.0.0.2:80, from its handshake; each frame
// 1000 ns after the previous one.
struct Conversation {
  std::vector<std::pair<Bytes, uint64_t>> frames;
  uint32_t cseq = 1000, sseq = 5000;
  uint64_t ts = 1'000'000'000'000ull;
  Conversation() {
    Client("", kTcpSyn);
    Server("", kTcpSyn | kTcpAck);
    Client("", kTcpAck);
  }
  uint64_t Client(const std::string& p, uint8_t flags = kTcpAck | 0x08) {
    frames.push_back(
        {Ethernet(Ipv4Tcp({10, 0, 0, 1}, {10, 0, 0, 2}, 40000, 80, cseq, sseq, flags, p)),
         ts += 1000});
    cseq += static_cast<uint32_t>(p.size()) + ((flags & (kTcpSyn | kTcpFin)) ? 1 : 0);
    return ts;
  }
  uint64_t Server(const std::string& p, uint8_t flags = kTcpAck | 0x08) {
    frames.push_back(
        {Ethernet(Ipv4Tcp({10, 0, 0, 2}, {10, 0, 0, 1}, 80, 40000, sseq, cseq, flags, p)),
         ts += 1000});
    sseq += static_cast<uint32_t>(p.size()) + ((flags & (kTcpSyn | kTcpFin)) ? 1 : 0);
    return ts;
  }
  void Fins() {
    Client("", kTcpAck | kTcpFin);
    Server("", kTcpAck | kTcpFin);
    Client("", kTcpAck);
  }
};

std::string Fixture(const char* name) {
  return std::string(TAPKIT_SOURCE_DIR) + "/fixtures/captures/" + name;
}

// fixtures/captures/h2c-upgrade.pcap (scripts/make-capture-fixtures.py h2c): nghttp -u asks
// nghttpx for / with Upgrade: h2c; nghttpx answers 101 and HTTP/2. Offsets, lengths and times
// below are tshark's (relative sequence numbers, frame.time_epoch):
//   frame 4  client seq 1   167 bytes  the upgrade request
//   frame 6  server seq 1   104 bytes  the 101 (71 bytes) and a SETTINGS frame (33)
//   frame 8  client seq 168 138 bytes  the HTTP/2 preface and frames
//   frame 9  server seq 105   9 bytes  frame 10: server seq 114, 119 bytes
//   frame 12 client seq 306  17 bytes
// (stream offset = relative sequence number - 1.)
constexpr uint64_t kFrame6 = 1796416218331808000ull, kFrame8 = 1796416218331994000ull,
                   kFrame9 = 1796416218332018000ull, kFrame10 = 1796416218332066000ull,
                   kFrame12 = 1796416218332142000ull;

TEST(ProtocolSeam, H2cUpgradeFromRealTrafficGoesToTheH2cParser) {
  Registry reg{{"h2c", "websocket"}};
  Outcome r = RunFile(Fixture("h2c-upgrade.pcap"), reg.Factory());
  ASSERT_EQ(reg.asked, std::vector<std::string>{"h2c"});
  ASSERT_EQ(reg.started.size(), 1u);
  const Started& s = *reg.started[0];
  EXPECT_EQ(s.how, ProtocolStartKind::kUpgrade);
  ASSERT_TRUE(s.upgrade && s.upgrade->request && s.upgrade->response);
  EXPECT_EQ(s.upgrade->request->path, "/");
  EXPECT_EQ(s.upgrade->response->status, 101);
  EXPECT_EQ(s.base.source.port, 34880) << "source = the client";
  EXPECT_EQ(s.base.destination.port, 8094);
  // HTTP/1 wrote the upgrade exchange (request and its 101) and nothing else.
  ASSERT_EQ(r.exchanges.size(), 1u);
  EXPECT_EQ(r.exchanges[0].response->status, 101);
  EXPECT_EQ(r.exchanges[0].stream_id, s.upgrade->stream_id);

  // Exactly the bytes after the 101, each piece where tshark puts it.
  ASSERT_GE(s.calls.size(), 5u);
  EXPECT_EQ(s.calls[0].what, "server");
  EXPECT_EQ(s.calls[0].offset, 71u);
  EXPECT_EQ(s.calls[0].ts, kFrame6);
  EXPECT_EQ(s.calls[0].data.size(), 33u);
  EXPECT_EQ(s.calls[0].data.substr(0, 9), std::string("\x00\x00\x18\x04\x00\x00\x00\x00\x00", 9))
      << "a SETTINGS frame of 24 bytes on stream 0 (RFC 9113 section 6.5)";
  EXPECT_EQ(s.calls[1].what, "client");
  EXPECT_EQ(s.calls[1].offset, 167u);
  EXPECT_EQ(s.calls[1].ts, kFrame8);
  EXPECT_EQ(s.calls[1].data.size(), 138u);
  EXPECT_EQ(s.calls[1].data.substr(0, 24), "PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n");
  EXPECT_EQ(s.calls[2].what, "server");
  EXPECT_EQ(s.calls[2].offset, 104u);
  EXPECT_EQ(s.calls[2].ts, kFrame9);
  EXPECT_EQ(s.calls[2].data.size(), 9u);
  EXPECT_EQ(s.calls[3].what, "server");
  EXPECT_EQ(s.calls[3].offset, 113u);
  EXPECT_EQ(s.calls[3].ts, kFrame10);
  EXPECT_EQ(s.calls[3].data.size(), 119u);
  EXPECT_EQ(s.calls[4].what, "client");
  EXPECT_EQ(s.calls[4].offset, 305u);
  EXPECT_EQ(s.calls[4].ts, kFrame12);
  EXPECT_EQ(s.calls[4].data.size(), 17u);
  EXPECT_EQ(reg.Got("server").size(), 33u + 9 + 119);
  EXPECT_EQ(reg.Got("client").size(), 138u + 17);
  EXPECT_EQ(s.calls.back().what, "close");
  EXPECT_EQ(r.drops.count("opaque_bytes_after_upgrade"), 0u);
  EXPECT_EQ(r.counters["protocol_switches"], 1u);
  EXPECT_EQ(r.counters["h2c_upgrades"], 1u);
}

TEST(ProtocolSeam, H2cUpgradeWithoutAParserIsCountedAsBefore) {
  Outcome none = RunFile(Fixture("h2c-upgrade.pcap"), nullptr);
  ASSERT_EQ(none.exchanges.size(), 1u);
  EXPECT_EQ(none.exchanges[0].response->status, 101);
  // Every byte after the 101: 33 + 9 + 119 of the server's, 138 + 17 of the client's.
  EXPECT_EQ(none.drops["opaque_bytes_after_upgrade"], 316u);
  EXPECT_EQ(none.counters.count("protocol_switches"), 0u);

  // A factory with no parser for h2c changes nothing.
  Registry reg{{"websocket"}};
  Outcome other = RunFile(Fixture("h2c-upgrade.pcap"), reg.Factory());
  EXPECT_EQ(reg.asked, std::vector<std::string>{"h2c"});
  EXPECT_TRUE(reg.started.empty());
  EXPECT_EQ(other.counters, none.counters);
  EXPECT_EQ(other.drops, none.drops);
  ASSERT_EQ(other.exchanges.size(), 1u);
  EXPECT_EQ(other.exchanges[0].stream_id, none.exchanges[0].stream_id);
  EXPECT_EQ(other.exchanges[0].response_end_ns, none.exchanges[0].response_end_ns);
}

// A WebSocket handshake (RFC 6455 section 4) whose client sent a frame before the capture showed
// the 101: the held client bytes come first, with their own offset and time, then the server's
// bytes after the 101's header section in the same segment, then later ones.
struct WebSocket : Conversation {
  const std::string request =
      "GET /chat HTTP/1.1\r\nHost: x\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
      "Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n";
  const std::string head =
      "HTTP/1.1 101 Switching Protocols\r\nUpgrade: WebSocket\r\nConnection: Upgrade\r\n"
      "Sec-WebSocket-Accept: s3pPLMBiTxaQ9kYGzzhZRbK+xOo=\r\n\r\n";
  const std::string early = std::string("\x81\x85\x37\xfa\x21\x3d\x7f\x9f\x4d\x51\x58", 11);
  const std::string close = std::string("\x88\x80\x00\x00\x00\x00", 6);
  uint64_t t_early = 0, t_101 = 0, t_later = 0, t_client = 0;
  WebSocket() {
    Client(request);
    t_early = Client(early);
    t_101 = Server(head + "\x81\x02hi");
    t_later = Server("\x81\x03" "bye");
    t_client = Client(close);
    Fins();
  }
};

TEST(ProtocolSeam, WebSocketGetsHeldClientBytesAndServerTail) {
  WebSocket w;
  Registry reg{{"h2c", "websocket"}};
  Outcome r = RunFrames(w.frames, w.ts, reg.Factory());
  ASSERT_EQ(reg.started.size(), 1u);
  const Started& s = *reg.started[0];
  EXPECT_EQ(s.token, "websocket") << "lower-cased: protocol names are case-insensitive";
  ASSERT_TRUE(s.upgrade && s.upgrade->request);
  EXPECT_EQ(s.upgrade->request->path, "/chat");
  ASSERT_EQ(s.calls.size(), 7u);
  EXPECT_EQ(s.calls[0].what, "client");
  EXPECT_EQ(s.calls[0].data, w.early);
  EXPECT_EQ(s.calls[0].offset, w.request.size());
  EXPECT_EQ(s.calls[0].ts, w.t_early);
  EXPECT_EQ(s.calls[1].what, "server");
  EXPECT_EQ(s.calls[1].data, "\x81\x02hi");
  EXPECT_EQ(s.calls[1].offset, w.head.size());
  EXPECT_EQ(s.calls[1].ts, w.t_101);
  EXPECT_EQ(s.calls[2].what, "server");
  EXPECT_EQ(s.calls[2].data, "\x81\x03" "bye");
  EXPECT_EQ(s.calls[2].offset, w.head.size() + 4);
  EXPECT_EQ(s.calls[2].ts, w.t_later);
  EXPECT_EQ(s.calls[3].what, "client");
  EXPECT_EQ(s.calls[3].data, w.close);
  EXPECT_EQ(s.calls[3].offset, w.request.size() + w.early.size());
  EXPECT_EQ(s.calls[3].ts, w.t_client);
  EXPECT_EQ(s.calls[4].what, "client-end");
  EXPECT_EQ(s.calls[5].what, "server-end");
  EXPECT_EQ(s.calls[6].what, "close");
  ASSERT_EQ(r.exchanges.size(), 1u);
  EXPECT_EQ(r.exchanges[0].response->status, 101);
  EXPECT_EQ(r.exchanges[0].completion, Completion::kComplete);
  EXPECT_EQ(r.drops.count("opaque_bytes_after_upgrade"), 0u);

  // Without a parser: the same exchange, and every byte after the switch counted, the held
  // client frame included.
  Outcome none = RunFrames(w.frames, w.ts, nullptr);
  ASSERT_EQ(none.exchanges.size(), 1u);
  EXPECT_EQ(none.exchanges[0].response->status, 101);
  EXPECT_EQ(none.drops["opaque_bytes_after_upgrade"], 11u + 4 + 5 + 6);
  Registry h2_only{{"h2c"}};
  Outcome declined = RunFrames(w.frames, w.ts, h2_only.Factory());
  EXPECT_EQ(h2_only.asked, std::vector<std::string>{"websocket"});
  EXPECT_EQ(declined.drops, none.drops);
  EXPECT_EQ(declined.counters, none.counters);
}

// Client bytes held before the 101 keep every byte, but the list of where each piece began is
// bounded: 3000 one-byte segments (a peer growing the engine's memory by segment count) are
// handed over whole, in at most 1024 pieces, the first at its own offset.
TEST(ProtocolSeam, ManyTinyHeldSegmentsAreBoundedInPieces) {
  WebSocket w;  // only for its request and 101
  Conversation c;
  c.Client(w.request);
  for (int i = 0; i < 3000; ++i) c.Client(std::string(1, static_cast<char>('a' + i % 26)));
  c.Server(w.head);
  c.Fins();
  Registry reg{{"websocket"}};
  RunFrames(c.frames, c.ts, reg.Factory());
  ASSERT_EQ(reg.started.size(), 1u);
  std::string held;
  size_t pieces = 0;
  for (const auto& call : reg.started[0]->calls) {
    if (call.what != "client") continue;
    if (pieces == 0) EXPECT_EQ(call.offset, w.request.size());
    ++pieces;
    held += call.data;
  }
  ASSERT_EQ(held.size(), 3000u);
  for (int i = 0; i < 3000; ++i) ASSERT_EQ(held[i], 'a' + i % 26) << i;
  EXPECT_LE(pieces, 1024u);
}

// A connection that begins with the HTTP/2 preface (prior knowledge, RFC 9113 section 3.4).
TEST(ProtocolSeam, PrefaceGoesToTheH2cParserOrIsCounted) {
  Conversation c;
  const std::string preface = "PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n";
  const std::string settings("\x00\x00\x00\x04\x00\x00\x00\x00\x00", 9);
  uint64_t t1 = c.Client(preface.substr(0, 10));  // the preface in two pieces
  uint64_t t2 = c.Client(preface.substr(10) + settings);
  uint64_t t3 = c.Server(settings);
  c.Fins();

  Outcome none = RunFrames(c.frames, c.ts, nullptr);
  EXPECT_EQ(none.drops["http2_bytes"], preface.size() + 2 * settings.size());
  EXPECT_EQ(none.counters["http2_connections"], 1u);

  Registry reg{{"h2c"}};
  Outcome r = RunFrames(c.frames, c.ts, reg.Factory());
  ASSERT_EQ(reg.started.size(), 1u);
  const Started& s = *reg.started[0];
  EXPECT_EQ(s.how, ProtocolStartKind::kPriorKnowledge);
  EXPECT_FALSE(s.upgrade);
  EXPECT_EQ(s.base.source.port, 40000);
  EXPECT_EQ(r.drops.count("http2_bytes"), 0u);
  EXPECT_EQ(r.counters["http2_connections"], 1u);
  EXPECT_EQ(reg.Got("client"), preface + settings);
  EXPECT_EQ(reg.Got("server"), settings);
  ASSERT_GE(s.calls.size(), 3u);
  EXPECT_EQ(s.calls[0].offset, 0u);
  EXPECT_EQ(s.calls[0].ts, t1);
  EXPECT_EQ(s.calls[1].offset, 10u);
  EXPECT_EQ(s.calls[1].ts, t2);
  EXPECT_EQ(s.calls[2].what, "server");
  EXPECT_EQ(s.calls[2].offset, 0u);
  EXPECT_EQ(s.calls[2].ts, t3);

  // A factory without h2c: counted as without one.
  Registry ws{{"websocket"}};
  Outcome declined = RunFrames(c.frames, c.ts, ws.Factory());
  EXPECT_EQ(declined.drops, none.drops);
  EXPECT_EQ(declined.counters, none.counters);
}

std::string ClientHello(const std::string& name) {
  Bytes rec = testing::TlsClientHello(name);
  return std::string(rec.begin(), rec.end());
}

TEST(NoWireKeyedCounters, ManyServerNamesKeepTheCounterMapBounded) {
  auto run = [](int connections) {
    std::vector<std::pair<Bytes, uint64_t>> frames;
    uint64_t ts = 1'000'000'000'000ull;
    for (int i = 0; i < connections; ++i) {
      uint16_t port = static_cast<uint16_t>(20000 + i);
      std::string hello = ClientHello("host" + std::to_string(i) + ".example");
      EXPECT_EQ(TlsClientHelloSni(std::span<const uint8_t>(
                    reinterpret_cast<const uint8_t*>(hello.data()), hello.size())),
                "host" + std::to_string(i) + ".example");
      frames.push_back({Ethernet(Ipv4Tcp({10, 0, 0, 1}, {10, 0, 0, 2}, port, 443, 1, 0,
                                         kTcpSyn, "")),
                        ts += 1000});
      frames.push_back({Ethernet(Ipv4Tcp({10, 0, 0, 1}, {10, 0, 0, 2}, port, 443, 2, 1,
                                         kTcpAck | 0x08, hello)),
                        ts += 1000});
    }
    Outcome r = RunFrames(frames, ts, nullptr);
    EXPECT_EQ(r.counters["tls_connections"], static_cast<uint64_t>(connections));
    EXPECT_EQ(r.counters["tls_connections_with_sni"], static_cast<uint64_t>(connections));
    for (const auto& [name, n] : r.counters) {
      EXPECT_EQ(name.find("example"), std::string::npos) << name;
    }
    return std::make_pair(r.counters.size(), r.drops.size());
  };
  auto one = run(1);
  auto many = run(2000);
  EXPECT_EQ(many, one) << "2000 server names add no counter names";
}

}  // namespace
}  // namespace tapkit
