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

Bytes TlsClientHello(const std::string& name) {
  Bytes ext = {0, 0};  // type server_name
  Put16(ext, static_cast<uint16_t>(name.size() + 5));
  Put16(ext, static_cast<uint16_t>(name.size() + 3));
  ext.push_back(0);  // host_name
  Put16(ext, static_cast<uint16_t>(name.size()));
  ext.insert(ext.end(), name.begin(), name.end());
  Bytes body = {3, 3};
  body.resize(2 + 32, 7);  // legacy_version, random
  body.push_back(0);       // session id
  Put16(body, 2);          // cipher suites
  Put16(body, 0x1301);
  body.push_back(1);  // compression
  body.push_back(0);
  Put16(body, static_cast<uint16_t>(ext.size()));
  body.insert(body.end(), ext.begin(), ext.end());
  Bytes hs = {1, 0};  // client_hello, 24-bit length
  Put16(hs, static_cast<uint16_t>(body.size()));
  hs.insert(hs.end(), body.begin(), body.end());
  Bytes rec = {0x16, 3, 1};  // handshake record
  Put16(rec, static_cast<uint16_t>(hs.size()));
  rec.insert(rec.end(), hs.begin(), hs.end());
  return rec;
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
