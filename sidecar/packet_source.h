// packet_source.h: where frames come from: a pcap or pcapng file (or standard input) read with
// libpcap, optionally narrowed by a BPF expression like tcpdump's. The live source of the tap
// sidecar implements the same interface.
//
// Thread-safety: not thread-safe; one thread reads a source.
#ifndef TAPKIT_SIDECAR_PACKET_SOURCE_H_
#define TAPKIT_SIDECAR_PACKET_SOURCE_H_

#include <cstdint>
#include <cstdio>
#include <memory>
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

class PacketSource {
 public:
  virtual ~PacketSource() = default;
  // The next frame: true, or false at the end (status() then says whether it ended in an error,
  // e.g. a damaged record, after which no more frames can be read).
  virtual bool Next(Frame* frame) = 0;
  virtual absl::Status status() const = 0;
  virtual int link_type() const = 0;
  virtual uint64_t frames() const = 0;
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
