#include "format/pcap_export.h"

#include <pcap/pcap.h>

#include <algorithm>
#include <cstdio>
#include <cstring>
#include <map>
#include <tuple>
#include <vector>

#include "absl/strings/ascii.h"
#include "absl/strings/match.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"

namespace tapkit {
namespace {

absl::string_view AV(std::string_view s) { return absl::string_view(s.data(), s.size()); }

std::string_view Version(HttpVersion v) {
  return v == HttpVersion::kHttp10 ? "HTTP/1.0" : "HTTP/1.1";
}

// True when the last coding of a Transfer-Encoding field is chunked (RFC 9112 section 6.1).
bool Chunked(const HeaderListView& h) {
  bool chunked = false;
  for (const HeaderListView::Field& f : h) {
    if (!absl::EqualsIgnoreCase(AV(f.name), "transfer-encoding")) continue;
    std::vector<absl::string_view> codings = absl::StrSplit(AV(f.value), ',');
    chunked = absl::EqualsIgnoreCase(absl::StripAsciiWhitespace(codings.back()), "chunked");
  }
  return chunked;
}

// How a serialized message ends on its connection.
struct Framing {
  // Bytes of a cut message that were not stored, left out of the stream as a hole in the
  // sequence space, as a capture that lost segments shows it: a reader sees a short message
  // (a gap) and finds the next message after the hole. With a recorded Content-Length the hole
  // is the rest of it; otherwise (chunked, close-delimited, header section cut) the unstored
  // part of the recorded length, at least one byte.
  uint64_t hole = 0;
};

// Header fields, blank line and body after a start line already in `out`. The recorded framing
// is kept: a cut body (fewer bytes stored than sent, or marked truncated) keeps its recorded
// Content-Length, and a cut chunked body gets no last chunk, so the reader sees a short message.
Framing AppendMessage(const HeaderListView& headers, const BodyView& body,
                      const HeaderListView& trailers, std::string* out) {
  std::string_view data = body.present() ? body.data() : std::string_view();
  const bool cut = body.present() && (body.stored() < body.length() || body.truncated());
  const bool chunked = Chunked(headers);
  uint64_t content_length = 0;
  bool has_length = false;
  for (const HeaderListView::Field& f : headers) {
    if (absl::EqualsIgnoreCase(AV(f.name), "content-length")) {
      has_length = absl::SimpleAtoi(absl::StripAsciiWhitespace(AV(f.value)), &content_length);
    }
    absl::StrAppend(out, AV(f.name), ": ", AV(f.value), "\r\n");
  }
  out->append("\r\n");
  Framing framing;
  if (chunked) {
    if (!data.empty()) absl::StrAppend(out, absl::Hex(data.size()), "\r\n", AV(data), "\r\n");
    if (cut) {
      framing.hole =
          std::max<uint64_t>(body.length() > data.size() ? body.length() - data.size() : 0, 1);
      return framing;
    }
    out->append("0\r\n");
    for (const HeaderListView::Field& f : trailers) {
      absl::StrAppend(out, AV(f.name), ": ", AV(f.value), "\r\n");
    }
    out->append("\r\n");
  } else {
    out->append(data);
    if (cut) {
      if (has_length && content_length > data.size()) {
        framing.hole = content_length - data.size();
      } else {
        framing.hole =
            std::max<uint64_t>(body.length() > data.size() ? body.length() - data.size() : 0, 1);
      }
    }
  }
  return framing;
}

// A message as HTTP/1 bytes and how it ends (SerializeRequest, SerializeResponses).
struct FramedMessage {
  std::string bytes;
  Framing framing;
};

FramedMessage FramedRequest(const ExchangeView& x) {
  FramedMessage m;
  if (!x.has_request()) return m;
  RequestView q = x.request();
  m.bytes =
      absl::StrCat(AV(q.method()), " ", AV(q.path()), " ", AV(Version(q.version())), "\r\n");
  m.framing = AppendMessage(q.headers(), q.body(), q.trailers(), &m.bytes);
  return m;
}

std::vector<FramedMessage> FramedResponses(const ExchangeView& x) {
  std::vector<FramedMessage> out;
  for (size_t i = 0; i < x.interim_count(); ++i) {
    InterimView v = x.interim(i);
    FramedMessage m;
    m.bytes = absl::StrCat("HTTP/1.1 ", v.status(), " ", AV(v.reason()), "\r\n");
    m.framing = AppendMessage(v.headers(), BodyView(), HeaderListView(), &m.bytes);
    out.push_back(std::move(m));
  }
  if (x.has_response()) {
    ResponseView s = x.response();
    FramedMessage m;
    m.bytes =
        absl::StrCat(AV(Version(s.version())), " ", s.status(), " ", AV(s.reason()), "\r\n");
    m.framing = AppendMessage(s.headers(), s.body(), s.trailers(), &m.bytes);
    out.push_back(std::move(m));
  }
  return out;
}

// Internet checksum (RFC 1071) over `parts`, one's complement sum of 16-bit big-endian words.
uint16_t Checksum(std::initializer_list<std::string_view> parts) {
  uint32_t sum = 0;
  bool odd = false;
  uint8_t carry = 0;
  for (std::string_view p : parts) {
    for (unsigned char c : p) {
      if (odd) {
        sum += (static_cast<uint32_t>(carry) << 8) | c;
      } else {
        carry = c;
      }
      odd = !odd;
    }
  }
  if (odd) sum += static_cast<uint32_t>(carry) << 8;
  while (sum >> 16) sum = (sum & 0xffff) + (sum >> 16);
  return static_cast<uint16_t>(~sum);
}

void Put16(std::string* s, size_t at, uint16_t v) {
  (*s)[at] = static_cast<char>(v >> 8);
  (*s)[at + 1] = static_cast<char>(v & 0xff);
}
void Put32(std::string* s, size_t at, uint32_t v) {
  Put16(s, at, static_cast<uint16_t>(v >> 16));
  Put16(s, at + 2, static_cast<uint16_t>(v & 0xffff));
}

constexpr uint8_t kFin = 0x01, kSyn = 0x02, kPsh = 0x08, kAck = 0x10;

// One direction of a synthesized connection: its address, port and next sequence number.
struct Side {
  IpAddress ip;
  uint16_t port = 0;
  uint32_t seq = 0;  // the next byte's sequence number
  uint16_t ip_id = 0;
  uint64_t last_ns = 0;  // the time of the latest segment
  // Recent segments as (time, sequence number after them), in time order, and the sequence
  // number before the oldest one kept: what the peer can acknowledge at a given time.
  std::vector<std::pair<uint64_t, uint32_t>> sent;
  uint32_t floor = 0;

  // The acknowledgement number the peer sends at `ns`: every byte this side sent by then.
  uint32_t AckAt(uint64_t ns) const {
    for (auto it = sent.rbegin(); it != sent.rend(); ++it) {
      if (it->first <= ns) return it->second;
    }
    return floor;
  }
  // Forgets segments that no lookup at `ns` or later needs (all but the last before it).
  void Forget(uint64_t ns) {
    size_t keep = 0;
    while (keep + 1 < sent.size() && sent[keep + 1].first <= ns) ++keep;
    if (keep > 0) {
      floor = sent[keep - 1].second;
      sent.erase(sent.begin(), sent.begin() + static_cast<std::ptrdiff_t>(keep));
    }
  }
};

struct Connection {
  Side client, server;
  uint64_t last_ns = 0;  // the latest byte sent, for the closing FINs
};

// Writes packets through a pcap_dumper_t whose FILE appends to a caller's string (fopencookie).
class PcapOutput final : public ExchangeOutput {
 public:
  ~PcapOutput() override {
    std::string discard;
    target_ = &discard;
    if (dumper_) pcap_dump_close(dumper_);  // closes its FILE too
    if (file_) std::fclose(file_);
    if (pcap_) pcap_close(pcap_);
  }

  absl::Status Init() {
    pcap_ = pcap_open_dead_with_tstamp_precision(DLT_RAW, kSnaplen, PCAP_TSTAMP_PRECISION_NANO);
    if (!pcap_) return absl::InternalError("pcap output: libpcap cannot make a writer");
    cookie_io_functions_t io{};
    io.write = [](void* cookie, const char* buf, size_t size) -> ssize_t {
      static_cast<PcapOutput*>(cookie)->target_->append(buf, size);
      return static_cast<ssize_t>(size);
    };
    file_ = fopencookie(this, "w", io);
    if (!file_) return absl::InternalError("pcap output: cannot open its memory stream");
    return absl::OkStatus();
  }

  bool NeedsBodies() const override { return true; }

  void Begin(const OutputContext&, std::string* out) override {
    target_ = out;
    dumper_ = pcap_dump_fopen(pcap_, file_);  // writes the file header
    if (!dumper_) std::fclose(file_);
    file_ = nullptr;
    Flush();
  }

  void Add(const ExchangeView& x, std::string* out) override {
    if (!dumper_) return;
    target_ = out;
    const uint64_t t0 = x.sort_key_ns();
    if (t0 < latest_start_ns_) {  // late: see the header
      ++late_;
      return;
    }
    latest_start_ns_ = t0;
    Endpoint src = x.source(), dst = x.destination();
    if ((src.ip.family != 4 && src.ip.family != 6) || src.ip.family != dst.ip.family) return;
    auto key = std::make_tuple(x.capture_point(), src.ip.bytes, src.ip.family, src.port,
                               dst.ip.bytes, dst.port);
    auto [it, fresh] = connections_.try_emplace(key);
    Connection& c = it->second;
    if (fresh) {
      order_.push_back(&c);
      c.client = {src.ip, src.port, 0x10000000u + static_cast<uint32_t>(order_.size()) * 0x1000u};
      c.server = {dst.ip, dst.port, 0x80000000u + static_cast<uint32_t>(order_.size()) * 0x1000u};
      uint64_t t = t0 >= 3000 ? t0 - 3000 : 0;
      Packet(c.client, c.server, kSyn, 0, "", t, true);
      c.client.floor = ++c.client.seq;
      Packet(c.server, c.client, kSyn | kAck, c.client.seq, "", t + 1000, true);
      c.server.floor = ++c.server.seq;
      Packet(c.client, c.server, kAck, c.server.seq, "", t + 2000, false);
      c.client.last_ns = c.server.last_ns = t + 2000;
    }
    // The exchange's messages cut into segments with their times, each direction's in byte order,
    // then sent in time order, so that every acknowledgement covers what the peer had sent by
    // then (a request body sent after its 100 Continue acknowledges it, and not the reverse).
    std::vector<FramedMessage> messages = FramedResponses(x);
    FramedMessage request = FramedRequest(x);
    std::vector<Segment> segments;
    if (x.has_request()) {
      Cut(c.client, true, request, t0, t0 + x.request_end_ns(), &segments);
    }
    for (size_t i = 0; i < x.interim_count(); ++i) {
      uint64_t at = t0 + x.interim(i).offset_ns();
      Cut(c.server, false, messages[i], at, at, &segments);
    }
    if (x.has_response()) {
      Cut(c.server, false, messages.back(), t0 + x.response_start_ns(), t0 + x.response_end_ns(),
          &segments);
    } else if (x.has_request() && x.completion() == Completion::kGap) {
      // The response was lost in a gap: a hole in the server's stream where it was (its size
      // is not recorded; one byte), so the next response still answers the next request.
      uint64_t at = std::max(t0 + x.request_end_ns(), c.server.last_ns);
      segments.push_back({at, false, true, std::string_view(), 1});
    }
    std::stable_sort(segments.begin(), segments.end(),
                     [](const Segment& a, const Segment& b) { return a.ns < b.ns; });
    for (const Segment& g : segments) {
      Side& from = g.from_client ? c.client : c.server;
      Side& to = g.from_client ? c.server : c.client;
      if (g.bytes.empty()) {  // only a hole
        from.seq += static_cast<uint32_t>(g.hole);
        from.sent.emplace_back(g.ns, from.seq);  // the peer got it: the capture lost it
        continue;
      }
      Packet(from, to, g.last ? (kAck | kPsh) : kAck, to.AckAt(g.ns), g.bytes, g.ns, false);
      from.seq += static_cast<uint32_t>(g.bytes.size() + g.hole);
      from.sent.emplace_back(g.ns, from.seq);
    }
    c.last_ns = std::max({c.last_ns, c.client.last_ns, c.server.last_ns});
    end_ns_ = std::max(end_ns_, c.last_ns);
    // Exchanges come in sort-key order, so no later packet is before this exchange's handshake.
    const uint64_t watermark = t0 >= 3000 ? t0 - 3000 : 0;
    c.client.Forget(watermark);
    c.server.Forget(watermark);
    Release(watermark);
    Flush();
  }

  std::vector<std::string> Notices() const override {
    if (late_ == 0) return {};
    return {absl::StrCat("pcap: left out ", late_, late_ == 1 ? " exchange" : " exchanges",
                         " that came after the reorder window (their packets would go back "
                         "in time); a larger --reorder-window keeps them")};
  }

  void Finish(std::string* out) override {
    if (!dumper_) return;
    target_ = out;
    // The capture does not say when connections closed: all close after the last byte of the
    // output, which keeps the file in time order.
    for (Connection* c : order_) {
      Packet(c->client, c->server, kFin | kAck, c->server.seq, "", end_ns_ + 1000, false);
      ++c->client.seq;
      Packet(c->server, c->client, kFin | kAck, c->client.seq, "", end_ns_ + 2000, false);
      ++c->server.seq;
      Packet(c->client, c->server, kAck, c->server.seq, "", end_ns_ + 3000, false);
    }
    order_.clear();
    connections_.clear();
    Release(UINT64_MAX);
    Flush();
  }

 private:
  static constexpr int kSnaplen = 262144;

  void Flush() { pcap_dump_flush(dumper_); }

  struct Segment {
    uint64_t ns;
    bool from_client;
    bool last;  // a message's last segment (PSH)
    std::string_view bytes;
    uint64_t hole;  // bytes left out after this segment (the message's hole, on its last)
  };

  // `bytes` from `from` in MSS-sized segments spread evenly over [first_ns, last_ns], never
  // before that side's previous segment (its bytes are in time order).
  static void Cut(Side& from, bool from_client, const FramedMessage& m, uint64_t first_ns,
                  uint64_t last_ns, std::vector<Segment>* out) {
    std::string_view bytes = m.bytes;
    const size_t mss = from.ip.family == 4 ? 1460 : 1440;
    const size_t n = bytes.empty() ? 0 : (bytes.size() + mss - 1) / mss;
    first_ns = std::max(first_ns, from.last_ns);
    last_ns = std::max(last_ns, first_ns);
    for (size_t i = 0; i < n; ++i) {
      uint64_t t = n == 1 ? first_ns : first_ns + (last_ns - first_ns) * i / (n - 1);
      const bool last = i + 1 == n;
      out->push_back({t, from_client, last, bytes.substr(i * mss, mss), last ? m.framing.hole : 0});
    }
    if (n) from.last_ns = last_ns;
  }

  // One IPv4 or IPv6 packet with a TCP segment from `from` to `to`.
  void Packet(Side& from, const Side& to, uint8_t flags, uint32_t ack, std::string_view payload,
              uint64_t ns, bool mss_option) {
    const bool v4 = from.ip.family == 4;
    const size_t tcp_len = (mss_option ? 24 : 20) + payload.size();
    std::string tcp(tcp_len - payload.size(), '\0');
    Put16(&tcp, 0, from.port);
    Put16(&tcp, 2, to.port);
    Put32(&tcp, 4, from.seq);
    Put32(&tcp, 8, (flags & kAck) ? ack : 0);
    tcp[12] = static_cast<char>((mss_option ? 6 : 5) << 4);
    tcp[13] = static_cast<char>(flags);
    Put16(&tcp, 14, 65535);  // window
    if (mss_option) {
      tcp[20] = 2;  // kind: maximum segment size (RFC 9293 section 3.2)
      tcp[21] = 4;
      Put16(&tcp, 22, v4 ? 1460 : 1440);
    }
    std::string_view src(reinterpret_cast<const char*>(from.ip.bytes.data()), from.ip.size());
    std::string_view dst(reinterpret_cast<const char*>(to.ip.bytes.data()), to.ip.size());
    std::string pseudo;
    if (v4) {
      pseudo = std::string(4, '\0');  // zero, protocol, TCP length
      pseudo[1] = 6;
      Put16(&pseudo, 2, static_cast<uint16_t>(tcp_len));
    } else {
      pseudo = std::string(8, '\0');  // upper-layer length (32 bits), zeros, next header
      Put32(&pseudo, 0, static_cast<uint32_t>(tcp_len));
      pseudo[7] = 6;
    }
    Put16(&tcp, 16, Checksum({src, dst, pseudo, tcp, payload}));
    std::string ip;
    if (v4) {
      ip = std::string(20, '\0');
      ip[0] = 0x45;
      Put16(&ip, 2, static_cast<uint16_t>(20 + tcp_len));
      Put16(&ip, 4, from.ip_id++);
      Put16(&ip, 6, 0x4000);  // don't fragment
      ip[8] = 64;             // TTL
      ip[9] = 6;              // TCP
      std::memcpy(&ip[12], src.data(), 4);
      std::memcpy(&ip[16], dst.data(), 4);
      Put16(&ip, 10, Checksum({ip}));
    } else {
      ip = std::string(40, '\0');
      ip[0] = 0x60;
      Put16(&ip, 4, static_cast<uint16_t>(tcp_len));
      ip[6] = 6;   // next header: TCP
      ip[7] = 64;  // hop limit
      std::memcpy(&ip[8], src.data(), 16);
      std::memcpy(&ip[24], dst.data(), 16);
    }
    std::string frame = ip + tcp;
    frame.append(payload);
    pending_.push_back({ns, next_++, std::move(frame)});
    std::push_heap(pending_.begin(), pending_.end(), Later);
  }

  // Writes the held packets stamped before `before_ns`, earliest first (equal times in the order
  // they were made).
  void Release(uint64_t before_ns) {
    while (!pending_.empty() && pending_.front().ns < before_ns) {
      std::pop_heap(pending_.begin(), pending_.end(), Later);
      const Pending& p = pending_.back();
      pcap_pkthdr h{};
      h.ts.tv_sec = static_cast<time_t>(p.ns / 1'000'000'000);
      h.ts.tv_usec = static_cast<suseconds_t>(p.ns % 1'000'000'000);  // nano precision
      h.caplen = h.len = static_cast<bpf_u_int32>(p.frame.size());
      pcap_dump(reinterpret_cast<u_char*>(dumper_), &h,
                reinterpret_cast<const u_char*>(p.frame.data()));
      pending_.pop_back();
    }
  }

  // A packet made but not yet written: held until no later exchange can come before it.
  struct Pending {
    uint64_t ns;
    uint64_t order;
    std::string frame;
  };
  static bool Later(const Pending& a, const Pending& b) {
    return a.ns != b.ns ? a.ns > b.ns : a.order > b.order;
  }
  std::vector<Pending> pending_;  // a min-heap by (ns, order)
  uint64_t next_ = 0;
  uint64_t end_ns_ = 0;  // the latest byte of any exchange
  uint64_t latest_start_ns_ = 0;  // the latest sort key added
  uint64_t late_ = 0;             // exchanges left out for starting before it

  pcap_t* pcap_ = nullptr;
  FILE* file_ = nullptr;
  pcap_dumper_t* dumper_ = nullptr;
  std::string* target_ = nullptr;
  using Key = std::tuple<uint32_t, std::array<uint8_t, 16>, uint8_t, uint16_t,
                         std::array<uint8_t, 16>, uint16_t>;
  std::map<Key, Connection> connections_;
  std::vector<Connection*> order_;  // connections in the order they opened
};

}  // namespace

std::string SerializeRequest(const ExchangeView& x) { return FramedRequest(x).bytes; }

std::vector<std::string> SerializeResponses(const ExchangeView& x) {
  std::vector<std::string> out;
  for (FramedMessage& m : FramedResponses(x)) out.push_back(std::move(m.bytes));
  return out;
}

absl::StatusOr<std::unique_ptr<ExchangeOutput>> MakePcapOutput() {
  auto out = std::make_unique<PcapOutput>();
  absl::Status s = out->Init();
  if (!s.ok()) return s;
  return std::unique_ptr<ExchangeOutput>(std::move(out));
}

}  // namespace tapkit
