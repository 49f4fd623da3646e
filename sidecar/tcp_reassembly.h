// tcp_reassembly.h: one direction of a TCP connection turned back into the byte stream the
// application wrote (RFC 9293 sequence space), for a passive observer.
//
// Keyed on sequence numbers only (never ACK numbers for data placement). Out-of-order segments are
// buffered up to a cap; retransmissions and overlaps are trimmed so no byte is delivered twice
// (the first copy seen wins, as most stacks do); sequence numbers wrap. A stream picked up without
// its SYN starts at the first segment seen. Bytes that never arrive are reported as a gap, and the
// stream goes on after it, when (a) the out-of-order buffer passes its cap, (b) the peer
// acknowledged data past a hole (OnPeerAck) and the hole is still open kAckGraceNs of capture
// time later, at the next segment or ACK, or (c) the stream is flushed at its end.
//
// Thread-safety: not thread-safe; one object per connection direction, used by one thread.
#ifndef TAPKIT_SIDECAR_TCP_REASSEMBLY_H_
#define TAPKIT_SIDECAR_TCP_REASSEMBLY_H_

#include <cstdint>
#include <map>
#include <span>
#include <string>

namespace tapkit {

class StreamSink {
 public:
  virtual ~StreamSink() = default;
  // In-order bytes; `ts_ns` is the capture time of the segment that completed them.
  virtual void OnData(std::span<const uint8_t> data, uint64_t ts_ns) = 0;
  // `bytes` of the stream will never be seen; data after the gap follows.
  virtual void OnGap(uint64_t bytes, uint64_t ts_ns) = 0;
};

struct ReassemblyStats {
  uint64_t retransmitted_bytes = 0;  // bytes seen again and dropped
  uint64_t out_of_order_segments = 0;
  uint64_t gap_bytes = 0;
  uint64_t gaps = 0;
  uint64_t buffer_overflows = 0;  // gaps forced by the out-of-order cap
};

class TcpReassembler {
 public:
  // `max_buffered`: bytes of out-of-order data held at most (bytes).
  explicit TcpReassembler(size_t max_buffered = 1 << 20) : max_buffered_(max_buffered) {}

  // A segment of this direction. A SYN sets the stream's start to seq + 1 (if no data was
  // delivered yet); FIN marks the end (data after it is ignored).
  void OnSegment(uint32_t seq, std::span<const uint8_t> payload, bool syn, bool fin, uint64_t ts_ns,
                 StreamSink* sink);
  // Capture time a hole the peer acknowledged past may stay open before it is a gap: a capture
  // on several queues may record an ACK before the data (nanoseconds).
  static constexpr uint64_t kAckGraceNs = 10'000'000;

  // The other direction acknowledged everything before `ack`: holes before it are gaps once
  // kAckGraceNs have passed without their bytes.

  void OnPeerAck(uint32_t ack, uint64_t ts_ns, StreamSink* sink);
  // The stream ends (RST, FIN of both sides, idle expiry, end of capture): buffered data after a
  // hole is delivered after a gap.
  void Flush(uint64_t ts_ns, StreamSink* sink);

  bool started() const { return started_; }
  bool syn_seen() const { return syn_seen_; }  // the stream began at its SYN (not mid-stream)
  bool fin_seen() const { return fin_seen_; }
  // Every byte up to the FIN was delivered (or skipped as a gap): the direction has ended.
  bool finished() const { return fin_seen_ && next_ >= fin_offset_; }
  uint64_t delivered() const { return next_; }  // stream bytes delivered or skipped as gaps
  size_t buffered_bytes() const { return buffered_bytes_; }
  const ReassemblyStats& stats() const { return stats_; }

 private:
  // Stream offset of sequence number `seq`, relative to the next expected byte (may be negative).
  int64_t Offset(uint32_t seq) const {
    return static_cast<int64_t>(next_) + static_cast<int32_t>(seq - next_seq_);
  }
  void Deliver(uint64_t offset, std::span<const uint8_t> data, uint64_t ts_ns, StreamSink* sink);
  void Drain(uint64_t ts_ns, StreamSink* sink);
  void GapTo(uint64_t offset, uint64_t ts_ns, StreamSink* sink);
  void ExpireAckedHole(uint64_t ts_ns, StreamSink* sink);

  size_t max_buffered_;
  bool started_ = false;
  bool syn_seen_ = false;
  bool fin_seen_ = false;
  uint64_t fin_offset_ = 0;
  uint64_t next_ = 0;                        // stream offset of the next byte expected
  uint32_t next_seq_ = 0;                    // its sequence number
  std::map<uint64_t, std::string> pending_;  // out-of-order data by stream offset
  size_t buffered_bytes_ = 0;
  // The peer acknowledged past the hole at next_ == ack_hole_at_, first at ack_hole_ts_.
  bool ack_past_hole_ = false;
  uint64_t ack_hole_at_ = 0;
  uint64_t ack_hole_ts_ = 0;
  ReassemblyStats stats_;
};

}  // namespace tapkit

#endif  // TAPKIT_SIDECAR_TCP_REASSEMBLY_H_
