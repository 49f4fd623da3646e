// pcap_export.h: exchanges as a synthesized packet capture (tapcat -o pcap), for the tools that
// read pcap files (Wireshark, tshark, tcpdump, and taprec -r itself).
//
// Each exchange's messages are re-serialized as HTTP/1 bytes (SerializeRequest,
// SerializeResponse) and carried in TCP/IP packets with the recorded addresses and ports (IPv4
// or IPv6), written by libpcap (pcap_open_dead, pcap_dump) as a classic pcap file with nanosecond
// timestamps and link type RAW (101: each record starts with the IP header):
//   - a connection is the exchanges with the same capture point, client and server address and
//     port (the file keeps no connection id), in the order they are added; its first exchange
//     opens it with SYN (with an MSS option), SYN-ACK and ACK, 3, 2 and 1 microseconds before its
//     first byte; Finish closes every connection with FIN from the client, FIN-ACK from the server
//     and the client's ACK, 1, 2 and 3 microseconds after the last byte of the whole output (the
//     capture does not record when a connection closed);
//   - data goes in segments of at most the MSS (1460 bytes for IPv4, 1440 for IPv6: a 1500-byte
//     MTU less the headers), ACK on every one and PSH on a message's last; sequence and
//     acknowledgement numbers follow the bytes sent each way; IPv4 header and TCP checksums are
//     computed (RFC 791, RFC 9293 section 3.1, RFC 8200 section 8.1);
//   - a cut message (SerializeRequest) is followed by a hole in its sender's sequence numbers
//     for the bytes not stored (the rest of its Content-Length; one byte when that is unknown),
//     and a response lost in a gap (completion gap, no response) by a one-byte hole, as in a
//     capture that lost segments: readers see the message short (tshark: "previous segment not
//     captured"; taprec -r: gap) and the next message where it starts;
//   - times: a request's segments are spread evenly from its first to its last recorded byte, an
//     interim response's sit at its recorded offset, the final response's are spread from its
//     first to its last byte.
// Packets are written in time order: each is held until an exchange starting after it arrives
// (exchanges come in sort-key order, tapcat's default), so memory holds only the packets of
// exchanges still in progress at the latest start. An exchange starting before one already added
// (one that came after tapcat's reorder window) is left out and counted in Notices: its packets
// would go back in time, and the acknowledgement history its connection would need is gone
// (tapcat refuses --file-order with -o pcap for the same reason).
//
// Thread-safety: an output from MakePcapOutput is used by one thread at a time; the Serialize
// functions are free functions over their arguments.
#ifndef TAPKIT_FORMAT_PCAP_EXPORT_H_
#define TAPKIT_FORMAT_PCAP_EXPORT_H_

#include <memory>
#include <string>

#include "absl/status/statusor.h"
#include "format/exchange_view.h"
#include "format/output.h"

namespace tapkit {

// The request as HTTP/1 bytes: request line (the recorded version; HTTP/1.1 for HTTP/2 and
// later), the header fields in recorded order, the blank line, and the body as stored. Bodies are
// stored de-chunked: a request whose Transfer-Encoding ends in chunked gets its body back as one
// chunk, the last chunk, its trailers and the blank line (RFC 9112 section 7.1); a body cut at
// the body limit, by a gap or by the snaplen (fewer bytes stored than sent, or marked truncated)
// keeps the recorded framing (Content-Length as recorded; chunked without the last chunk) and
// gets only the stored bytes, so it is not made to look whole. Empty without a request.
std::string SerializeRequest(const ExchangeView& x);

// The interim responses, then the final response, framed as SerializeRequest frames the request.
// Each message is one element, in order: the interim ones, then the final (when there is one).
std::vector<std::string> SerializeResponses(const ExchangeView& x);

// The `-o pcap` output. Errors: Internal when libpcap cannot make its writer.
absl::StatusOr<std::unique_ptr<ExchangeOutput>> MakePcapOutput();

}  // namespace tapkit

#endif  // TAPKIT_FORMAT_PCAP_EXPORT_H_
