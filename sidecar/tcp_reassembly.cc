#include "sidecar/tcp_reassembly.h"

#include <algorithm>
#include <cstring>

namespace tapkit {

void TcpReassembler::OnSegment(uint32_t seq, std::span<const uint8_t> payload, bool syn, bool fin,
                               uint64_t ts_ns, StreamSink* sink, bool has_ack, uint32_t ack,
                               uint32_t missing) {
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
    int64_t end = off + static_cast<int64_t>(payload.size()) + missing;
    if (!fin_seen_ && end >= static_cast<int64_t>(next_)) {
      fin_seen_ = true;
      fin_offset_ = static_cast<uint64_t>(end);
    }
  }
  if (payload.empty() && missing == 0) {
    ExpireAckedHole(ts_ns, sink);
    return;
  }
  int64_t end = off + static_cast<int64_t>(payload.size()) + missing;
  if (end <= static_cast<int64_t>(next_)) {  // all seen before: a retransmission
    stats_.retransmitted_bytes += payload.size();
    CompareOverlap(static_cast<uint64_t>(std::max<int64_t>(off, 0)),
                   off < 0 ? payload.subspan(std::min<size_t>(payload.size(), -off)) : payload);
    ExpireAckedHole(ts_ns, sink);
    return;
  }
  if (off < static_cast<int64_t>(next_)) {  // overlaps what was delivered: keep the new part
    size_t skip = static_cast<size_t>(static_cast<int64_t>(next_) - off);
    size_t have = std::min(skip, payload.size());
    stats_.retransmitted_bytes += have;
    if (off >= 0) CompareOverlap(static_cast<uint64_t>(off), payload.first(have));
    if (skip >= payload.size()) {
      missing -= static_cast<uint32_t>(skip - payload.size());
      payload = {};
    } else {
      payload = payload.subspan(skip);
    }
    off = static_cast<int64_t>(next_);
  }
  if (fin_seen_ && static_cast<uint64_t>(off) >= fin_offset_) return;  // after the FIN
  if (static_cast<uint64_t>(off) == next_) {
    Deliver(payload, ChunkInfo{ts_ns, next_, has_ack, ack}, sink);
    if (missing) GapTo(next_ + missing, ts_ns, sink, /*snaplen=*/true);
    Drain(ts_ns, sink);
    ExpireAckedHole(ts_ns, sink);
    return;
  }
  // Out of order: hold it, keeping the first copy of any byte.
  ++stats_.out_of_order_segments;
  uint64_t start = static_cast<uint64_t>(off);
  auto it = pending_.find(start);
  if (it != pending_.end()) {
    size_t common = std::min(it->second.data.size(), payload.size());
    if (std::memcmp(it->second.data.data(), payload.data(), common) != 0) {
      ++stats_.differing_retransmissions;
    }
    stats_.retransmitted_bytes += common;
  }
  if (it == pending_.end() ||
      it->second.data.size() + it->second.missing < payload.size() + missing) {
    if (it != pending_.end()) buffered_bytes_ -= it->second.data.size();
    Held& h = pending_[start];
    h.data.assign(reinterpret_cast<const char*>(payload.data()), payload.size());
    h.has_ack = has_ack;
    h.ack = ack;
    h.missing = missing;
    h.ts_ns = ts_ns;
    buffered_bytes_ += payload.size();
  }
  while (buffered_bytes_ > max_buffered_ && !pending_.empty()) {
    ++stats_.buffer_overflows;
    GapTo(pending_.begin()->first, ts_ns, sink);
    Drain(ts_ns, sink);
  }
  ExpireAckedHole(ts_ns, sink);
}

void TcpReassembler::CompareOverlap(uint64_t offset, std::span<const uint8_t> again) {
  // The ring holds the bytes [next_ - history_len_, next_).
  uint64_t from = std::max(offset, next_ - history_len_);
  uint64_t to = std::min<uint64_t>(offset + again.size(), next_);
  for (uint64_t o = from; o < to; ++o) {
    if (history_[o % kHistoryBytes] != static_cast<char>(again[o - offset])) {
      ++stats_.differing_retransmissions;
      return;
    }
  }
}

void TcpReassembler::Deliver(std::span<const uint8_t> data, const ChunkInfo& at, StreamSink* sink) {
  // Only called with at.offset == next_.
  if (fin_seen_) {
    if (next_ >= fin_offset_) return;
    if (next_ + data.size() > fin_offset_) data = data.first(fin_offset_ - next_);
  }
  if (data.empty()) return;
  // Keep the last kHistoryBytes delivered in the ring, to compare a later overlapping copy with.
  if (!history_) history_ = std::make_unique<char[]>(kHistoryBytes);
  std::span<const uint8_t> tail = data.last(std::min(data.size(), kHistoryBytes));
  uint64_t at_off = next_ + (data.size() - tail.size());
  size_t pos = static_cast<size_t>(at_off % kHistoryBytes);
  size_t first = std::min(tail.size(), kHistoryBytes - pos);
  std::memcpy(history_.get() + pos, tail.data(), first);
  std::memcpy(history_.get(), tail.data() + first, tail.size() - first);
  history_len_ = std::min(kHistoryBytes, history_len_ + data.size());
  next_ += data.size();
  next_seq_ += static_cast<uint32_t>(data.size());
  sink->OnData(data, at);
}

void TcpReassembler::Drain(uint64_t ts_ns, StreamSink* sink) {
  (void)ts_ns;  // each held segment is delivered with its own capture time
  while (!pending_.empty()) {
    auto it = pending_.begin();
    uint64_t start = it->first;
    if (start > next_) return;
    Held h = std::move(it->second);
    pending_.erase(it);
    buffered_bytes_ -= h.data.size();
    uint64_t end = start + h.data.size();
    size_t skip = static_cast<size_t>(std::min<uint64_t>(next_ - start, h.data.size()));
    if (skip > 0) {
      stats_.retransmitted_bytes += skip;
      CompareOverlap(
          start, std::span<const uint8_t>(reinterpret_cast<const uint8_t*>(h.data.data()), skip));
    }
    if (end > next_) {
      Deliver(std::span<const uint8_t>(reinterpret_cast<const uint8_t*>(h.data.data()) + skip,
                                       h.data.size() - skip),
              ChunkInfo{h.ts_ns, next_, h.has_ack, h.ack}, sink);
    }
    if (h.missing && end + h.missing > next_) GapTo(end + h.missing, h.ts_ns, sink, true);
  }
}

void TcpReassembler::GapTo(uint64_t offset, uint64_t ts_ns, StreamSink* sink, bool snaplen) {
  if (offset <= next_) return;
  if (fin_seen_ && offset > fin_offset_) offset = std::max(next_, fin_offset_);
  if (offset <= next_) return;
  uint64_t bytes = offset - next_;
  uint64_t at = next_;
  ++stats_.gaps;
  stats_.gap_bytes += bytes;
  if (snaplen) stats_.snaplen_bytes += bytes;
  next_ = offset;
  next_seq_ += static_cast<uint32_t>(bytes);
  history_len_ = 0;
  sink->OnGap(at, bytes, ts_ns, snaplen);
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
      // before the data it acknowledges: give the hole the reorder window to fill.
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
  if (ts_ns < ack_hole_ts_ + window_ns_) return;
  ack_past_hole_ = false;
  GapTo(pending_.begin()->first, ts_ns, sink);
  Drain(ts_ns, sink);
}

void TcpReassembler::SkipTo(uint64_t offset, uint64_t ts_ns, StreamSink* sink) {
  if (!started_) return;
  while (next_ < offset) {
    uint64_t before = next_;
    if (!pending_.empty() && pending_.begin()->first < offset) {
      GapTo(pending_.begin()->first, ts_ns, sink);
      Drain(ts_ns, sink);
    } else {
      GapTo(offset, ts_ns, sink);
    }
    if (next_ == before) break;  // the FIN ends the stream before `offset`
  }
  Drain(ts_ns, sink);
}

void TcpReassembler::Flush(uint64_t ts_ns, StreamSink* sink) {
  while (!pending_.empty()) {
    uint64_t before = next_;
    size_t held = pending_.size();
    GapTo(pending_.begin()->first, ts_ns, sink);
    Drain(ts_ns, sink);
    if (next_ == before && pending_.size() == held) {  // data after the FIN: never delivered
      for (auto& [off, h] : pending_) buffered_bytes_ -= h.data.size();
      pending_.clear();
    }
  }
  // The FIN's sequence number proves every byte before it was sent: those never seen are lost.
  if (fin_seen_ && next_ < fin_offset_) GapTo(fin_offset_, ts_ns, sink);
}

}  // namespace tapkit
