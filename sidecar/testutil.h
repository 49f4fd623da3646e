// testutil.h: for the capture engine's tests: a capture file read through the engine, whole;
// hand-built frames (IPv4/TCP in Ethernet, layouts of RFC 791, RFC 9293 section 3.1, IEEE 802.3).
//
// Thread-safety: free functions over their arguments.
#ifndef TAPKIT_SIDECAR_TESTUTIL_H_
#define TAPKIT_SIDECAR_TESTUTIL_H_

#include <array>
#include <cstdint>
#include <map>
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "sidecar/engine.h"

namespace tapkit::testing {

struct EngineRun {
  absl::Status status;  // opening or reading the capture; what was read before an error is kept
  std::vector<Exchange> exchanges;  // in the order the engine wrote them
  std::map<std::string, uint64_t> counters, drops;
};

// Every frame of the capture at `path` (OpenCaptureFile with `bpf`) through a CaptureEngine with
// `options`, then Finish at the last frame's time.
EngineRun RunEngine(const std::string& path, const EngineOptions& options = {},
                    const std::string& bpf = "");

using Bytes = std::vector<uint8_t>;

// Big-endian appends.
void Put16(Bytes& b, uint16_t v);
void Put32(Bytes& b, uint32_t v);

// An IPv4 + TCP packet (no options, checksums zero) carrying `payload`; `total_override`
// replaces the IPv4 total length unless 0xffff, `frag` is the flags + fragment offset field.
Bytes Ipv4Tcp(std::array<uint8_t, 4> src, std::array<uint8_t, 4> dst, uint16_t sport,
              uint16_t dport, uint32_t seq, uint32_t ack, uint8_t flags, const std::string& payload,
              uint16_t total_override = 0xffff, uint16_t frag = 0);

// A TLS 1.3 ClientHello record whose only extension is server_name `name` (RFC 8446 section
// 4.1.2, RFC 6066 section 3).
Bytes TlsClientHello(const std::string& name);

// `ip` in an Ethernet II frame (after 802.1Q/802.1ad tags with these TPIDs), padded to 60 bytes.
Bytes Ethernet(const Bytes& ip, std::vector<uint16_t> vlans = {});

}  // namespace tapkit::testing

#endif  // TAPKIT_SIDECAR_TESTUTIL_H_
