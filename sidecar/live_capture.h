// live_capture.h: frames from network interfaces as they pass, through libpcap's live capture.
//
// The sidecar's packet source (docs/architecture.md section 1): passive (never injects or blocks
// traffic; promiscuous mode off), packets handed over within milliseconds of their capture
// (LiveOptions: a 2 ms block timeout by default, or libpcap's immediate mode), a large kernel
// buffer so bursts do not drop, and a BPF filter compiled for each interface. Several interfaces
// are polled together.
//
// Thread-safety: not thread-safe; one thread polls a LiveCapture. Stats() may be called from the
// polling thread only.
#ifndef TAPKIT_SIDECAR_LIVE_CAPTURE_H_
#define TAPKIT_SIDECAR_LIVE_CAPTURE_H_

#include <atomic>
#include <cstdint>
#include <functional>
#include <memory>
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "sidecar/packet_source.h"

namespace tapkit {

struct LiveOptions {
  int snaplen = 262144;            // bytes captured per packet (libpcap's maximum)
  int buffer_bytes = 32 << 20;     // kernel capture buffer per interface (bytes)
  int max_frames_per_poll = 4096;  // frames handed over per Poll call at most
  // Hand-over: libpcap's immediate mode (TPACKET_V2, each packet on its own, in a slot of
  // snaplen bytes: the 32 MiB buffer then holds only a few hundred packets, a few milliseconds
  // of a busy pod, and the poll loop wakes once per packet) when true; else TPACKET_V3, where
  // the kernel packs packets into blocks handed over when full or `block_timeout_ms`
  // (milliseconds) after their first packet: the same buffer holds seconds of traffic, and a
  // wake-up takes hundreds of packets.
  bool immediate = false;
  int block_timeout_ms = 2;
};

class LiveCapture {
 public:
  // Opens every interface in `interfaces` (names as `ip link` shows them, "any" included) with
  // `bpf` (tcpdump syntax; may be empty). Errors: PermissionDenied without CAP_NET_RAW (the
  // message says so), NotFound for an unknown interface, InvalidArgument for a BPF expression
  // that does not compile; each names the interface.
  static absl::StatusOr<std::unique_ptr<LiveCapture>> Open(
      const std::vector<std::string>& interfaces, const std::string& bpf, LiveOptions options = {});
  ~LiveCapture();
  LiveCapture(const LiveCapture&) = delete;
  LiveCapture& operator=(const LiveCapture&) = delete;

  // Waits at most `timeout_ms` (milliseconds) for packets, then hands every frame available (up
  // to max_frames_per_poll) to `on_frame`; a frame's bytes are valid during the call only.
  // Returns the number of frames, or an error when an interface fails (it went away).
  absl::StatusOr<size_t> Poll(int timeout_ms, const std::function<void(const Frame&)>& on_frame);

  // pcap_stats of every interface, summed (packets since Open). An interface whose pcap_stats
  // fails adds nothing.
  KernelStats Stats() const;
  uint64_t frames() const { return frames_; }

 private:
  struct Iface;
  explicit LiveCapture(LiveOptions options);
  LiveOptions options_;
  std::vector<std::unique_ptr<Iface>> ifaces_;
  uint64_t frames_ = 0;
};

// A LiveCapture as a PacketSource (taprec -i): Next() waits for the next frame and returns false
// once `*stop` is set (checked every 50 ms) or the capture fails (status() says why). A frame's
// bytes are copied, valid until the next Next(). kernel_stats() is the capture's Stats(), from
// the thread that calls Next() (PacketSource's rule).
std::unique_ptr<PacketSource> NewLivePacketSource(std::unique_ptr<LiveCapture> capture,
                                                  const std::atomic<bool>* stop);

// The BPF expression that selects a pod's traffic: TCP to or from any of `addresses`
// ("tcp and (host A or host B)"). Empty for no addresses.
std::string PodFilter(const std::vector<std::string>& addresses);

}  // namespace tapkit

#endif  // TAPKIT_SIDECAR_LIVE_CAPTURE_H_
