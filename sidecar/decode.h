// decode.h: from a captured frame to a TCP segment: link layer, IPv4/IPv6, TCP.
//
// DecodeFrame() peels the link-layer header of the link types listed in kSupportedLinkTypes
// (LINKTYPE_ values, tcpdump.org/linktypes.html), then IPv4 (RFC 791) or IPv6 (RFC 8200, extension
// headers skipped), then TCP (RFC 9293). It never reads outside the captured bytes and never
// throws: anything it cannot use comes back as a FrameKind with the reason counted by the caller.
// IPv4 fragments are returned as kIpv4Fragment for the Ipv4Defragmenter (defrag.h).
//
// Frames are taken as libpcap delivers them, `link_type` being its DLT_ value (equal to the
// LINKTYPE_ value for all of these but LINKTYPE_RAW, which libpcap hands over as DLT_RAW). Two
// link types carry fields in the capturing host's byte order, which libpcap converts when it
// reads a file written on a host of the other order: NFLOG's TLV lengths and types are expected
// in this host's order, and a frame whose TLVs only make sense in the other order is read in
// that one; PFLOG's host-order fields (uid, pid) are not used. PFLOG's and NULL's address
// families are those of the capturing OS, and every BSD's value for AF_INET6 is accepted.
//
// Checksums are not verified: captures taken on the sending host carry offloaded (unfilled)
// checksums, and a passive observer must not drop what the peer accepted.
//
// Thread-safety: free functions over caller-owned buffers.
#ifndef TAPKIT_SIDECAR_DECODE_H_
#define TAPKIT_SIDECAR_DECODE_H_

#include <cstdint>
#include <span>
#include <string_view>

#include "format/exchange.h"

namespace tapkit {

// Link types DecodeFrame understands, by LINKTYPE_ number.
inline constexpr int kSupportedLinkTypes[] = {
    0,    // NULL: BSD loopback, 4-byte address family in host byte order
    1,    // ETHERNET, with 802.1Q / 802.1ad / QinQ tags and PPPoE sessions
    9,    // PPP (RFC 1661), with or without the address and control bytes
    101,  // RAW: IPv4 or IPv6 by version nibble
    104,  // C_HDLC (Cisco HDLC)
    108,  // LOOP: OpenBSD loopback, family in network byte order
    113,  // LINUX_SLL: Linux cooked capture v1 (tcpdump -i any)
    117,  // PFLOG: pf's log header (OpenBSD, FreeBSD, NetBSD, Darwin), IPv4/IPv6 by its family
    129,  // ARCNET_LINUX (RFC 1051 and RFC 1201 framing)
    228,  // IPV4
    229,  // IPV6
    239,  // NFLOG: Linux netfilter log (tcpdump -i nflog:N), the packet in its NFULA_PAYLOAD TLV
    276,  // LINUX_SLL2: Linux cooked capture v2
};
bool IsSupportedLinkType(int link_type);

enum class FrameKind : uint8_t {
  kTcp,           // a TCP segment: `segment` is filled in
  kIpv4Fragment,  // an IPv4 fragment: `fragment` is filled in
  kNotIp,         // ARP, LLDP, ... (not an error)
  kNotTcp,        // UDP, ICMP, ... (not an error)
  kUnsupportedLink,
  kMalformed,     // headers that do not fit or contradict themselves
  kIpv6Fragment,  // IPv6 fragments are counted, not reassembled
};

// One TCP segment as seen on the wire. `payload` points into the frame passed to DecodeFrame.
struct TcpSegment {
  IpAddress src, dst;
  uint16_t src_port = 0, dst_port = 0;
  uint32_t seq = 0, ack = 0;
  uint8_t flags = 0;  // TCP flags byte: FIN 0x01, SYN 0x02, RST 0x04, PSH 0x08, ACK 0x10
  uint16_t window = 0;
  std::span<const uint8_t> payload;
  uint32_t missing = 0;  // payload bytes the IP header announced but the snaplen cut off
};

inline constexpr uint8_t kTcpFin = 0x01, kTcpSyn = 0x02, kTcpRst = 0x04, kTcpAck = 0x10;

// An IPv4 fragment: the IP header's identity and this piece of the payload.
struct Ipv4Fragment {
  IpAddress src, dst;
  uint16_t id = 0;
  uint8_t protocol = 0;
  uint32_t offset = 0;  // bytes
  bool more = false;    // MF flag
  std::span<const uint8_t> data;
};

struct DecodedFrame {
  FrameKind kind = FrameKind::kMalformed;
  TcpSegment segment;
  Ipv4Fragment fragment;
  std::string_view why;  // for kMalformed and kUnsupportedLink: a static reason
};

// Decodes `frame` (the captured bytes; `wire_length` is the length on the wire, at least
// frame.size()) of link type `link_type`.
DecodedFrame DecodeFrame(int link_type, std::span<const uint8_t> frame, uint32_t wire_length);

// Decodes an IP packet (IPv4 or IPv6 by version nibble) with nothing before it; used for
// reassembled IPv4 datagrams too. `missing` is how many bytes of it the capture lacks at its end.
DecodedFrame DecodeIp(std::span<const uint8_t> packet, uint32_t missing);

// Decodes the TCP header and payload of an IP payload.
DecodedFrame DecodeTcp(const IpAddress& src, const IpAddress& dst, std::span<const uint8_t> tcp,
                       uint32_t missing);

}  // namespace tapkit

#endif  // TAPKIT_SIDECAR_DECODE_H_
