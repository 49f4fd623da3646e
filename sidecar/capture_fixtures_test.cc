// Captures the project made with real tools (scripts/make-capture-fixtures.py: nginx, curl, a raw
// socket client and tcpdump on loopback, cut with editcap, mergecap and tcprewrite), one per case
// the shared corpus lacks. Each test states the exact exchanges; the values were checked against
// tshark's reading of the same file (where tshark reads it: it misses the reordered response).
#include <gtest/gtest.h>
#include <unistd.h>

#include <string>
#include <vector>

#include "sidecar/engine.h"
#include "sidecar/packet_source.h"
#include "sidecar/testutil.h"

namespace tapkit {
namespace {

struct Want {
  std::string method, path;
  int status;
  uint64_t response_length, response_stored;
  Completion completion = Completion::kComplete;
  std::vector<int> interim = {};
  uint64_t request_length = 0;
};

std::vector<Exchange> Read(const std::string& name,
                           std::map<std::string, uint64_t>* counters = nullptr) {
  testing::EngineRun run =
      testing::RunEngine(std::string(TAPKIT_SOURCE_DIR "/fixtures/captures/") + name);
  EXPECT_TRUE(run.status.ok()) << run.status;
  if (counters) *counters = run.counters;
  return std::move(run.exchanges);
}

void Expect(const std::string& name, const std::vector<Want>& want) {
  SCOPED_TRACE(name);
  std::vector<Exchange> got = Read(name);
  ASSERT_EQ(got.size(), want.size());
  for (size_t i = 0; i < want.size(); ++i) {
    const Exchange& x = got[i];
    const Want& w = want[i];
    SCOPED_TRACE(w.path);
    ASSERT_TRUE(x.request.has_value());
    ASSERT_TRUE(x.response.has_value());
    EXPECT_EQ(x.request->method, w.method);
    EXPECT_EQ(x.request->path, w.path);
    EXPECT_EQ(x.request->body.length, w.request_length);
    EXPECT_EQ(x.response->status, w.status);
    EXPECT_EQ(x.response->body.length, w.response_length);
    EXPECT_EQ(x.response->body.data.size(), w.response_stored);
    EXPECT_EQ(x.completion, w.completion) << x.reason;
    std::vector<int> interim;
    for (const InterimResponse& r : x.interim) interim.push_back(r.status);
    EXPECT_EQ(interim, w.interim);
    EXPECT_GT(x.latency_ns(), 0u);
    EXPECT_EQ(x.destination.port, 8091);
  }
}

TEST(Fixtures, PipelinedRequestsPairInOrder) {
  Expect("pipelined-3-gets.pcap", {{"GET", "/small.txt", 200, 17, 17},
                                   {"GET", "/items.json", 200, 1072, 1072},
                                   {"GET", "/missing", 404, 153, 153}});
}

TEST(Fixtures, ChunkedRequestWithTrailers) {
  // nginx proxies /upload to /echo on itself: the capture holds both exchanges, inner first.
  std::vector<Exchange> got = Read("chunked-request-trailers.pcap");
  ASSERT_EQ(got.size(), 2u);
  const Exchange& x = got[1];
  EXPECT_EQ(x.request->path, "/upload");
  EXPECT_EQ(x.request->body.data, "hello, world");
  EXPECT_EQ(x.request->body.length, 12u);
  ASSERT_EQ(x.request->trailers.size(), 1u);
  EXPECT_EQ(x.request->trailers[0].name, "X-Checksum");
  EXPECT_EQ(x.request->trailers[0].value, "12345");
  EXPECT_EQ(x.response->body.data, "stored\n");
  EXPECT_EQ(got[0].request->path, "/echo");
  EXPECT_EQ(got[0].request->body.length, 12u) << "nginx forwards the de-chunked body";
}

TEST(Fixtures, ExpectContinue) {
  Expect("expect-100-continue.pcap",
         {{"POST", "/echo", 200, 7, 7, Completion::kComplete, {}, 2000},
          {"POST", "/upload", 200, 7, 7, Completion::kComplete, {100}, 2000}});
}

TEST(Fixtures, HeadAnd304CarryNoBody) {
  // The HEAD response says Content-Length: 1072 and sends nothing (RFC 9110 section 9.3.2).
  Expect("head-and-304.pcap",
         {{"HEAD", "/items.json", 200, 0, 0}, {"GET", "/items.json", 304, 0, 0}});
}

TEST(Fixtures, Ipv6SllV2AndVlan) {
  std::vector<Exchange> v6 = Read("ipv6-get.pcap");
  ASSERT_EQ(v6.size(), 1u);
  EXPECT_EQ(v6[0].source.ip.ToString(), "::1");
  EXPECT_EQ(v6[0].response->body.data, "hello from nginx\n");
  std::vector<Exchange> sll2 = Read("sll2-get.pcap");
  ASSERT_EQ(sll2.size(), 1u);
  EXPECT_EQ(sll2[0].response->body.length, 17u);
  Expect("vlan-two-gets.pcap",
         {{"GET", "/items.json", 200, 1222, 1222}, {"GET", "/small.txt", 200, 6, 6}});
}

TEST(Fixtures, KeepAliveAndItsDamagedVariants) {
  std::vector<Want> whole = {{"GET", "/items.json", 200, 1222, 1222},
                             {"GET", "/small.txt", 200, 6, 6}};
  Expect("keepalive-two-gets.pcap", whole);
  Expect("reordered-segments.pcap", whole);
  Expect("retransmitted-segment.pcap", whole);
  // One 306-byte body segment missing: the first exchange keeps its full length from
  // Content-Length, the 306 bytes before the hole, and completion "gap"; the second is whole.
  Expect("lost-body-segment.pcap", {{"GET", "/items.json", 200, 1222, 306, Completion::kGap},
                                    {"GET", "/small.txt", 200, 6, 6}});
  // Picked up at the second request: that exchange only, whole.
  Expect("midstream-second-get.pcap", {{"GET", "/small.txt", 200, 6, 6}});
}

// NFLOG (recorded by tcpdump -i nflog:7 in a network namespace; the big-endian file holds the same
// frames as a big-endian host writes them) and PFLOG (a loopback capture given FreeBSD pf log
// headers, IPv6 under FreeBSD's AF_INET6 28); scripts/make-capture-fixtures.py nflog pflog. Each
// holds two GETs on one keep-alive connection to nginx on 127.0.0.91, then one GET over IPv6.
// Checked against tshark 4.0.17, which reads the same three exchanges from each of the files:
//   tshark -r FILE -Y http -T fields -e frame.number -e ip.src -e ipv6.src -e tcp.stream
//          -e http.request.method -e http.request.uri -e http.response.code
//          -e http.content_length_header -e http.request_in
// frames 4/6: GET /small.txt, 200, Content-Length 17 (stream 0, from 127.0.0.1); frames 8/9:
// GET /items.json, 200, 1072 (stream 0); frames 16/18: GET /small.txt, 200, 17 (stream 1, ::1).
TEST(Fixtures, NflogAndPflogLinkTypes) {
  for (const char* name :
       {"nflog-keepalive-ipv6.pcap", "nflog-big-endian.pcap", "pflog-keepalive-ipv6.pcap"}) {
    SCOPED_TRACE(name);
    Expect(name, {{"GET", "/small.txt", 200, 17, 17},
                  {"GET", "/items.json", 200, 1072, 1072},
                  {"GET", "/small.txt", 200, 17, 17}});
    testing::EngineRun run =
        testing::RunEngine(std::string(TAPKIT_SOURCE_DIR "/fixtures/captures/") + name);
    ASSERT_EQ(run.exchanges.size(), 3u);
    EXPECT_TRUE(run.drops.empty());
    EXPECT_EQ(run.counters["frames"], 22u);
    EXPECT_EQ(run.counters["tcp_connections"], 2u);
    const std::vector<Exchange>& x = run.exchanges;
    EXPECT_EQ(x[0].source.ip.ToString(), "127.0.0.1");
    EXPECT_EQ(x[0].source, x[1].source) << "one keep-alive connection";
    EXPECT_EQ(x[0].destination.ip.ToString(), "127.0.0.91");
    EXPECT_EQ(x[2].source.ip.ToString(), "::1");
    EXPECT_EQ(x[0].response->body.data, "hello from nginx\n");
  }
}

TEST(Fixtures, RetransmissionIsCountedNotDelivered) {
  std::map<std::string, uint64_t> c;
  Read("retransmitted-segment.pcap", &c);
  EXPECT_EQ(c["tcp_retransmitted_bytes"], 306u);
}

// The mapped reader against libpcap on every fixture, and on damaged copies: cut inside a record
// header, inside a record's bytes, and a record length over libpcap's maximum.
TEST(Fixtures, MappedPcapReaderAgreesWithLibpcapOnDamage) {
  for (const char* name : {"keepalive-two-gets.pcap", "vlan-two-gets.pcap", "sll2-get.pcap",
                           "ipv6-get.pcap", "lost-body-segment.pcap"}) {
    std::string path = std::string(TAPKIT_SOURCE_DIR "/fixtures/captures/") + name;
    FILE* f = std::fopen(path.c_str(), "rb");
    ASSERT_NE(f, nullptr);
    std::string bytes;
    char buf[4096];
    size_t n;
    while ((n = std::fread(buf, 1, sizeof buf, f)) > 0) bytes.append(buf, n);
    std::fclose(f);
    std::vector<std::pair<std::string, std::string>> variants = {
        {"whole", bytes},
        {"cut in a record header", bytes.substr(0, bytes.size() - 3)},
        {"cut in a record", bytes.substr(0, 24 + 16 + 20)},
    };
    // The first record's caplen set to 300000 (over 262144).
    std::string big = bytes;
    uint32_t v = 300000;
    bool swapped = static_cast<uint8_t>(big[0]) == 0xa1;
    for (int i = 0; i < 4; ++i) {
      big[24 + 8 + i] = static_cast<char>(swapped ? (v >> (8 * (3 - i))) : (v >> (8 * i)));
    }
    variants.emplace_back("record over the maximum", big);
    for (auto& [what, data] : variants) {
      SCOPED_TRACE(std::string(name) + ": " + what);
      std::string tmp = ::testing::TempDir() + "/mapped-vs-libpcap.pcap";
      FILE* o = std::fopen(tmp.c_str(), "wb");
      std::fwrite(data.data(), 1, data.size(), o);
      std::fclose(o);
      auto lib = OpenLibpcapFile(tmp, "");
      auto mapped = OpenCaptureFile(tmp, "");
      ASSERT_EQ(lib.ok(), mapped.ok());
      if (!lib.ok()) continue;  // a pcapng cut in its header: neither opens it
      Frame a, b;
      uint64_t frames = 0;
      while ((*lib)->Next(&a)) {
        ASSERT_TRUE((*mapped)->Next(&b)) << "frame " << frames;
        EXPECT_EQ(a.ts_ns, b.ts_ns);
        EXPECT_EQ(a.wire_length, b.wire_length);
        EXPECT_TRUE(std::equal(a.data.begin(), a.data.end(), b.data.begin(), b.data.end()));
        ++frames;
      }
      EXPECT_FALSE((*mapped)->Next(&b));
      EXPECT_EQ((*lib)->status().ok(), (*mapped)->status().ok())
          << (*lib)->status() << " / " << (*mapped)->status();
      EXPECT_EQ((*lib)->frames(), (*mapped)->frames());
    }
  }
}

// A capture file cut while it is being read (a tcpdump -C ring recycling it, say): the reader
// reports it, it does not crash, and it never hands out bytes past the cut as frames.
TEST(Fixtures, FileCutWhileReadEndsInAnError) {
  std::string one;
  {
    FILE* f = std::fopen(TAPKIT_SOURCE_DIR "/fixtures/captures/keepalive-two-gets.pcap", "rb");
    ASSERT_NE(f, nullptr);
    char buf[4096];
    size_t n;
    while ((n = std::fread(buf, 1, sizeof buf, f)) > 0) one.append(buf, n);
    std::fclose(f);
  }
  std::string path = ::testing::TempDir() + "/cut-while-read.pcap";
  {
    FILE* o = std::fopen(path.c_str(), "wb");
    std::fwrite(one.data(), 1, one.size(), o);
    for (int i = 0; i < 200; ++i) std::fwrite(one.data() + 24, 1, one.size() - 24, o);
    std::fclose(o);
  }
  auto source = OpenCaptureFile(path, "");
  ASSERT_TRUE(source.ok()) << source.status();
  Frame f;
  ASSERT_TRUE((*source)->Next(&f));
  ASSERT_EQ(::truncate(path.c_str(), 8192), 0);  // well before the end, after the first frame
  uint64_t frames = 1, bytes = 24 + 16 + f.data.size();
  while ((*source)->Next(&f)) {
    ++frames;
    bytes += 16 + f.data.size();
  }
  EXPECT_FALSE((*source)->status().ok());
  EXPECT_NE((*source)->status().message().find("truncated while it was read"), std::string::npos)
      << (*source)->status();
  EXPECT_LE(bytes, 8192u) << "no frame from past the cut (" << frames << " frames)";
}

}  // namespace
}  // namespace tapkit
