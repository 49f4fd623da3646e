// The HTTP/1 fast path (Http1Options::fast_path) against http-parser alone: the same exchanges,
// the same counters, on every corpus capture, every fixture capture, and hand-written messages
// cut at every byte. The fast path may only ever decline; what it reads must be what the
// library reads.
#include <gtest/gtest.h>

#include <map>
#include <string>
#include <vector>

#include "format/testutil.h"
#include "sidecar/engine.h"
#include "sidecar/http1.h"
#include "sidecar/packet_source.h"
#include "sidecar/testutil.h"

namespace tapkit {
namespace {

// Reads `path` with and without the fast path and expects the same exchanges, counters and
// drops; returns how many messages the fast path read.
uint64_t ExpectSameReading(const std::string& path) {
  SCOPED_TRACE(path);
  EngineOptions slow_options, fast_options;
  slow_options.http.fast_path = false;
  testing::EngineRun slow = testing::RunEngine(path, slow_options);
  testing::EngineRun fast = testing::RunEngine(path, fast_options);
  EXPECT_EQ(fast.status, slow.status);
  EXPECT_EQ(slow.counters.count("http1_fast_path_messages"), 0u);
  uint64_t fast_messages = fast.counters["http1_fast_path_messages"];
  fast.counters.erase("http1_fast_path_messages");
  EXPECT_EQ(fast.exchanges.size(), slow.exchanges.size());
  for (size_t i = 0; i < std::min(slow.exchanges.size(), fast.exchanges.size()); ++i) {
    EXPECT_EQ(fast.exchanges[i], slow.exchanges[i]) << "exchange " << i;
  }
  EXPECT_EQ(fast.counters, slow.counters);
  EXPECT_EQ(fast.drops, slow.drops);
  return fast_messages;
}

TEST(Http1FastPath, SameExchangesOnEveryFixtureCapture) {
  uint64_t fast = 0;
  for (const char* name :
       {"chunked-request-trailers.pcap", "expect-100-continue.pcap", "head-and-304.pcap",
        "ipv6-get.pcap", "keepalive-two-gets.pcap", "lost-body-segment.pcap",
        "midstream-second-get.pcap", "pipelined-3-gets.pcap", "reordered-segments.pcap",
        "retransmitted-segment.pcap", "sll2-get.pcap", "vlan-two-gets.pcap",
        // issue 9's (the lost-response variants wait for the engine's fix)
        "keepalive-4-gets.pcap", "keepalive-4-gets-responses-first.pcap", "keepalive-10-gets.pcap",
        "keepalive-10-gets-third-request-lost.pcap", "pipelined-3-gets-responses-first.pcap",
        "interim-with-content-length.pcap", "http09-reply.pcap", "junk-reply-then-close.pcap",
        "chunked-and-content-length.pcap", "snaplen-96.pcap", "early-response-cuts-request.pcap",
        "differing-retransmission.pcap"}) {
    std::string path = std::string(TAPKIT_SOURCE_DIR "/fixtures/captures/") + name;
    fast += ExpectSameReading(path);
  }
  EXPECT_GT(fast, 10u) << "the fast path should read the plain curl/nginx messages";
}

TEST(Http1FastPath, SameExchangesOnEveryCorpusCapture) {
  std::string corpus = testing::CorpusDir();
  TAPKIT_REQUIRE_CORPUS(corpus);
  std::string manifest = testing::ReadFileBytes(corpus + "/MANIFEST.tsv");
  int files = 0;
  uint64_t fast = 0;
  size_t pos = manifest.find('\n') + 1;  // past the header row
  while (pos < manifest.size()) {
    size_t eol = manifest.find('\n', pos);
    if (eol == std::string::npos) eol = manifest.size();
    std::string line = manifest.substr(pos, eol - pos);
    pos = eol + 1;
    if (line.empty()) continue;
    std::string path = corpus + "/pcaps/" + line.substr(0, line.find('\t'));
    fast += ExpectSameReading(path);
    ++files;
  }
  EXPECT_GE(files, 40);
  EXPECT_GT(fast, 50u);
  std::cerr << "fast path: " << fast << " messages of " << files << " corpus files\n";
}

// Hand-written client and server streams, each fed whole and cut at every byte (as TCP segments
// may be), in both modes.
struct Conversation {
  const char* name;
  std::string client, server;
  bool fast_expected;  // the fast path reads at least one message of it (either side)
};

std::vector<Exchange> Converse(const Conversation& c, bool fast, size_t cut,
                               Http1Counters* counters) {
  std::vector<Exchange> out;
  uint64_t next_id = 1;
  Http1Options o;
  o.fast_path = fast;
  o.body_limit = 16;
  Http1Connection conn(
      Exchange{}, o, &next_id, [&out](Exchange&& x) { out.push_back(x); }, counters, true, true);
  auto feed = [&](const std::string& s, bool client, uint64_t ts) {
    auto bytes = std::span<const uint8_t>(reinterpret_cast<const uint8_t*>(s.data()), s.size());
    size_t k = std::min(cut, bytes.size());
    auto first = bytes.subspan(0, k), rest = bytes.subspan(k);
    for (auto part : {first, rest}) {
      if (part.empty()) continue;
      if (client) {
        conn.OnClientData(part, ts);
      } else {
        conn.OnServerData(part, ts);
      }
    }
  };
  feed(c.client, true, 1000);
  feed(c.server, false, 2000);
  conn.OnServerEnd(3000);
  conn.Close(Completion::kNoResponse, "closed", 4000);
  return out;
}

// RFC 9112 section 6.1: only the field named Transfer-Encoding frames a message. A request
// with "Transfer-Encodingx: chunked" and Content-Length: 5 has a 5-byte body, and the GET after
// it is a request of its own (http-parser 2.9 alone reads the body to the connection's end).
TEST(Http1FastPath, FieldNameThatOnlyBeginsWithTransferEncodingFramesNothing) {
  Conversation c{"te prefix",
                 "POST /p HTTP/1.1\r\nTransfer-Encodingx: chunked\r\nContent-Length: 5\r\n\r\n"
                 "helloGET /a HTTP/1.1\r\nHost: x\r\n\r\n",
                 "HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nokHTTP/1.1 404 Not Found\r\n"
                 "Content-Length: 0\r\n\r\n",
                 true};
  for (bool fast : {false, true}) {
    SCOPED_TRACE(fast ? "fast path" : "http-parser");
    Http1Counters counters;
    std::vector<Exchange> x = Converse(c, fast, 0, &counters);
    ASSERT_EQ(x.size(), 2u);
    ASSERT_TRUE(x[0].request && x[0].response);
    EXPECT_EQ(x[0].request->method, "POST");
    EXPECT_EQ(x[0].request->body.data, "hello");
    EXPECT_EQ(x[0].request->body.length, 5u);
    EXPECT_EQ(x[0].response->status, 200);
    ASSERT_TRUE(x[1].request && x[1].response);
    EXPECT_EQ(x[1].request->path, "/a");
    EXPECT_EQ(x[1].response->status, 404);
    EXPECT_EQ(x[1].completion, Completion::kComplete);
  }
}

TEST(Http1FastPath, SameExchangesOnTrickyMessagesCutAnywhere) {
  const std::string get = "GET /a HTTP/1.1\r\nHost: x\r\n\r\n";
  const std::string ok = "HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\nhello";
  std::vector<Conversation> cases = {
      {"plain", get + get, ok + ok, true},
      {"custom method", "PURGEALL /x HTTP/1.1\r\nHost: h\r\n\r\n", ok, true},
      // http-parser alone once kept the first custom method and rejected the second request.
      {"two custom methods", "GDT /a HTTP/1.1\r\n\r\nGGT /b HTTP/1.1\r\n\r\n", ok + ok, true},
      // Bytes that begin where a request should and do not parse are a place a response may
      // answer (a 400): pairing it is not plain, so http-parser reads the response.
      {"lower-case method", "get / HTTP/1.1\r\n\r\n", ok, false},
      {"HTTP/1.0", "GET / HTTP/1.0\r\n\r\n", "HTTP/1.0 200 OK\r\nContent-Length: 2\r\n\r\nhi",
       false},
      {"connection close then more", get + get,
       "HTTP/1.1 200 OK\r\nConnection: close\r\nContent-Length: 1\r\n\r\nA" + ok, true},
      {"keep-alive header", get,
       "HTTP/1.1 200 OK\r\nConnection: Keep-Alive\r\nContent-Length: 1\r\n\r\nA", true},
      {"empty value", "GET / HTTP/1.1\r\nX-Empty:\r\nHost: h\r\n\r\n", ok, true},
      {"padded value", "GET / HTTP/1.1\r\nHost: h  \r\n\r\n", ok, true},
      {"folded value", "GET / HTTP/1.1\r\nX-A: one\r\n two\r\n\r\n", ok, true},
      {"space before colon", "GET / HTTP/1.1\r\nHost : h\r\n\r\n", ok, true},
      {"bare LF", "GET / HTTP/1.1\nHost: h\n\n", "HTTP/1.1 200 OK\nContent-Length: 1\n\nA", false},
      {"duplicate Content-Length", get,
       "HTTP/1.1 200 OK\r\nContent-Length: 1\r\nContent-Length: 1\r\n\r\nA", true},
      {"conflicting Content-Length", get,
       "HTTP/1.1 200 OK\r\nContent-Length: 1\r\nContent-Length: 2\r\n\r\nAB", true},
      {"chunked with Content-Length", get,
       "HTTP/1.1 200 OK\r\nContent-Length: 3\r\nTransfer-Encoding: chunked\r\n\r\n"
       "1\r\nA\r\n0\r\n\r\n",
       true},
      {"204 with Content-Length", get, "HTTP/1.1 204 No Content\r\nContent-Length: 4\r\n\r\n",
       true},
      {"304", get, "HTTP/1.1 304 Not Modified\r\nContent-Length: 4\r\n\r\n", true},
      {"HEAD", "HEAD / HTTP/1.1\r\nHost: h\r\n\r\n" + get,
       "HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\n" + ok, true},
      {"100-continue", "POST /p HTTP/1.1\r\nContent-Length: 3\r\nExpect: 100-continue\r\n\r\nabc",
       "HTTP/1.1 100 Continue\r\n\r\n" + ok, true},
      {"read until close", get, "HTTP/1.1 200 OK\r\n\r\nbody until close", true},
      {"body cut short", get, "HTTP/1.1 200 OK\r\nContent-Length: 100\r\n\r\nonly this", true},
      {"long body kept to the limit", get,
       "HTTP/1.1 200 OK\r\nContent-Length: 40\r\n\r\n0123456789012345678901234567890123456789",
       true},
      {"Upgrade", "GET /ws HTTP/1.1\r\nConnection: Upgrade\r\nUpgrade: websocket\r\n\r\nxyz",
       "HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\n\r\nabc", false},
      {"declined Upgrade, responses in one segment",
       "GET /a HTTP/1.1\r\nConnection: Upgrade\r\nUpgrade: h2c\r\n\r\nGET /b HTTP/1.1\r\n\r\n",
       "HTTP/1.1 200 OK\r\nContent-Length: 1\r\n\r\na" + ok, true},
      {"CONNECT", "CONNECT h:443 HTTP/1.1\r\nHost: h:443\r\n\r\n\x16\x03",
       "HTTP/1.1 200 OK\r\n\r\n\x16\x03", false},
      {"absolute target", "GET http://h/x HTTP/1.1\r\nHost: h\r\n\r\n", ok, true},
      {"target with a space", "GET /a b HTTP/1.1\r\n\r\n", ok, true},
      {"non-ASCII value", "GET / HTTP/1.1\r\nX-N: caf\xc3\xa9\r\n\r\n", ok, true},
      {"non-ASCII target", "GET /caf\xc3\xa9 HTTP/1.1\r\n\r\n", ok, true},
      {"leading CRLF", "\r\n" + get, ok, true},
      {"POST body then GET", "POST /p HTTP/1.1\r\nContent-Length: 4\r\n\r\nbody" + get, ok + ok,
       true},
      {"response first", "", ok, false},  // no request: not plain (http-parser reads it)
      {"garbage then message", "garbage\r\n" + get, "junk\r\n" + ok, true},
      {"status without reason", get, "HTTP/1.1 200\r\nContent-Length: 0\r\n\r\n", true},
      {"huge Content-Length", get,
       "HTTP/1.1 200 OK\r\nContent-Length: 99999999999999999999\r\n\r\n", true},
      {"header with tab", "GET / HTTP/1.1\r\nX-T:\tv\tw\r\n\r\n", ok, true},
      // A field whose name only begins with Transfer-Encoding frames nothing (the fuzzer's
      // regression-transfer-encoding-name-prefix.bin).
      {"Transfer-Encoding name prefix",
       "POST /p HTTP/1.1\r\nTransfer-Encodingx: chunked\r\nContent-Length: 5\r\n\r\nhello" + get,
       ok + ok, true},
  };
  for (const Conversation& c : cases) {
    SCOPED_TRACE(c.name);
    size_t longest = std::max(c.client.size(), c.server.size());
    bool fast_seen = false;
    for (size_t cut = 0; cut <= longest; ++cut) {
      SCOPED_TRACE(::testing::Message() << "cut at byte " << cut);
      Http1Counters slow_counters, fast_counters;
      std::vector<Exchange> slow = Converse(c, false, cut, &slow_counters);
      std::vector<Exchange> fast = Converse(c, true, cut, &fast_counters);
      ASSERT_EQ(fast.size(), slow.size());
      for (size_t i = 0; i < slow.size(); ++i) ASSERT_EQ(fast[i], slow[i]) << "exchange " << i;
      fast_seen = fast_seen || fast_counters.fast_path_messages > 0;
      EXPECT_EQ(slow_counters.fast_path_messages, 0u);
      fast_counters.fast_path_messages = 0;
      EXPECT_EQ(
          std::tie(fast_counters.requests, fast_counters.responses, fast_counters.malformed,
                   fast_counters.resyncs, fast_counters.skipped_bytes, fast_counters.body_truncated,
                   fast_counters.opaque_bytes, fast_counters.upgrades),
          std::tie(slow_counters.requests, slow_counters.responses, slow_counters.malformed,
                   slow_counters.resyncs, slow_counters.skipped_bytes, slow_counters.body_truncated,
                   slow_counters.opaque_bytes, slow_counters.upgrades));
    }
    EXPECT_EQ(fast_seen, c.fast_expected);
  }
}

}  // namespace
}  // namespace tapkit
