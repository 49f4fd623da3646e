// tcp_reassembly.h: one direction of a TCP connection turned back into the byte stream the
// application wrote (RFC 9293 sequence space), for a passive observer.
//
// Keyed on sequence numbers only (never ACK numbers for data placement). Out-of-order segments are
// buffered up to a cap; retransmissions and overlaps are trimmed so no byte is delivered twice
// (the first copy seen wins, as most stacks do; an overlap whose bytes differ from the first copy
// is counted, as an evasion signal); sequence numbers wrap. A stream picked up without its SYN
// starts at the first segment seen. Bytes that never arrive are reported as a gap, and the stream
// goes on after it, when (a) the out-of-order buffer passes its cap, (b) the peer acknowledged
// data past a hole (OnPeerAck) and the hole is still open `reorder_window_ns` of capture time
// later, at the next segment or ACK, (c) the caller skips ahead (SkipTo: the peer's ACK proved
// bytes were sent that the capture never saw), (d) a segment cut by the snaplen (its bytes on the
// wire are known lost at once), or (e) the stream is flushed at its end.
//
// Each delivered chunk carries the acknowledgement number of the segment it came in: the capture
// engine uses it to pair HTTP responses with the requests they answer (engine.h).
//
// Thread-safety: not thread-safe; one object per connection direction, used by one thread.
#ifndef TAPKIT_SIDECAR_TCP_REASSEMBLY_H_
#define TAPKIT_SIDECAR_TCP_REASSEMBLY_H_

#include <cstdint>
#include <map>
#include <memory>
#include <optional>
#include <span>
#include <string>

namespace tapkit {

// Where a delivered chunk sits and what its segment said.
struct ChunkInfo {
  uint64_t ts_ns = 0;    // capture time of the segment that carried the bytes
  uint64_t offset = 0;   // stream offset of the chunk's first byte (0: the first byte after SYN)
  bool has_ack = false;  // the segment carrying the first byte had the ACK flag
  uint32_t ack = 0;      // its acknowledgement number, in the peer's sequence space
};

class StreamSink {
 public:
  virtual ~StreamSink() = default;
  // In-order bytes.
  virtual void OnData(std::span<const uint8_t> data, const ChunkInfo& at) = 0;
  // Bytes [offset, offset + bytes) of the stream will never be seen; data after the gap follows.
  // `snaplen`: they were cut off by the capture's snaplen (on the wire, not captured).
  virtual void OnGap(uint64_t offset, uint64_t bytes, uint64_t ts_ns, bool snaplen) = 0;
};

struct ReassemblyStats {
  uint64_t retransmitted_bytes = 0;        // bytes seen again and dropped
  uint64_t differing_retransmissions = 0;  // overlaps whose bytes differ from the first copy
  uint64_t out_of_order_segments = 0;
  uint64_t gap_bytes = 0;
  uint64_t gaps = 0;
  uint64_t buffer_overflows = 0;  // gaps forced by the out-of-order cap
  uint64_t snaplen_bytes = 0;     // gap bytes cut by the snaplen
};

class TcpReassembler {
 public:
  // `max_buffered`: bytes of out-of-order data held at most. `reorder_window_ns`: capture time a
  // hole the peer acknowledged past may stay open before it is a gap (a capture on several queues
  // or interfaces may record an ACK before the data it acknowledges).
  explicit TcpReassembler(size_t max_buffered = 1 << 20,
                          uint64_t reorder_window_ns = kDefaultReorderWindowNs)
      : max_buffered_(max_buffered), window_ns_(reorder_window_ns) {}
  static constexpr uint64_t kDefaultReorderWindowNs = 100'000'000;  // 100 ms
  // Bytes of recently delivered data kept to compare overlapping retransmissions with.
  static constexpr size_t kHistoryBytes = 1024;

  // A segment of this direction. A SYN sets the stream's start to seq + 1 (if no data was
  // delivered yet); FIN marks the end (data after it is ignored). `missing`: payload bytes the
  // snaplen cut off after `payload` (they follow it on the wire and are a gap).
  void OnSegment(uint32_t seq, std::span<const uint8_t> payload, bool syn, bool fin, uint64_t ts_ns,
                 StreamSink* sink, bool has_ack = false, uint32_t ack = 0, uint32_t missing = 0);

  // The other direction acknowledged everything before `ack`: holes before it are gaps once the
  // reorder window has passed without their bytes.
  void OnPeerAck(uint32_t ack, uint64_t ts_ns, StreamSink* sink);
  // Every byte before stream offset `offset` is given up on: holes become gaps, buffered data
  // before it is delivered, and a gap runs up to `offset` if nothing was seen there.
  void SkipTo(uint64_t offset, uint64_t ts_ns, StreamSink* sink);
  // The stream ends (RST, FIN of both sides, idle expiry, end of capture): buffered data after a
  // hole is delivered after a gap, and bytes before a FIN that never arrived are a gap.
  void Flush(uint64_t ts_ns, StreamSink* sink);

  bool started() const { return started_; }
  bool syn_seen() const { return syn_seen_; }  // the stream began at its SYN (not mid-stream)
  bool fin_seen() const { return fin_seen_; }
  // Every byte up to the FIN was delivered (or skipped as a gap): the direction has ended.
  bool finished() const { return fin_seen_ && next_ >= fin_offset_; }
  uint64_t delivered() const { return next_; }  // stream bytes delivered or skipped as gaps
  size_t buffered_bytes() const { return buffered_bytes_; }
  const ReassemblyStats& stats() const { return stats_; }
  // The stream offset of sequence number `seq` (negative: before the first byte this stream
  // started at), or nullopt before the stream started. Valid within 2 GiB of the current point.
  std::optional<int64_t> OffsetOf(uint32_t seq) const {
    if (!started_) return std::nullopt;
    return Offset(seq);
  }

 private:
  struct Held {
    std::string data;
    bool has_ack = false;
    uint32_t ack = 0;
    uint32_t missing = 0;  // snaplen-cut bytes after `data`
    uint64_t ts_ns = 0;    // capture time of the segment
  };
  // Stream offset of sequence number `seq`, relative to the next expected byte (may be negative).
  int64_t Offset(uint32_t seq) const {
    return static_cast<int64_t>(next_) + static_cast<int32_t>(seq - next_seq_);
  }
  void Deliver(std::span<const uint8_t> data, const ChunkInfo& at, StreamSink* sink);
  void Drain(uint64_t ts_ns, StreamSink* sink);
  void GapTo(uint64_t offset, uint64_t ts_ns, StreamSink* sink, bool snaplen = false);
  void ExpireAckedHole(uint64_t ts_ns, StreamSink* sink);
  // Compares bytes seen again at stream offset `offset` with the first copy, where it is known.
  void CompareOverlap(uint64_t offset, std::span<const uint8_t> again);

  size_t max_buffered_;
  uint64_t window_ns_;
  bool started_ = false;
  bool syn_seen_ = false;
  bool fin_seen_ = false;
  uint64_t fin_offset_ = 0;
  uint64_t next_ = 0;                 // stream offset of the next byte expected
  uint32_t next_seq_ = 0;             // its sequence number
  std::map<uint64_t, Held> pending_;  // out-of-order data by stream offset
  size_t buffered_bytes_ = 0;
  // The peer acknowledged past the hole at next_ == ack_hole_at_, first at ack_hole_ts_.
  bool ack_past_hole_ = false;
  uint64_t ack_hole_at_ = 0;
  uint64_t ack_hole_ts_ = 0;
  // The last bytes delivered, ending at next_, in a ring of kHistoryBytes allocated at the first
  // delivery (the byte at stream offset o sits at o % kHistoryBytes); history_len_ of them are
  // valid (a gap clears them): the first copy, to compare a retransmission with.
  std::unique_ptr<char[]> history_;
  size_t history_len_ = 0;
  ReassemblyStats stats_;
};

}  // namespace tapkit

#endif  // TAPKIT_SIDECAR_TCP_REASSEMBLY_H_
