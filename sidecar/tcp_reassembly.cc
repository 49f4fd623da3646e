#include "sidecar/tcp_reassembly.h"

#include <algorithm>

namespace tapkit {

void TcpReassembler::OnSegment(uint32_t seq, std::span<const uint8_t> payload, bool syn, bool fin,
                               uint64_t ts_ns, StreamSink* sink) {
  if (syn) {
    // The SYN takes one sequence number; data may ride on it (TCP Fast Open, zeek's payload-syn).
    if (!started_ || (next_ == 0 && pending_.empty())) {
      started_ = true;
      syn_seen_ = true;
      next_ = 0;
      next_seq_ = seq + 1;
    }
    seq += 1;
  }
  if (!started_) {
    if (payload.empty() && !fin) return;  // a bare ACK tells nothing about where data starts
    started_ = true;  // picked up mid-stream: the first segment seen starts the stream
    next_ = 0;
    next_seq_ = seq;
  }
  int64_t off = Offset(seq);
  if (fin) {
    int64_t end = off + static_cast<int64_t>(payload.size());
    if (!fin_seen_ && end >= static_cast<int64_t>(next_)) {
      fin_seen_ = true;
      fin_offset_ = static_cast<uint64_t>(end);
    }
  }
  if (payload.empty()) {
    ExpireAckedHole(ts_ns, sink);
    return;
  }
  int64_t end = off + static_cast<int64_t>(payload.size());
  if (end <= static_cast<int64_t>(next_)) {  // all seen before: a retransmission
    stats_.retransmitted_bytes += payload.size();
    return;
  }
  if (off < static_cast<int64_t>(next_)) {  // overlaps what was delivered: keep the new part
    size_t skip = static_cast<size_t>(static_cast<int64_t>(next_) - off);
    stats_.retransmitted_bytes += skip;
    payload = payload.subspan(skip);
    off = static_cast<int64_t>(next_);
  }
  if (fin_seen_ && static_cast<uint64_t>(off) >= fin_offset_) return;  // after the FIN
  if (static_cast<uint64_t>(off) == next_) {
    Deliver(next_, payload, ts_ns, sink);
    Drain(ts_ns, sink);
    return;
  }
  // Out of order: hold it, keeping the first copy of any byte.
  ++stats_.out_of_order_segments;
  uint64_t start = static_cast<uint64_t>(off);
  auto it = pending_.find(start);
  if (it == pending_.end() || it->second.size() < payload.size()) {
    if (it != pending_.end()) buffered_bytes_ -= it->second.size();
    pending_[start].assign(reinterpret_cast<const char*>(payload.data()), payload.size());
    buffered_bytes_ += payload.size();
  }
  while (buffered_bytes_ > max_buffered_ && !pending_.empty()) {
    ++stats_.buffer_overflows;
    GapTo(pending_.begin()->first, ts_ns, sink);
    Drain(ts_ns, sink);
  }
  ExpireAckedHole(ts_ns, sink);
}

void TcpReassembler::Deliver(uint64_t offset, std::span<const uint8_t> data, uint64_t ts_ns,
                             StreamSink* sink) {
  // Only called with offset == next_.
  (void)offset;
  if (fin_seen_) {
    if (next_ >= fin_offset_) return;
    if (next_ + data.size() > fin_offset_) data = data.first(fin_offset_ - next_);
  }
  if (data.empty()) return;
  next_ += data.size();
  next_seq_ += static_cast<uint32_t>(data.size());
  sink->OnData(data, ts_ns);
}

void TcpReassembler::Drain(uint64_t ts_ns, StreamSink* sink) {
  while (!pending_.empty()) {
    auto it = pending_.begin();
    uint64_t start = it->first;
    if (start > next_) return;
    std::string data = std::move(it->second);
    pending_.erase(it);
    buffered_bytes_ -= data.size();
    uint64_t end = start + data.size();
    if (end <= next_) {
      stats_.retransmitted_bytes += data.size();
      continue;
    }
    size_t skip = static_cast<size_t>(next_ - start);
    stats_.retransmitted_bytes += skip;
    Deliver(next_,
            std::span<const uint8_t>(reinterpret_cast<const uint8_t*>(data.data()) + skip,
                                     data.size() - skip),
            ts_ns, sink);
  }
}

void TcpReassembler::GapTo(uint64_t offset, uint64_t ts_ns, StreamSink* sink) {
  if (offset <= next_) return;
  uint64_t bytes = offset - next_;
  ++stats_.gaps;
  stats_.gap_bytes += bytes;
  next_ = offset;
  next_seq_ += static_cast<uint32_t>(bytes);
  sink->OnGap(bytes, ts_ns);
}

void TcpReassembler::OnPeerAck(uint32_t ack, uint64_t ts_ns, StreamSink* sink) {
  if (!started_ || pending_.empty()) return;
  int64_t acked = Offset(ack);
  // The peer has every byte before `acked`; if we hold data there after a hole, the hole's bytes
  // crossed the wire but not (yet) our capture.
  uint64_t first = pending_.begin()->first;
  if (acked > static_cast<int64_t>(next_) && first < static_cast<uint64_t>(acked)) {
    if (!ack_past_hole_ || ack_hole_at_ != next_) {
      // A capture on several queues or interfaces (tcpdump -i any) can record the ACK a little
      // before the data it acknowledges: give the hole kAckGraceNs to fill.
      ack_past_hole_ = true;
      ack_hole_at_ = next_;
      ack_hole_ts_ = ts_ns;
      return;
    }
  }
  ExpireAckedHole(ts_ns, sink);
}

void TcpReassembler::ExpireAckedHole(uint64_t ts_ns, StreamSink* sink) {
  if (!ack_past_hole_) return;
  if (pending_.empty() || ack_hole_at_ != next_) {  // filled meanwhile
    ack_past_hole_ = false;
    return;
  }
  if (ts_ns < ack_hole_ts_ + kAckGraceNs) return;
  ack_past_hole_ = false;
  GapTo(pending_.begin()->first, ts_ns, sink);
  Drain(ts_ns, sink);
}

void TcpReassembler::Flush(uint64_t ts_ns, StreamSink* sink) {
  while (!pending_.empty()) {
    GapTo(pending_.begin()->first, ts_ns, sink);
    Drain(ts_ns, sink);
  }
}

}  // namespace tapkit
