#include "sidecar/decode.h"

#include <pcap/dlt.h>

#include <algorithm>
#include <array>
#include <bit>
#include <cstring>

namespace tapkit {
namespace {

// For these the DLT_ value libpcap hands over is the LINKTYPE_ value on every OS (pcap/dlt.h:
// DLT_PFLOG was 17 on old OpenBSD, which no longer uses it, and LINKTYPE_PFLOG is 117).
static_assert(DLT_PFLOG == 117 && DLT_NFLOG == 239);

using Bytes = std::span<const uint8_t>;

uint16_t Be16(const uint8_t* p) { return static_cast<uint16_t>(p[0] << 8 | p[1]); }
uint32_t Be32(const uint8_t* p) {
  return uint32_t{p[0]} << 24 | uint32_t{p[1]} << 16 | uint32_t{p[2]} << 8 | p[3];
}
uint16_t Le16(const uint8_t* p) { return static_cast<uint16_t>(p[1] << 8 | p[0]); }
uint32_t Le32(const uint8_t* p) {
  return uint32_t{p[3]} << 24 | uint32_t{p[2]} << 16 | uint32_t{p[1]} << 8 | p[0];
}

DecodedFrame Fail(FrameKind kind, std::string_view why) {
  DecodedFrame f;
  f.kind = kind;
  f.why = why;
  return f;
}

constexpr uint16_t kEtherIpv4 = 0x0800, kEtherIpv6 = 0x86dd, kEtherPppoeSession = 0x8864;

// IP by EtherType (Ethernet, SLL, SLL2, C_HDLC).
DecodedFrame ByEtherType(uint16_t type, Bytes rest, uint32_t missing) {
  if (type == kEtherIpv4 || type == kEtherIpv6) return DecodeIp(rest, missing);
  return Fail(FrameKind::kNotIp, "not IP");
}

// PPP protocol field (RFC 1661 section 2): 0x0021 IPv4, 0x0057 IPv6; one byte when compressed.
DecodedFrame ByPppProtocol(Bytes p, uint32_t missing) {
  if (p.empty()) return Fail(FrameKind::kMalformed, "PPP header cut short");
  uint16_t proto;
  if (p[0] & 1) {  // protocol field compression: a single odd byte
    proto = p[0];
    p = p.subspan(1);
  } else {
    if (p.size() < 2) return Fail(FrameKind::kMalformed, "PPP header cut short");
    proto = Be16(p.data());
    p = p.subspan(2);
  }
  if (proto == 0x0021 || proto == 0x0057) return DecodeIp(p, missing);
  return Fail(FrameKind::kNotIp, "not IP");
}

DecodedFrame Ethernet(Bytes f, uint32_t missing) {
  if (f.size() < 14) return Fail(FrameKind::kMalformed, "Ethernet header cut short");
  size_t at = 12;
  uint16_t type = Be16(f.data() + at);
  // 802.1Q, 802.1ad and the older QinQ EtherTypes; any depth (zeek's vlan-qinqinq has three).
  while (type == 0x8100 || type == 0x88a8 || type == 0x9100 || type == 0x9200) {
    at += 4;
    if (f.size() < at + 2) return Fail(FrameKind::kMalformed, "VLAN tag cut short");
    type = Be16(f.data() + at);
  }
  at += 2;
  if (type <= 1500) {  // IEEE 802.3 length: LLC, with SNAP carrying an EtherType
    if (f.size() >= at + 8 && f[at] == 0xaa && f[at + 1] == 0xaa && f[at + 2] == 0x03) {
      type = Be16(f.data() + at + 6);
      at += 8;
    } else {
      return Fail(FrameKind::kNotIp, "802.3 LLC");
    }
  }
  if (type == kEtherPppoeSession) {  // RFC 2516 section 4: 6-byte PPPoE header, then PPP
    if (f.size() < at + 6) return Fail(FrameKind::kMalformed, "PPPoE header cut short");
    return ByPppProtocol(f.subspan(at + 6), missing);
  }
  return ByEtherType(type, f.subspan(at), missing);
}

bool IsAfInet6(uint32_t family) {
  // AF_INET6 differs by OS: Linux 10, NetBSD/OpenBSD 24, FreeBSD 28, macOS 30.
  return family == 10 || family == 24 || family == 28 || family == 30;
}

DecodedFrame Null(Bytes f, uint32_t missing, bool network_order) {
  if (f.size() < 4) return Fail(FrameKind::kMalformed, "loopback header cut short");
  // NULL's family is in the capturing host's byte order, which the file does not record.
  uint32_t a = network_order ? Be32(f.data()) : Le32(f.data());
  uint32_t b = network_order ? a : Be32(f.data());
  Bytes rest = f.subspan(4);
  if (a == 2 || b == 2 || IsAfInet6(a) || IsAfInet6(b)) return DecodeIp(rest, missing);
  return Fail(FrameKind::kNotIp, "not IP");
}

DecodedFrame ArcnetLinux(Bytes f, uint32_t missing) {
  // src, dst, 2-byte offset, type; RFC 1201 types add flag and sequence id (3 bytes).
  if (f.size() < 5) return Fail(FrameKind::kMalformed, "ARCNET header cut short");
  uint8_t type = f[4];
  if (type == 240) return DecodeIp(f.subspan(5), missing);  // RFC 1051 IP
  if (type == 212 || type == 0xc4) {                        // RFC 1201 IP, IPv6
    if (f.size() < 8) return Fail(FrameKind::kMalformed, "ARCNET header cut short");
    return DecodeIp(f.subspan(8), missing);
  }
  return Fail(FrameKind::kNotIp, "not IP");
}

// NFLOG (LINKTYPE_NFLOG 239; tcpdump.org/linktypes/LINKTYPE_NFLOG.html, libpcap's pcap/nflog.h,
// the kernel's nfnetlink_log): a 4-byte header (address family, version 0, resource id in network
// byte order), then netlink attributes (TLVs): a 2-byte length that counts the 4-byte TLV header
// but not the padding, a 2-byte type, the value, padding to a multiple of 4. The packet is the
// value of the NFULA_PAYLOAD (9) TLV, from its network header on.
constexpr uint16_t kNflogPayload = 9;
constexpr uint16_t kNetlinkTypeMask = 0x3fff;  // NLA_TYPE_MASK: less NLA_F_NESTED, NET_BYTEORDER

// Walks the TLVs after the NFLOG header with their lengths and types read big-endian or
// little-endian. `missing` is how many bytes of the frame the snaplen cut off. Sets *packet (and
// *packet_missing, its bytes cut off) and returns kTcp when the payload TLV is found; kNotIp when
// the TLVs end without one (a message of metadata only); kMalformed with a reason otherwise.
FrameKind NflogPayload(Bytes tlvs, uint32_t missing, bool big_endian, Bytes* packet,
                       uint32_t* packet_missing, std::string_view* why) {
  const uint64_t captured = tlvs.size(), wire = captured + missing;
  uint64_t at = 0;
  for (;;) {
    if (at + 4 > wire) {
      *why = "NFLOG message without a payload TLV";
      return FrameKind::kNotIp;
    }
    if (at + 4 > captured) {
      *why = "NFLOG cut short before its payload TLV";
      return FrameKind::kMalformed;
    }
    const uint8_t* h = tlvs.data() + at;
    uint16_t length = big_endian ? Be16(h) : Le16(h);
    uint16_t type = (big_endian ? Be16(h + 2) : Le16(h + 2)) & kNetlinkTypeMask;
    if (length < 4) {
      *why = "NFLOG TLV length below its 4-byte header";
      return FrameKind::kMalformed;
    }
    if (at + length > wire) {
      *why = "NFLOG TLV runs past the frame";
      return FrameKind::kMalformed;
    }
    if (type == kNflogPayload) {
      uint64_t have = std::min<uint64_t>(length, captured - at);  // at least the 4-byte header
      *packet = tlvs.subspan(static_cast<size_t>(at + 4), static_cast<size_t>(have - 4));
      *packet_missing = static_cast<uint32_t>(length - have);
      return FrameKind::kTcp;
    }
    at += (uint64_t{length} + 3) & ~uint64_t{3};
  }
}

DecodedFrame Nflog(Bytes f, uint32_t missing) {
  if (f.size() < 4) return Fail(FrameKind::kMalformed, "NFLOG header cut short");
  if (f[1] != 0) return Fail(FrameKind::kMalformed, "unknown NFLOG version");
  // The family is Linux's: AF_INET 2, AF_INET6 10 (AF_BRIDGE and others carry no IP packet here).
  if (f[0] != 2 && f[0] != 10) return Fail(FrameKind::kNotIp, "NFLOG family not IPv4 or IPv6");
  // TLV lengths and types are in the capturing host's byte order. libpcap turns them into this
  // host's when it reads a file written in the other order (pcap-util.c, swap_nflog_header), and
  // so does the project's pcapng reader; a frame that only walks in the other order (a file
  // rewritten by a tool that did not swap them) is read that way rather than lost.
  constexpr bool kHostBig = std::endian::native == std::endian::big;
  Bytes packet;
  uint32_t packet_missing = 0;
  std::string_view why;
  FrameKind kind = NflogPayload(f.subspan(4), missing, kHostBig, &packet, &packet_missing, &why);
  if (kind == FrameKind::kMalformed) {
    std::string_view other_why;
    FrameKind other =
        NflogPayload(f.subspan(4), missing, !kHostBig, &packet, &packet_missing, &other_why);
    if (other == FrameKind::kTcp) kind = other;
  }
  if (kind != FrameKind::kTcp) return Fail(kind, why);
  return DecodeIp(packet, packet_missing);
}

// PFLOG (LINKTYPE_PFLOG 117 = DLT_PFLOG on every OS libpcap knows; the BSDs' net/if_pflog.h,
// libpcap's pflog.h, tcpdump's print-pflog.c): byte 0 is the header's length without its padding
// (61 on NetBSD, DragonFly and Darwin, 69 on FreeBSD, 100 on OpenBSD; tcpdump accepts 61 to 100),
// byte 1 the address family of the logged packet, then action, reason, interface name, ruleset,
// rule numbers, ids and direction. The packet follows the header padded to a multiple of 4.
constexpr uint8_t kPflogMinHeader = 61, kPflogMaxHeader = 100;

DecodedFrame Pflog(Bytes f, uint32_t missing) {
  if (f.empty()) return Fail(FrameKind::kMalformed, "PFLOG header cut short");
  if (f[0] < kPflogMinHeader) return Fail(FrameKind::kMalformed, "PFLOG header length below 61");
  if (f[0] > kPflogMaxHeader) return Fail(FrameKind::kMalformed, "PFLOG header length above 100");
  size_t padded = (size_t{f[0]} + 3) & ~size_t{3};
  if (f.size() < padded) return Fail(FrameKind::kMalformed, "PFLOG header cut short");
  // The family is the logging OS's: AF_INET is 2 on all of them, AF_INET6 is 24 on OpenBSD and
  // NetBSD, 28 on FreeBSD and DragonFly, 30 on Darwin (as for the NULL link type).
  uint8_t af = f[1];
  if (af != 2 && af != 24 && af != 28 && af != 30) {
    return Fail(FrameKind::kNotIp, "PFLOG family not IPv4 or IPv6");
  }
  return DecodeIp(f.subspan(padded), missing);
}

}  // namespace

bool IsSupportedLinkType(int link_type) {
  if (link_type == DLT_RAW) return true;  // libpcap hands LINKTYPE_RAW over as DLT_RAW
  return std::find(std::begin(kSupportedLinkTypes), std::end(kSupportedLinkTypes), link_type) !=
         std::end(kSupportedLinkTypes);
}

DecodedFrame DecodeFrame(int link_type, Bytes f, uint32_t wire_length) {
  uint32_t missing = wire_length > f.size() ? wire_length - static_cast<uint32_t>(f.size()) : 0;
  switch (link_type) {
    case 0:
      return Null(f, missing, false);
    case 1:
      return Ethernet(f, missing);
    case 9:
      if (f.size() >= 2 && f[0] == 0xff && f[1] == 0x03) f = f.subspan(2);
      return ByPppProtocol(f, missing);
    case 104:
      if (f.size() < 4) return Fail(FrameKind::kMalformed, "C_HDLC header cut short");
      return ByEtherType(Be16(f.data() + 2), f.subspan(4), missing);
    case 108:
      return Null(f, missing, true);
    case 113:
      if (f.size() < 16) return Fail(FrameKind::kMalformed, "SLL header cut short");
      return ByEtherType(Be16(f.data() + 14), f.subspan(16), missing);
    case 117:  // DLT_PFLOG
      return Pflog(f, missing);
    case 129:
      return ArcnetLinux(f, missing);
    case 239:  // DLT_NFLOG
      return Nflog(f, missing);
    case 276:
      if (f.size() < 20) return Fail(FrameKind::kMalformed, "SLL2 header cut short");
      return ByEtherType(Be16(f.data()), f.subspan(20), missing);
    case 101:
    case 228:
    case 229:
      return DecodeIp(f, missing);
    default:
      if (link_type == DLT_RAW) return DecodeIp(f, missing);
      return Fail(FrameKind::kUnsupportedLink, "unsupported link type");
  }
}

DecodedFrame DecodeIp(Bytes p, uint32_t missing) {
  if (p.empty()) return Fail(FrameKind::kMalformed, "IP header cut short");
  int version = p[0] >> 4;
  if (version == 4) {
    if (p.size() < 20) return Fail(FrameKind::kMalformed, "IPv4 header cut short");
    size_t ihl = size_t{p[0] & 0x0fu} * 4;
    if (ihl < 20 || ihl > p.size()) return Fail(FrameKind::kMalformed, "bad IPv4 header length");
    uint32_t total = Be16(p.data() + 2);
    uint32_t have = static_cast<uint32_t>(p.size());
    // Total length 0: BIG TCP and TSO super-frames; the frame's own length is the truth.
    if (total == 0) total = have + missing;
    if (total < ihl) return Fail(FrameKind::kMalformed, "IPv4 total length below header length");
    uint32_t lost = 0;
    if (total <= have) {
      p = p.first(total);  // drop link-layer padding
    } else {
      lost = total - have;  // cut by the snaplen (or a header that claims more than was sent)
    }
    IpAddress src = IpAddress::V4(p[12], p[13], p[14], p[15]);
    IpAddress dst = IpAddress::V4(p[16], p[17], p[18], p[19]);
    uint8_t proto = p[9];
    uint16_t frag = Be16(p.data() + 6);
    bool more = frag & 0x2000;
    uint32_t offset = uint32_t{frag & 0x1fffu} * 8;
    Bytes payload = p.subspan(ihl);
    if (more || offset) {
      DecodedFrame f;
      f.kind = FrameKind::kIpv4Fragment;
      f.fragment = Ipv4Fragment{src, dst, Be16(p.data() + 4), proto, offset, more, payload};
      if (lost) return Fail(FrameKind::kMalformed, "IPv4 fragment cut short");
      return f;
    }
    if (proto != 6) return Fail(FrameKind::kNotTcp, "not TCP");
    return DecodeTcp(src, dst, payload, lost);
  }
  if (version == 6) {
    if (p.size() < 40) return Fail(FrameKind::kMalformed, "IPv6 header cut short");
    std::array<uint8_t, 16> s{}, d{};
    std::memcpy(s.data(), p.data() + 8, 16);
    std::memcpy(d.data(), p.data() + 24, 16);
    uint32_t payload_len = Be16(p.data() + 4);
    uint32_t have = static_cast<uint32_t>(p.size() - 40);
    if (payload_len == 0) payload_len = have + missing;  // jumbogram / BIG TCP
    uint32_t lost = 0;
    Bytes rest = p.subspan(40);
    if (payload_len <= have) {
      rest = rest.first(payload_len);
    } else {
      lost = payload_len - have;
    }
    uint8_t next = p[6];
    for (int hops = 0; hops < 16; ++hops) {
      switch (next) {
        case 6:
          return DecodeTcp(IpAddress::V6(s), IpAddress::V6(d), rest, lost);
        case 0:      // hop-by-hop options
        case 43:     // routing
        case 60:     // destination options
        case 135:    // mobility
        case 139:    // HIP
        case 140: {  // shim6
          if (rest.size() < 8)
            return Fail(FrameKind::kMalformed, "IPv6 extension header cut short");
          size_t len = (size_t{rest[1]} + 1) * 8;
          if (len > rest.size())
            return Fail(FrameKind::kMalformed, "IPv6 extension header cut short");
          next = rest[0];
          rest = rest.subspan(len);
          break;
        }
        case 51: {  // AH (RFC 4302): length in 4-byte units, minus 2
          if (rest.size() < 8) return Fail(FrameKind::kMalformed, "IPv6 AH cut short");
          size_t len = (size_t{rest[1]} + 2) * 4;
          if (len > rest.size()) return Fail(FrameKind::kMalformed, "IPv6 AH cut short");
          next = rest[0];
          rest = rest.subspan(len);
          break;
        }
        case 44:
          return Fail(FrameKind::kIpv6Fragment, "IPv6 fragment");
        default:
          return Fail(FrameKind::kNotTcp, "not TCP");
      }
    }
    return Fail(FrameKind::kMalformed, "too many IPv6 extension headers");
  }
  return Fail(FrameKind::kMalformed, "not IPv4 or IPv6");
}

DecodedFrame DecodeTcp(const IpAddress& src, const IpAddress& dst, Bytes t, uint32_t missing) {
  if (t.size() < 20) return Fail(FrameKind::kMalformed, "TCP header cut short");
  size_t doff = static_cast<size_t>(t[12] >> 4) * 4;
  if (doff < 20 || doff > t.size()) return Fail(FrameKind::kMalformed, "bad TCP data offset");
  DecodedFrame f;
  f.kind = FrameKind::kTcp;
  TcpSegment& s = f.segment;
  s.src = src;
  s.dst = dst;
  s.src_port = Be16(t.data());
  s.dst_port = Be16(t.data() + 2);
  s.seq = Be32(t.data() + 4);
  s.ack = Be32(t.data() + 8);
  s.flags = t[13];
  s.window = Be16(t.data() + 14);
  s.payload = t.subspan(doff);
  s.missing = missing;
  return f;
}

}  // namespace tapkit
