// Unit tests of the capture engine's stages on hand-built frames and streams, each checked
// against values worked out by hand from the RFCs' layouts.
#include <gtest/gtest.h>

#include <algorithm>
#include <bit>
#include <cstdio>
#include <cstring>
#include <map>
#include <string>
#include <utility>
#include <vector>

#include "format/test_dir.h"
#include "sidecar/decode.h"
#include "sidecar/engine.h"
#include "sidecar/http1.h"
#include "sidecar/packet_source.h"
#include "sidecar/tcp_reassembly.h"
#include "sidecar/testutil.h"

namespace tapkit {
namespace {

using testing::Bytes;
using testing::Ethernet;
using testing::Ipv4Tcp;
using testing::Put16;
using testing::Put32;

TEST(Decode, EthernetQinQinQ) {
  Bytes ip = Ipv4Tcp({10, 0, 0, 1}, {10, 0, 0, 2}, 40000, 80, 1000, 5, kTcpAck, "GET /");
  Bytes f = Ethernet(ip, {0x88a8, 0x8100, 0x8100});
  DecodedFrame d = DecodeFrame(1, f, static_cast<uint32_t>(f.size()));
  ASSERT_EQ(d.kind, FrameKind::kTcp);
  EXPECT_EQ(d.segment.src.ToString(), "10.0.0.1");
  EXPECT_EQ(d.segment.dst_port, 80);
  EXPECT_EQ(d.segment.seq, 1000u);
  EXPECT_EQ(std::string(d.segment.payload.begin(), d.segment.payload.end()), "GET /")
      << "Ethernet padding after the IP total length is not payload";
}

TEST(Decode, LinuxCookedV2AndNullBothByteOrders) {
  Bytes ip = Ipv4Tcp({1, 2, 3, 4}, {5, 6, 7, 8}, 1, 2, 3, 4, 0, "x");
  Bytes sll2 = {0x08, 0x00, 0, 0};  // protocol, reserved
  sll2.resize(20, 0);
  sll2.insert(sll2.end(), ip.begin(), ip.end());
  EXPECT_EQ(DecodeFrame(276, sll2, static_cast<uint32_t>(sll2.size())).kind, FrameKind::kTcp);
  for (Bytes family : {Bytes{2, 0, 0, 0}, Bytes{0, 0, 0, 2}}) {
    family.insert(family.end(), ip.begin(), ip.end());
    EXPECT_EQ(DecodeFrame(0, family, static_cast<uint32_t>(family.size())).kind, FrameKind::kTcp);
  }
}

TEST(Decode, BigTcpTotalLengthZeroUsesTheFrame) {
  std::string payload(70000, 'z');
  Bytes ip = Ipv4Tcp({1, 1, 1, 1}, {2, 2, 2, 2}, 1, 2, 3, 4, 0, payload, /*total=*/0);
  DecodedFrame d = DecodeIp(ip, 0);
  ASSERT_EQ(d.kind, FrameKind::kTcp);
  EXPECT_EQ(d.segment.payload.size(), 70000u);
}

TEST(Decode, SnaplenCutCountsTheMissingBytes) {
  Bytes ip = Ipv4Tcp({1, 1, 1, 1}, {2, 2, 2, 2}, 1, 2, 3, 4, 0, std::string(100, 'p'));
  Bytes cut(ip.begin(), ip.begin() + 40 + 30);  // 30 of 100 payload bytes captured
  DecodedFrame d = DecodeIp(cut, 70);
  ASSERT_EQ(d.kind, FrameKind::kTcp);
  EXPECT_EQ(d.segment.payload.size(), 30u);
  EXPECT_EQ(d.segment.missing, 70u);
}

TEST(Decode, Ipv6WithHopByHopAndMalformed) {
  Bytes b = {0x60, 0, 0, 0};
  Put16(b, 8 + 20 + 2);  // payload: hop-by-hop (8) + TCP (20) + 2 bytes
  b.push_back(0);        // next header: hop-by-hop
  b.push_back(64);
  for (int i = 0; i < 32; ++i) b.push_back(static_cast<uint8_t>(i));
  b.insert(b.end(), {6, 0, 1, 4, 0, 0, 0, 0});  // hop-by-hop: next TCP, length 0 (8 bytes)
  Bytes tcp = Ipv4Tcp({0, 0, 0, 0}, {0, 0, 0, 0}, 443, 5000, 7, 8, kTcpAck, "hi");
  b.insert(b.end(), tcp.begin() + 20, tcp.end());
  DecodedFrame d = DecodeIp(b, 0);
  ASSERT_EQ(d.kind, FrameKind::kTcp);
  EXPECT_EQ(d.segment.src_port, 443);
  EXPECT_EQ(std::string(d.segment.payload.begin(), d.segment.payload.end()), "hi");
  // Every cut of the packet decodes without reading past it: cut before the end of the TCP
  // header it is malformed; after, a TCP segment whose missing payload bytes are counted.
  for (size_t n = 0; n < b.size(); ++n) {
    DecodedFrame c = DecodeIp(std::span<const uint8_t>(b.data(), n), 0);
    if (n < 40 + 8 + 20) {
      EXPECT_NE(c.kind, FrameKind::kTcp) << "cut at " << n;
    } else {
      ASSERT_EQ(c.kind, FrameKind::kTcp) << "cut at " << n;
      EXPECT_EQ(c.segment.missing, b.size() - n) << "cut at " << n;
    }
  }
}

TEST(Decode, Ipv4FragmentIsHandedOver) {
  Bytes ip = Ipv4Tcp({1, 1, 1, 1}, {2, 2, 2, 2}, 1, 2, 3, 4, 0, "abcdefgh", 0xffff, 0x2000);
  DecodedFrame d = DecodeIp(ip, 0);
  ASSERT_EQ(d.kind, FrameKind::kIpv4Fragment);
  EXPECT_TRUE(d.fragment.more);
  EXPECT_EQ(d.fragment.offset, 0u);
  EXPECT_EQ(d.fragment.id, 0x1234);
}

// An IPv6 + TCP packet (RFC 8200 section 3, no extension headers) from 2001:db8::1 to ::1.
Bytes Ipv6Tcp(uint16_t sport, uint16_t dport, const std::string& payload) {
  Bytes b = {0x60, 0, 0, 0};
  Put16(b, static_cast<uint16_t>(20 + payload.size()));
  b.push_back(6);  // next header: TCP
  b.push_back(64);
  Bytes src = {0x20, 0x01, 0x0d, 0xb8, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1};
  Bytes dst(16, 0);
  dst[15] = 1;
  b.insert(b.end(), src.begin(), src.end());
  b.insert(b.end(), dst.begin(), dst.end());
  Bytes tcp = Ipv4Tcp({0, 0, 0, 0}, {0, 0, 0, 0}, sport, dport, 1, 1, kTcpAck, payload);
  b.insert(b.end(), tcp.begin() + 20, tcp.end());
  return b;
}

// Appends a 16-bit value in either byte order.
void Put16As(Bytes& b, uint16_t v, bool big_endian) {
  if (big_endian) return Put16(b, v);
  b.push_back(static_cast<uint8_t>(v));
  b.push_back(static_cast<uint8_t>(v >> 8));
}

// One NFLOG TLV: length (4-byte header included, padding not), type, value, padding to 4 bytes
// (LINKTYPE_NFLOG layout: tcpdump.org/linktypes/LINKTYPE_NFLOG.html; libpcap's pcap/nflog.h).
void NflogTlv(Bytes& b, uint16_t type, const Bytes& value, bool big_endian) {
  Put16As(b, static_cast<uint16_t>(4 + value.size()), big_endian);
  Put16As(b, type, big_endian);
  b.insert(b.end(), value.begin(), value.end());
  while (b.size() % 4) b.push_back(0);
}

// An NFLOG frame as the kernel's nfnetlink_log sends it: family, version 0, resource id (group 7,
// network order), NFULA_PACKET_HDR (1: hw_protocol, hook), NFULA_PREFIX (10) of one byte (padded
// to 8), NFULA_PAYLOAD (9) with `ip` at offset 24.
Bytes Nflog(uint8_t family, const Bytes& ip, bool big_endian) {
  Bytes b = {family, 0, 0, 7};
  NflogTlv(b, 1, {0x08, 0x00, 3, 0}, big_endian);
  NflogTlv(b, 10, {'x'}, big_endian);
  NflogTlv(b, 9, ip, big_endian);
  return b;
}

// A pf log header of unpadded length `length` (padded to 4) with family `af`, then `ip`
// (net/if_pflog.h of the BSDs; libpcap's pflog.h; tcpdump's print-pflog.c).
Bytes Pflog(uint8_t length, uint8_t af, const Bytes& ip) {
  Bytes b((size_t{length} + 3) & ~size_t{3}, 0);
  b[0] = length;
  b[1] = af;
  std::string ifname = "pflog0";
  std::copy(ifname.begin(), ifname.end(), b.begin() + 4);
  b.insert(b.end(), ip.begin(), ip.end());
  return b;
}

uint32_t Size(const Bytes& b) { return static_cast<uint32_t>(b.size()); }

TEST(Decode, NflogTlvsInEitherByteOrder) {
  Bytes ip = Ipv4Tcp({10, 0, 0, 1}, {10, 0, 0, 2}, 40000, 80, 1000, 5, kTcpAck, "GET /");
  for (bool big_endian : {false, true}) {
    SCOPED_TRACE(big_endian ? "big-endian TLVs" : "little-endian TLVs");
    Bytes f = Nflog(2, ip, big_endian);
    ASSERT_EQ(f.size(), 24 + 48u);  // 45 bytes of packet padded to 48
    DecodedFrame d = DecodeFrame(239, f, Size(f));
    ASSERT_EQ(d.kind, FrameKind::kTcp) << d.why;
    EXPECT_EQ(d.segment.src.ToString(), "10.0.0.1");
    EXPECT_EQ(d.segment.dst_port, 80);
    EXPECT_EQ(std::string(d.segment.payload.begin(), d.segment.payload.end()), "GET /")
        << "the TLV's padding is not payload";
    // Every cut (the snaplen): a TCP segment once its headers are in, the rest counted missing.
    for (size_t n = 0; n < f.size(); ++n) {
      DecodedFrame c = DecodeFrame(239, std::span<const uint8_t>(f.data(), n), Size(f));
      if (n < 24 + 40) {
        EXPECT_NE(c.kind, FrameKind::kTcp) << "cut at " << n;
      } else {
        ASSERT_EQ(c.kind, FrameKind::kTcp) << "cut at " << n;
        EXPECT_EQ(c.segment.missing, n >= 24 + 45 ? 0 : 24 + 45 - n) << "cut at " << n;
      }
    }
  }
  // IPv6: Linux's AF_INET6 (10) in the NFLOG header.
  Bytes f6 = Nflog(10, Ipv6Tcp(8080, 41000, "HTTP/1.1 200 OK\r\n"), false);
  DecodedFrame d6 = DecodeFrame(239, f6, Size(f6));
  ASSERT_EQ(d6.kind, FrameKind::kTcp) << d6.why;
  EXPECT_EQ(d6.segment.src.ToString(), "2001:db8::1");
  EXPECT_EQ(d6.segment.src_port, 8080);
}

TEST(Decode, NflogMalformedAndWithoutPayload) {
  Bytes ip = Ipv4Tcp({10, 0, 0, 1}, {10, 0, 0, 2}, 1, 2, 3, 4, kTcpAck, "x");
  auto decode = [](const Bytes& f, uint32_t wire = 0) {
    return DecodeFrame(239, f, wire ? wire : Size(f));
  };
  DecodedFrame d = decode({2, 0, 0});
  EXPECT_EQ(d.kind, FrameKind::kMalformed);
  EXPECT_EQ(d.why, "NFLOG header cut short");
  Bytes v1 = Nflog(2, ip, false);
  v1[1] = 1;
  EXPECT_EQ(decode(v1).why, "unknown NFLOG version");
  EXPECT_EQ(decode(v1).kind, FrameKind::kMalformed);
  Bytes bridge = Nflog(7, ip, false);  // AF_BRIDGE
  EXPECT_EQ(decode(bridge).kind, FrameKind::kNotIp);
  // A TLV length below its own 4-byte header (2, in either byte order).
  for (bool big_endian : {false, true}) {
    Bytes f = {2, 0, 0, 7};
    Put16As(f, 2, big_endian);
    Put16As(f, 9, big_endian);
    f.insert(f.end(), ip.begin(), ip.end());
    d = decode(f);
    EXPECT_EQ(d.kind, FrameKind::kMalformed);
    // Malformed in both orders: the reason is the one of this host's order (read the other way,
    // 2 is 512, past the frame).
    bool host_order = big_endian == (std::endian::native == std::endian::big);
    EXPECT_EQ(d.why, host_order ? "NFLOG TLV length below its 4-byte header"
                                : "NFLOG TLV runs past the frame");
  }
  // A payload TLV that claims 400 bytes of a 4 + 4 + 41-byte frame (captured whole).
  Bytes past = {2, 0, 0, 7};
  Put16As(past, 400, false);
  Put16As(past, 9, false);
  past.insert(past.end(), ip.begin(), ip.end());
  d = decode(past);
  EXPECT_EQ(d.kind, FrameKind::kMalformed);
  EXPECT_EQ(d.why, "NFLOG TLV runs past the frame");
  // No payload TLV (a message of metadata only): not an IP frame.
  Bytes meta = {2, 0, 0, 7};
  NflogTlv(meta, 1, {0x08, 0x00, 3, 0}, false);
  NflogTlv(meta, 10, {'x'}, false);
  d = decode(meta);
  EXPECT_EQ(d.kind, FrameKind::kNotIp);
  EXPECT_EQ(d.why, "NFLOG message without a payload TLV");
  // The snaplen cut the frame before the payload TLV's header: malformed, not "no payload".
  Bytes cut(meta.begin(), meta.begin() + 12);
  d = decode(cut, 100);
  EXPECT_EQ(d.kind, FrameKind::kMalformed);
  EXPECT_EQ(d.why, "NFLOG cut short before its payload TLV");
}

TEST(Decode, PflogHeaderLengthsAndFamilies) {
  Bytes ip = Ipv4Tcp({192, 0, 2, 1}, {192, 0, 2, 2}, 50000, 80, 9, 9, kTcpAck, "GET /pf");
  // FreeBSD's 69-byte header padded to 72; NetBSD/Darwin's 61 padded to 64.
  for (uint8_t length : {69, 61}) {
    Bytes f = Pflog(length, 2, ip);
    DecodedFrame d = DecodeFrame(117, f, Size(f));
    ASSERT_EQ(d.kind, FrameKind::kTcp) << d.why;
    EXPECT_EQ(d.segment.src.ToString(), "192.0.2.1");
    EXPECT_EQ(std::string(d.segment.payload.begin(), d.segment.payload.end()), "GET /pf");
  }
  // IPv6 under each BSD's AF_INET6: OpenBSD's 100-byte header with 24, FreeBSD 28, Darwin 30.
  Bytes ip6 = Ipv6Tcp(443, 50001, "hello");
  for (uint8_t af : {24, 28, 30}) {
    Bytes f = Pflog(af == 24 ? 100 : 69, af, ip6);
    DecodedFrame d = DecodeFrame(117, f, Size(f));
    ASSERT_EQ(d.kind, FrameKind::kTcp) << "af " << int{af} << ": " << d.why;
    EXPECT_EQ(d.segment.src.ToString(), "2001:db8::1");
    EXPECT_EQ(d.segment.src_port, 443);
  }
  EXPECT_EQ(DecodeFrame(117, Pflog(69, 10, ip6), 200).kind, FrameKind::kNotIp)
      << "Linux's AF_INET6 is no pf family";
  Bytes small = Pflog(60, 2, ip);
  EXPECT_EQ(DecodeFrame(117, small, Size(small)).kind, FrameKind::kMalformed);
  EXPECT_EQ(DecodeFrame(117, small, Size(small)).why, "PFLOG header length below 61");
  Bytes large = Pflog(101, 2, ip);
  EXPECT_EQ(DecodeFrame(117, large, Size(large)).why, "PFLOG header length above 100");
  Bytes longer_than_frame = Pflog(100, 2, {});
  longer_than_frame.resize(80);
  EXPECT_EQ(DecodeFrame(117, longer_than_frame, 200).why, "PFLOG header cut short");
  EXPECT_EQ(DecodeFrame(117, Bytes{}, 0).why, "PFLOG header cut short");
}

// Collects a reassembled stream, gaps shown as '#'.
struct StringSink final : StreamSink {
  std::string out;
  void OnData(std::span<const uint8_t> d, const ChunkInfo&) override {
    out.append(d.begin(), d.end());
  }
  void OnGap(uint64_t, uint64_t n, uint64_t, bool) override { out.append(n, '#'); }
};

std::span<const uint8_t> S(const std::string& s) {
  return std::span<const uint8_t>(reinterpret_cast<const uint8_t*>(s.data()), s.size());
}

TEST(Reassembly, OutOfOrderRetransmissionOverlapAndWrap) {
  StringSink sink;
  TcpReassembler r;
  uint32_t isn = 0xfffffff0u;                   // sequence numbers wrap inside the stream
  r.OnSegment(isn, {}, true, false, 0, &sink);  // SYN: data starts at isn + 1
  std::string text = "GET /index.html HTTP/1.1\r\nHost: example\r\n\r\n";
  uint32_t base = isn + 1;
  r.OnSegment(base + 20, S(text.substr(20, 10)), false, false, 0, &sink);  // early
  r.OnSegment(base + 0, S(text.substr(0, 12)), false, false, 0, &sink);
  r.OnSegment(base + 5, S(text.substr(5, 15)), false, false, 0, &sink);  // overlap
  r.OnSegment(base + 0, S(text.substr(0, 12)), false, false, 0, &sink);  // retransmission
  r.OnSegment(base + 30, S(text.substr(30)), false, true, 0, &sink);
  EXPECT_EQ(sink.out, text);
  EXPECT_TRUE(r.fin_seen());
  EXPECT_EQ(r.stats().retransmitted_bytes, 7u + 12u);  // the overlap, then the retransmission
}

TEST(Reassembly, LostSegmentBecomesAGapWhenThePeerAcksPastIt) {
  StringSink sink;
  TcpReassembler r;
  r.OnSegment(100, S("aaaa"), false, false, 0, &sink);  // mid-stream pick-up
  r.OnSegment(108, S("cccc"), false, false, 0, &sink);  // "bbbb" at 104 never captured
  EXPECT_EQ(sink.out, "aaaa");
  r.OnPeerAck(112, 0, &sink);
  EXPECT_EQ(sink.out, "aaaa") << "within the grace time the bytes may still come";
  r.OnPeerAck(112, TcpReassembler::kDefaultReorderWindowNs, &sink);
  EXPECT_EQ(sink.out, "aaaa####cccc");
  EXPECT_EQ(r.stats().gap_bytes, 4u);
}

// tcpdump -i any can record an ACK before the data it acknowledges: no gap when the data follows
// within the grace time.
TEST(Reassembly, AckRecordedBeforeItsDataIsNotAGap) {
  StringSink sink;
  TcpReassembler r;
  r.OnSegment(100, S("aaaa"), false, false, 0, &sink);
  r.OnSegment(108, S("cccc"), false, false, 1000, &sink);
  r.OnPeerAck(112, 2000, &sink);
  r.OnSegment(104, S("bbbb"), false, false, 3000, &sink);
  EXPECT_EQ(sink.out, "aaaabbbbcccc");
  EXPECT_EQ(r.stats().gaps, 0u);
  // A later hole is timed afresh.
  r.OnSegment(116, S("eeee"), false, false, 4000, &sink);
  r.OnPeerAck(120, 5000, &sink);
  r.OnSegment(120, S("ffff"), false, false, 5000 + TcpReassembler::kDefaultReorderWindowNs - 1,
              &sink);
  EXPECT_EQ(sink.out, "aaaabbbbcccc");
  r.OnSegment(124, S("gggg"), false, false, 5000 + TcpReassembler::kDefaultReorderWindowNs, &sink);
  EXPECT_EQ(sink.out, "aaaabbbbcccc####eeeeffffgggg");
}

TEST(Reassembly, BufferCapForcesAGap) {
  StringSink sink;
  TcpReassembler r(/*max_buffered=*/10);
  r.OnSegment(0, S("x"), false, false, 0, &sink);
  r.OnSegment(5, S("0123456789ab"), false, false, 0, &sink);
  EXPECT_EQ(sink.out, "x####0123456789ab");
  EXPECT_EQ(r.stats().buffer_overflows, 1u);
}

// Feeds client and server bytes through an Http1Connection and keeps the exchanges.
struct Http {
  std::vector<Exchange> got;
  uint64_t ids = 1;
  Http1Counters counters;
  static Http1Options Options() {
    Http1Options o;
    o.body_limit = 16;
    return o;
  }
  Http1Connection conn{
      Exchange{}, Options(), &ids, [this](Exchange&& x) { got.push_back(std::move(x)); },
      &counters,  true,      true};
  void C(const std::string& s, uint64_t ts = 1) { conn.OnClientData(S(s), ts); }
  void R(const std::string& s, uint64_t ts = 2) { conn.OnServerData(S(s), ts); }
};

TEST(Http1, PipelinedChunkedTrailersHeadAnd304) {
  Http h;
  h.C("GET /a HTTP/1.1\r\nHost: x\r\n\r\nHEAD /b HTTP/1.1\r\nHost: x\r\n\r\n"
      "GET /c HTTP/1.1\r\nHost: x\r\nIf-None-Match: \"e\"\r\n\r\n",
      100);
  h.R("HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n"
      "5\r\nhello\r\n6\r\n world\r\n0\r\nX-Digest: abc\r\n\r\n",
      300);
  h.R("HTTP/1.1 200 OK\r\nContent-Length: 1000\r\n\r\n", 400);  // HEAD: no body follows
  h.R("HTTP/1.1 304 Not Modified\r\nETag: \"e\"\r\n\r\n", 500);
  ASSERT_EQ(h.got.size(), 3u);
  EXPECT_EQ(h.got[0].request->path, "/a");
  EXPECT_EQ(h.got[0].response->body.data, "hello world");
  EXPECT_EQ(h.got[0].response->body.length, 11u);
  ASSERT_EQ(h.got[0].response->trailers.size(), 1u);
  EXPECT_EQ(h.got[0].response->trailers[0].value, "abc");
  EXPECT_EQ(h.got[0].latency_ns(), 200u);
  EXPECT_EQ(h.got[1].request->method, "HEAD");
  EXPECT_EQ(h.got[1].response->body.length, 0u);
  EXPECT_EQ(h.got[2].response->status, 304);
  for (const Exchange& x : h.got) EXPECT_EQ(x.completion, Completion::kComplete);
}

TEST(Http1, ContinueInterimAndBodyLimit) {
  Http h;
  h.C("POST /up HTTP/1.1\r\nHost: x\r\nExpect: 100-continue\r\nContent-Length: 20\r\n\r\n", 10);
  h.R("HTTP/1.1 100 Continue\r\n\r\n", 20);
  h.C("01234567890123456789", 30);
  h.R("HTTP/1.1 201 Created\r\nContent-Length: 0\r\n\r\n", 40);
  ASSERT_EQ(h.got.size(), 1u);
  const Exchange& x = h.got[0];
  ASSERT_EQ(x.interim.size(), 1u);
  EXPECT_EQ(x.interim[0].status, 100);
  EXPECT_EQ(x.interim[0].offset_ns, 10u);
  EXPECT_EQ(x.request->body.data, "0123456789012345") << "kept up to the 16-byte body limit";
  EXPECT_EQ(x.request->body.length, 20u);
  EXPECT_TRUE(x.request->body.truncated);
  EXPECT_EQ(x.response_start_ns, 30u);
}

TEST(Http1, CustomMethodAndMalformedThenResync) {
  Http h;
  h.C("CCM_POST /x HTTP/1.1\r\nHost: x\r\nContent-Length: 2\r\n\r\nok"
      "GET / HTTP/1.1\r\nContent-Length: 1\r\nContent-Length: 2\r\n\r\nzz\r\n"
      "GET /after HTTP/1.1\r\nHost: x\r\n\r\n");
  h.R("HTTP/1.1 405 Method Not Allowed\r\nContent-Length: 0\r\n\r\n"
      "HTTP/1.1 400 Bad Request\r\nContent-Length: 0\r\n\r\n"
      "HTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n");
  ASSERT_EQ(h.got.size(), 3u);
  EXPECT_EQ(h.got[0].request->method, "CCM_POST");
  EXPECT_EQ(h.got[0].request->body.data, "ok");
  EXPECT_EQ(h.got[0].response->status, 405);
  EXPECT_EQ(h.got[1].completion, Completion::kMalformed);
  EXPECT_NE(h.got[1].reason.find("malformed"), std::string::npos) << h.got[1].reason;
  EXPECT_EQ(h.got[1].response->status, 400);
  EXPECT_EQ(h.got[2].request->path, "/after");
  EXPECT_EQ(h.got[2].response->status, 200);
}

TEST(Http1, ResponseWithoutRequestAndRequestWithoutResponse) {
  Http h;
  h.R("HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nhi");
  h.C("GET /late HTTP/1.1\r\nHost: x\r\n\r\n");
  h.conn.Close(Completion::kNoResponse, "closed", 9);
  ASSERT_EQ(h.got.size(), 2u);
  EXPECT_FALSE(h.got[0].request.has_value());
  EXPECT_EQ(h.got[0].completion, Completion::kNoRequest);
  EXPECT_FALSE(h.got[1].response.has_value());
  EXPECT_EQ(h.got[1].completion, Completion::kNoResponse);
}

TEST(Http1, UpgradeEndsHttp) {
  Http h;
  h.C("GET / HTTP/1.1\r\nHost: x\r\nConnection: Upgrade\r\nUpgrade: h2c\r\n\r\n");
  h.R("HTTP/1.1 101 Switching Protocols\r\nConnection: Upgrade\r\nUpgrade: h2c\r\n\r\n"
      "\x00\x00\x00\x04\x00\x00\x00\x00\x00");
  EXPECT_TRUE(h.conn.opaque());
  ASSERT_EQ(h.got.size(), 1u);
  EXPECT_EQ(h.got[0].response->status, 101);
  EXPECT_EQ(h.counters.h2c_upgrades, 1u);
}

TEST(Tls, ClientHelloServerName) {
  // A ClientHello with only a server_name extension for "api.example" (RFC 8446 4.1.2, RFC 6066).
  Bytes rec = testing::TlsClientHello("api.example");
  EXPECT_EQ(TlsClientHelloSni(rec), "api.example");
  for (size_t n = 0; n < rec.size(); ++n) {
    EXPECT_EQ(TlsClientHelloSni(std::span<const uint8_t>(rec.data(), n)), "") << n;
  }
}

}  // namespace
}  // namespace tapkit

namespace tapkit {
namespace {

// Regressions from the taprec trial (2026-11-30).

// A declined Upgrade (curl --http2 against a server without h2c) releases the client's later
// requests instead of holding them for ever.
TEST(Http1, DeclinedUpgradeKeepsParsing) {
  Http h;
  h.C("GET /a HTTP/1.1\r\nHost: x\r\nConnection: Upgrade, HTTP2-Settings\r\nUpgrade: h2c\r\n"
      "HTTP2-Settings: AAMAAABkAAQCAAAAAAIAAAAA\r\n\r\n");
  h.C("GET /b HTTP/1.1\r\nHost: x\r\n\r\n");
  h.R("HTTP/1.1 200 OK\r\nContent-Length: 1\r\n\r\na");
  h.R("HTTP/1.1 200 OK\r\nContent-Length: 1\r\n\r\nb");
  EXPECT_FALSE(h.conn.opaque());
  ASSERT_EQ(h.got.size(), 2u);
  EXPECT_EQ(h.got[0].request->path, "/a");
  EXPECT_EQ(h.got[1].request->path, "/b");
  EXPECT_EQ(h.got[1].response->body.data, "b");
}

// The same with both responses in one segment: the held request is read before the second
// response, which pairs with it.
TEST(Http1, DeclinedUpgradeWithResponsesInOneSegment) {
  Http h;
  h.C("GET /a HTTP/1.1\r\nHost: x\r\nConnection: Upgrade\r\nUpgrade: h2c\r\n\r\n");
  h.C("GET /b HTTP/1.1\r\nHost: x\r\n\r\n");
  h.R("HTTP/1.1 200 OK\r\nContent-Length: 1\r\n\r\naHTTP/1.1 200 OK\r\nContent-Length: 1\r\n\r\nb");
  ASSERT_EQ(h.got.size(), 2u);
  EXPECT_EQ(h.got[1].request->path, "/b");
  EXPECT_EQ(h.got[1].response->body.data, "b");
  EXPECT_EQ(h.got[1].completion, Completion::kComplete);
}

// A 304 (or 204) carries no body even with a Content-Length (RFC 9112 section 6.3): the next
// response is the next exchange's, not the 304's body.
TEST(Http1, NotModifiedWithContentLengthHasNoBody) {
  for (const char* status : {"304 Not Modified", "204 No Content"}) {
    Http h;
    h.C("GET /a HTTP/1.1\r\nHost: x\r\n\r\n");
    h.R(std::string("HTTP/1.1 ") + status + "\r\nETag: \"x\"\r\nContent-Length: 1222\r\n\r\n");
    h.C("GET /b HTTP/1.1\r\nHost: x\r\n\r\n");
    h.R("HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\nhello");
    ASSERT_EQ(h.got.size(), 2u) << status;
    EXPECT_EQ(h.got[0].response->body.length, 0u);
    EXPECT_EQ(h.got[0].completion, Completion::kComplete);
    EXPECT_EQ(h.got[1].request->path, "/b");
    EXPECT_EQ(h.got[1].response->body.data, "hello");
  }
}

// After a declined Upgrade the held bytes start at a message boundary: a request line split
// across segments there is still read.
TEST(Http1, DeclinedUpgradeThenSplitRequestLine) {
  Http h;
  h.C("GET /a HTTP/1.1\r\nHost: x\r\nConnection: Upgrade\r\nUpgrade: h2c\r\n\r\n");
  h.R("HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\nhello");
  h.C("GET");
  h.C(" /b HTTP/1.1\r\nHost: x\r\n\r\n");
  h.R("HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\nhello");
  ASSERT_EQ(h.got.size(), 2u);
  EXPECT_EQ(h.got[1].request->path, "/b");
  EXPECT_EQ(h.got[1].completion, Completion::kComplete);
}

// A response cut off by the end of the connection keeps its status, headers and the bytes seen.
TEST(Http1, ResponseCutByCloseIsKept) {
  Http h;
  h.C("GET /big HTTP/1.1\r\nHost: x\r\n\r\n", 1);
  h.R("HTTP/1.1 200 OK\r\nContent-Length: 100\r\n\r\n0123456789", 5);
  h.conn.Close(Completion::kNoResponse, "closed", 9);
  ASSERT_EQ(h.got.size(), 1u);
  ASSERT_TRUE(h.got[0].response.has_value());
  EXPECT_EQ(h.got[0].response->status, 200);
  EXPECT_EQ(h.got[0].response->body.length, 100u) << "from Content-Length";
  EXPECT_EQ(h.got[0].response->body.data, "0123456789");
  EXPECT_EQ(h.got[0].completion, Completion::kTruncated);
}

// Frames of one HTTP exchange over Ethernet/IPv4 for the engine tests below.
struct Conversation {
  std::vector<std::pair<Bytes, uint64_t>> frames;
  uint32_t cseq = 1000, sseq = 5000;
  uint64_t ts = 1'000'000'000'000ull;
  void Client(const std::string& p, uint8_t flags = kTcpAck | 0x08) {
    frames.push_back(
        {Ethernet(Ipv4Tcp({10, 0, 0, 1}, {10, 0, 0, 2}, 40000, 80, cseq, sseq, flags, p)),
         ts += 1000});
    cseq += static_cast<uint32_t>(p.size()) + ((flags & (kTcpSyn | kTcpFin)) ? 1 : 0);
  }
  void Server(const std::string& p, uint8_t flags = kTcpAck | 0x08) {
    frames.push_back(
        {Ethernet(Ipv4Tcp({10, 0, 0, 2}, {10, 0, 0, 1}, 80, 40000, sseq, cseq, flags, p)),
         ts += 1000});
    sseq += static_cast<uint32_t>(p.size()) + ((flags & (kTcpSyn | kTcpFin)) ? 1 : 0);
  }
  std::vector<Exchange> Run(std::map<std::string, uint64_t>* counters = nullptr) {
    std::vector<Exchange> out;
    CaptureEngine e(EngineOptions{}, [&out](Exchange&& x) { out.push_back(std::move(x)); });
    for (auto& [f, t] : frames) e.OnPacket(1, t, f, static_cast<uint32_t>(f.size()));
    e.Finish(ts);
    if (counters) *counters = e.Counters();
    return out;
  }
};

// A request line in pieces smaller than a method ("GE", "T /x ...") is still found.
TEST(Engine, RequestLineInTinySegments) {
  Conversation c;
  c.Client("", kTcpSyn);
  c.Server("", kTcpSyn | kTcpAck);
  for (char ch : std::string("GET /x HTTP/1.1\r\nHost: h\r\n\r\n")) c.Client(std::string(1, ch));
  c.Server("HTTP/1.1 204 No Content\r\n\r\n");
  std::vector<Exchange> got = c.Run();
  ASSERT_EQ(got.size(), 1u);
  EXPECT_EQ(got[0].request->path, "/x");
  EXPECT_EQ(got[0].response->status, 204);
}

// One packet with a timestamp a day ahead does not expire the connections around it.
TEST(Engine, TimestampJumpDoesNotExpireEverything) {
  Conversation c;
  c.Client("GET /1 HTTP/1.1\r\nHost: h\r\n\r\n");
  c.Server("HTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n");
  Bytes stray = Ethernet(Ipv4Tcp({9, 9, 9, 9}, {8, 8, 8, 8}, 1, 2, 3, 0, kTcpSyn, ""));
  c.frames.push_back({stray, c.ts + 86'400'000'000'000ull});
  c.Client("GET /2 HTTP/1.1\r\nHost: h\r\n\r\n");
  c.Server("HTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n");
  std::vector<Exchange> got = c.Run();
  ASSERT_EQ(got.size(), 2u);
  for (const Exchange& x : got) EXPECT_EQ(x.completion, Completion::kComplete) << x.reason;
}

// A FIN captured before the last data segment does not close the connection early.
TEST(Engine, FinBeforeLastSegment) {
  Conversation c;
  c.Client("GET /f HTTP/1.1\r\nHost: h\r\n\r\n");
  std::string head = "HTTP/1.1 200 OK\r\nContent-Length: 4\r\n\r\n";
  uint32_t start = c.sseq;
  c.Server(head);
  c.sseq += 4;  // the body segment comes after the FIN in the capture
  c.Server("", kTcpFin | kTcpAck);
  c.Client("", kTcpFin | kTcpAck);
  uint32_t fin_sseq = c.sseq;
  c.sseq = start + static_cast<uint32_t>(head.size());
  c.Server("body");
  c.sseq = fin_sseq;
  std::vector<Exchange> got = c.Run();
  ASSERT_EQ(got.size(), 1u);
  EXPECT_EQ(got[0].response->body.data, "body");
  EXPECT_EQ(got[0].completion, Completion::kComplete) << got[0].reason;
}

// Data after a RST the peer ignored starts a connection again (suricata's security-4710 case).
TEST(Engine, DataAfterIgnoredReset) {
  Conversation c;
  c.Client("", kTcpSyn);
  c.Server("", kTcpSyn | kTcpAck);
  c.Client("", kTcpRst | kTcpAck);
  c.cseq -= 0;
  c.Client("GET /after-rst HTTP/1.1\r\nHost: h\r\n\r\n");
  c.Server("HTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n");
  std::vector<Exchange> got = c.Run();
  ASSERT_EQ(got.size(), 1u);
  EXPECT_EQ(got[0].request->path, "/after-rst");
}

// Frames of link types the decoder does not know are one named drop, counted exactly, and the
// list of link types seen stops at CaptureEngine::kMaxLinkTypes however many a file declares.
TEST(Engine, UnknownLinkTypeIsANamedDropAndLinkTypesStayBounded) {
  CaptureEngine e(EngineOptions{}, [](Exchange&&) {});
  Bytes eth = Ethernet(Ipv4Tcp({1, 1, 1, 1}, {2, 2, 2, 2}, 1, 2, 3, 0, kTcpSyn, ""));
  e.OnPacket(1, 1000, eth, Size(eth));
  Bytes junk = {1, 2, 3, 4, 5, 6, 7, 8};
  for (int lt = 1000; lt < 2000; ++lt) {  // no LINKTYPE_ value in 1000..1999 is assigned
    ASSERT_FALSE(IsSupportedLinkType(lt));
    e.OnPacket(lt, 2000, junk, Size(junk));
  }
  e.OnPacket(1000, 3000, junk, Size(junk));  // a repeat
  std::map<std::string, uint64_t> drops = e.Drops();
  EXPECT_EQ(drops["unknown_link_type"], 1001u);
  EXPECT_EQ(e.Counters()["frames"], 1002u);
  EXPECT_EQ(e.Counters().count("unsupported_link_frames"), 0u);
  ASSERT_EQ(e.link_types().size(), CaptureEngine::kMaxLinkTypes);
  EXPECT_EQ(e.link_types()[0], 1);
  EXPECT_EQ(e.link_types()[1], 1000);
  EXPECT_EQ(e.link_types().back(), 1000 + CaptureEngine::kMaxLinkTypes - 2);
}

// Writes a big-endian pcapng (as a big-endian host writes it) of one interface of `link_type`
// holding `frame`: SHB, IDB, EPB (draft-ietf-opsawg-pcapng sections 4.1, 4.2, 4.3).
std::string WriteBigEndianPcapng(const std::string& name, uint16_t link_type, const Bytes& frame) {
  Bytes b;
  Put32(b, 0x0A0D0D0A);
  Put32(b, 28);
  Put32(b, 0x1A2B3C4D);
  Put16(b, 1);
  Put16(b, 0);
  Put32(b, 0xffffffff);
  Put32(b, 0xffffffff);  // section length: unknown
  Put32(b, 28);
  Put32(b, 1);
  Put32(b, 20);
  Put16(b, link_type);
  Put16(b, 0);
  Put32(b, 0);  // snaplen: none
  Put32(b, 20);
  uint32_t padded = (Size(frame) + 3) & ~3u;
  Put32(b, 6);
  Put32(b, 32 + padded);
  Put32(b, 0);  // interface 0
  Put32(b, 0);
  Put32(b, 1'000'000);  // 1 s in microseconds
  Put32(b, Size(frame));
  Put32(b, Size(frame));
  b.insert(b.end(), frame.begin(), frame.end());
  b.resize(b.size() + padded - frame.size(), 0);
  Put32(b, 32 + padded);
  std::string path = testing::TestDir() + "/" + name;
  FILE* f = std::fopen(path.c_str(), "wb");
  std::fwrite(b.data(), 1, b.size(), f);
  std::fclose(f);
  return path;
}

// NFLOG's TLV lengths and types and PFLOG's ids are in the writing host's byte order: libpcap
// turns them into this host's for a big-endian file, and the project's pcapng reader hands over
// the same bytes.
TEST(PacketSource, PcapngReaderSwapsHostOrderFieldsAsLibpcapDoes) {
  Bytes ip = Ipv4Tcp({10, 0, 0, 1}, {10, 0, 0, 2}, 40000, 80, 1000, 5, kTcpAck, "GET /");
  Bytes pflog = Pflog(69, 2, ip);
  pflog[44 + 3] = 1;  // uid 1, written big-endian
  for (auto [link_type, frame] :
       {std::pair<uint16_t, Bytes>{239, Nflog(2, ip, true)}, {117, pflog}}) {
    SCOPED_TRACE(link_type);
    std::string path = WriteBigEndianPcapng("host-order.pcapng", link_type, frame);
    auto lib = OpenLibpcapFile(path, "");
    auto ng = OpenPcapngFile(path, "");
    ASSERT_TRUE(lib.ok()) << lib.status();
    ASSERT_TRUE(ng.ok()) << ng.status();
    Frame a, b;
    ASSERT_TRUE((*lib)->Next(&a)) << (*lib)->status();
    ASSERT_TRUE((*ng)->Next(&b)) << (*ng)->status();
    EXPECT_EQ(a.link_type, link_type);
    EXPECT_EQ(b.link_type, link_type);
    ASSERT_TRUE(std::equal(a.data.begin(), a.data.end(), b.data.begin(), b.data.end()));
    uint16_t first_tlv_length;
    uint32_t uid;
    std::memcpy(&first_tlv_length, b.data.data() + 4, 2);
    std::memcpy(&uid, b.data.data() + 44, 4);
    if (link_type == 239) {
      EXPECT_EQ(first_tlv_length, 8) << "in this host's order";
    } else {
      EXPECT_EQ(uid, 1u) << "in this host's order";
    }
    DecodedFrame d = DecodeFrame(b.link_type, b.data, b.wire_length);
    EXPECT_EQ(d.kind, FrameKind::kTcp) << d.why;
  }
}

}  // namespace
}  // namespace tapkit
