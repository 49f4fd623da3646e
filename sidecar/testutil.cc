#include "sidecar/testutil.h"

#include <algorithm>

#include "sidecar/packet_source.h"

namespace tapkit::testing {

EngineRun RunEngine(const std::string& path, const EngineOptions& options, const std::string& bpf) {
  EngineRun r;
  CaptureEngine engine(options, [&r](Exchange&& x) { r.exchanges.push_back(std::move(x)); });
  auto source = OpenCaptureFile(path, bpf);
  if (!source.ok()) {
    r.status = source.status();
    return r;
  }
  Frame f;
  uint64_t last = 0;
  while ((*source)->Next(&f)) {
    engine.OnPacket(f.link_type, f.ts_ns, f.data, f.wire_length);
    last = std::max(last, f.ts_ns);
  }
  engine.Finish(last);
  r.status = (*source)->status();
  r.counters = engine.Counters();
  r.drops = engine.Drops();
  return r;
}

void Put16(Bytes& b, uint16_t v) {
  b.push_back(static_cast<uint8_t>(v >> 8));
  b.push_back(static_cast<uint8_t>(v & 0xff));
}

void Put32(Bytes& b, uint32_t v) {
  Put16(b, static_cast<uint16_t>(v >> 16));
  Put16(b, static_cast<uint16_t>(v & 0xffff));
}

Bytes Ipv4Tcp(std::array<uint8_t, 4> src, std::array<uint8_t, 4> dst, uint16_t sport,
              uint16_t dport, uint32_t seq, uint32_t ack, uint8_t flags, const std::string& payload,
              uint16_t total_override, uint16_t frag) {
  Bytes b;
  uint16_t total = static_cast<uint16_t>(20 + 20 + payload.size());
  b.push_back(0x45);
  b.push_back(0);
  Put16(b, total_override == 0xffff ? total : total_override);
  Put16(b, 0x1234);  // id
  Put16(b, frag);
  b.push_back(64);
  b.push_back(6);
  Put16(b, 0);  // checksum: not checked
  b.insert(b.end(), src.begin(), src.end());
  b.insert(b.end(), dst.begin(), dst.end());
  Put16(b, sport);
  Put16(b, dport);
  Put32(b, seq);
  Put32(b, ack);
  b.push_back(5 << 4);
  b.push_back(flags);
  Put16(b, 65535);
  Put16(b, 0);
  Put16(b, 0);
  b.insert(b.end(), payload.begin(), payload.end());
  return b;
}

Bytes Ethernet(const Bytes& ip, std::vector<uint16_t> vlans) {
  Bytes b(12, 0xaa);
  for (uint16_t tpid : vlans) {
    Put16(b, tpid);
    Put16(b, 42);  // TCI
  }
  Put16(b, 0x0800);
  b.insert(b.end(), ip.begin(), ip.end());
  while (b.size() < 60) b.push_back(0);  // Ethernet minimum frame: padding after the IP packet
  return b;
}

}  // namespace tapkit::testing
