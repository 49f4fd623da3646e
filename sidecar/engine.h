// engine.h: the capture engine: packets in, HTTP exchanges out (docs/architecture.md section 1).
//
// CaptureEngine takes frames as a PacketSource delivers them (link type, capture time, bytes),
// decodes them (decode.h), reassembles IPv4 fragments and TCP streams (tcp_reassembly.h), tells
// each connection's protocol from its first bytes (HTTP/1 on any port, TLS by its ClientHello,
// HTTP/2 by its preface or h2c Upgrade, anything else opaque) and hands each connection's bytes
// to its ProtocolParser (protocol.h): HTTP/1 (http1.h), or the parser EngineOptions::protocols
// returns for HTTP/2 by its preface and for the protocol a 101 switched to. Exchanges go to the
// `emit` callback as they complete. It is bounded: caps on
// connections, buffered bytes per direction and in total, fragments in progress, and an idle
// timeout; each cap that bites counts a named drop. It never throws or aborts on packet bytes.
//
// Thread-safety: not thread-safe; one engine per packet source, used by one thread.
#ifndef TAPKIT_SIDECAR_ENGINE_H_
#define TAPKIT_SIDECAR_ENGINE_H_

#include <cstddef>
#include <cstdint>
#include <functional>
#include <map>
#include <memory>
#include <span>
#include <string>
#include <vector>

#include "format/exchange.h"
#include "sidecar/http1.h"
#include "sidecar/protocol.h"

namespace tapkit {

struct EngineOptions {
  Http1Options http;
  uint32_t capture_point = 0;
  size_t max_connections = 65536;
  size_t max_buffered_per_direction = 1 << 20;  // bytes of out-of-order data per direction
  size_t max_buffered_total = 256u << 20;       // bytes, all connections
  uint64_t idle_timeout_ns = 300'000'000'000;   // 5 minutes without a packet
  size_t max_fragmented_datagrams = 4096;
  size_t max_undecided_bytes = 16 << 10;  // bytes looked at before calling a stream opaque
  // Capture time (nanoseconds) the engine waits for bytes a peer acknowledged but the capture has
  // not shown yet (a merged capture, -i any, a multi-queue NIC or clock skew between interfaces
  // can record a response or an ACK before the data it acknowledges). Server bytes wait this
  // long for the client bytes they acknowledge before the response is paired; then the client
  // bytes count as lost (counter reorder_window_expired). Holes acknowledged past wait as long.
  uint64_t reorder_window_ns = 100'000'000;
  // Parsers for protocols other than HTTP/1 (protocol.h): asked for token "h2c" when a connection
  // begins with the HTTP/2 preface (RFC 9113 section 3.4), and for the protocol a `101 Switching
  // Protocols` names (RFC 9110 sections 7.8, 15.2.2), which then gets every byte after the
  // switch. Unset, or returning nullptr: those bytes are the drops http2_bytes and
  // opaque_bytes_after_upgrade. Setting it sets http.hand_off_upgrades.
  ProtocolFactory protocols;
};

class CaptureEngine {
 public:
  using Emit = std::function<void(Exchange&&)>;
  CaptureEngine(EngineOptions options, Emit emit);
  ~CaptureEngine();
  CaptureEngine(const CaptureEngine&) = delete;
  CaptureEngine& operator=(const CaptureEngine&) = delete;

  // One captured frame: `data` are the captured bytes, `wire_length` the length on the wire
  // (more than data.size() when the snaplen cut it), `ts_ns` nanoseconds since the Unix epoch.
  void OnPacket(int link_type, uint64_t ts_ns, std::span<const uint8_t> data, uint32_t wire_length);
  // Capture time passed without packets (a live capture's clock, nanoseconds since the Unix
  // epoch): server bytes that waited the reorder window for client bytes go on without them.
  // Cheap when nothing waits; call it every few milliseconds on a live capture.
  void Advance(uint64_t now_ns);
  // The capture ended at `ts_ns`: every connection is closed and its open exchanges written with
  // completion "capture ended".
  void Finish(uint64_t ts_ns);

  // Totals and drops so far, by name (they go to the file trailer and `tapcat --info`).
  std::map<std::string, uint64_t> Counters() const;
  std::map<std::string, uint64_t> Drops() const;
  // The first kMaxLinkTypes distinct link types seen (DLT_ values as OnPacket got them), in order
  // of first appearance; later new ones are not listed (a hostile pcapng can declare thousands of
  // interfaces). Frames of a link type DecodeFrame does not know are the drop
  // "unknown_link_type" in Drops(), whether listed here or not.
  static constexpr size_t kMaxLinkTypes = 16;
  const std::vector<uint16_t>& link_types() const;

 private:
  struct Impl;
  std::unique_ptr<Impl> impl_;
};

// The server name of a TLS ClientHello record at the start of `data` (RFC 8446 section 4.1.2,
// RFC 6066 section 3), or empty when there is none or the record is not whole.
std::string TlsClientHelloSni(std::span<const uint8_t> data);

}  // namespace tapkit

#endif  // TAPKIT_SIDECAR_ENGINE_H_
