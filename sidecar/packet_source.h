// packet_source.h: where frames come from: a pcap or pcapng file (or standard input) read with
// libpcap, optionally narrowed by a BPF expression like tcpdump's. The live source of the tap
// sidecar implements the same interface, and reports what the kernel dropped (kernel_stats()).
//
// Thread-safety: not thread-safe; one thread reads a source and calls all of its methods,
// kernel_stats() included.
#ifndef TAPKIT_SIDECAR_PACKET_SOURCE_H_
#define TAPKIT_SIDECAR_PACKET_SOURCE_H_

#include <cstdint>
#include <cstdio>
#include <map>
#include <memory>
#include <optional>
#include <span>
#include <string>

#include "absl/status/status.h"
#include "absl/status/statusor.h"

namespace tapkit {

struct Frame {
  int link_type = 0;              // DLT_ value as libpcap reports it
  uint64_t ts_ns = 0;             // capture time, nanoseconds since the Unix epoch
  uint32_t wire_length = 0;       // bytes on the wire (pcap "len")
  std::span<const uint8_t> data;  // captured bytes (pcap "caplen"); valid until the next Next()
};

// A live capture's pcap_stats(3PCAP), summed over its interfaces: counts since the capture
// opened, in packets. On Linux `received` counts the packets that passed the BPF filter
// (tcpdump's "received by filter") and `dropped` those of them the capture buffer had no room
// for (tcpdump's "dropped by kernel").
struct KernelStats {
  uint64_t received = 0;           // ps_recv
  uint64_t dropped = 0;            // ps_drop: no room in the capture buffer
  uint64_t interface_dropped = 0;  // ps_ifdrop: dropped by the interface or its driver
};

// The names under which kernel losses are named drops in a .tap trailer (and the live tap's
// recorder, recorder/recorder.cc, writes the sidecars' KernelStats the same way).
inline constexpr char kKernelDroppedPackets[] = "kernel_dropped_packets";
inline constexpr char kInterfaceDroppedPackets[] = "interface_dropped_packets";

// Adds `k`'s losses to `drops` (a trailer's named drops) under the names above; a zero count adds
// nothing, so a capture that lost nothing keeps "Drops: none".
inline void AddKernelDrops(const KernelStats& k, std::map<std::string, uint64_t>* drops) {
  if (k.dropped) (*drops)[kKernelDroppedPackets] += k.dropped;
  if (k.interface_dropped) (*drops)[kInterfaceDroppedPackets] += k.interface_dropped;
}

class PacketSource {
 public:
  virtual ~PacketSource() = default;
  // The next frame: true, or false at the end (status() then says whether it ended in an error,
  // e.g. a damaged record, after which no more frames can be read).
  virtual bool Next(Frame* frame) = 0;
  virtual absl::Status status() const = 0;
  virtual int link_type() const = 0;
  virtual uint64_t frames() const = 0;
  // What the capture below this source lost before frames reached it: a live capture's kernel
  // counters as they stand now (pcap_stats, asked anew at each call: a system call per
  // interface, so not per frame). std::nullopt for a source that cannot lose packets that way
  // (a file). Same thread as Next(): libpcap's handles are not thread-safe.
  virtual std::optional<KernelStats> kernel_stats() const { return std::nullopt; }
};

// Opens a pcap or pcapng file ("-": standard input) with nanosecond timestamps. `bpf` (may be
// empty) filters frames as tcpdump's expression would. Errors name the file: NotFound,
// InvalidArgument for a file that is not a capture or a BPF expression that does not compile.
// A regular file in classic pcap format of Ethernet, SLL, SLL2, NULL, LOOP or raw IP is mapped
// into memory and read in place by the project's reader of libpcap's savefile rules (a copy fewer
// per frame); everything else is read through libpcap, a regular file ahead on a thread
// (ReadAhead). That includes NFLOG and PFLOG, whose host-byte-order fields libpcap rewrites for
// a file of the other byte order (a frame read in place cannot be rewritten).
absl::StatusOr<std::unique_ptr<PacketSource>> OpenCaptureFile(const std::string& path,
                                                              const std::string& bpf);

// The same through libpcap alone (no mapped reading of classic pcap files): tests hold the two
// against each other.
absl::StatusOr<std::unique_ptr<PacketSource>> OpenLibpcapFile(const std::string& path,
                                                              const std::string& bpf);
// The mapped reader of classic pcap over bytes in memory, which must outlive the source; nullptr
// for bytes that are not a classic pcap of an IP-carrying link type or a BPF expression that does
// not compile. Exposed for the fuzzer.
std::unique_ptr<PacketSource> OpenPcapBytes(std::span<const uint8_t> bytes, const std::string& name,
                                            const std::string& bpf);

// The project's own pcapng reader, which OpenCaptureFile falls back to for sections whose
// interfaces have different link types (libpcap 1.10 refuses them). Each frame carries its own
// interface's link type and timestamp resolution (if_tsresol, if_tsoffset). In a section of the
// other byte order, NFLOG's and PFLOG's host-order fields are turned into this host's order, as
// libpcap does. NotFound when the
// file cannot be opened. Exposed so tests can hold it against libpcap on files both can read.
absl::StatusOr<std::unique_ptr<PacketSource>> OpenPcapngFile(const std::string& path,
                                                             const std::string& bpf);
// The same reader over an open stdio stream, which it takes over (and closes).
std::unique_ptr<PacketSource> OpenPcapngStream(FILE* stream, const std::string& name,
                                               const std::string& bpf);

// Reads `inner` ahead on a thread of its own, so that reading and copying the file overlaps with
// the consumer's work on the frames. Frames are copied into batches of about 256 KiB; at most 8
// batches wait. status() and frames() are those of the frames handed out so far. Destroying the
// source stops the thread after the read it is in: give it regular files, whose reads end, not a
// pipe that may block for ever. The source it returns is used by one thread, as any source.
std::unique_ptr<PacketSource> ReadAhead(std::unique_ptr<PacketSource> inner);

}  // namespace tapkit

#endif  // TAPKIT_SIDECAR_PACKET_SOURCE_H_
