// capture_bench: the capture engine alone (decode, TCP reassembly, HTTP/1 parsing and pairing),
// in packets/s and exchanges/s, on in-memory frames built from the synthetic service mix: each
// exchange on its own keep-alive connection slot, requests and responses cut into 1448-byte
// segments with a bare ACK after each, as a capture of such traffic on Ethernet looks.
#include <benchmark/benchmark.h>

#include <string>
#include <vector>

#include "absl/strings/str_cat.h"
#include "bench/synth.h"
#include "sidecar/engine.h"

namespace tapkit {
namespace {

struct Packet {
  std::string bytes;
  uint64_t ts;
};

void Put16(std::string& b, uint16_t v) {
  b.push_back(static_cast<char>(v >> 8));
  b.push_back(static_cast<char>(v));
}
void Put32(std::string& b, uint32_t v) {
  Put16(b, static_cast<uint16_t>(v >> 16));
  Put16(b, static_cast<uint16_t>(v));
}

std::string Frame(uint32_t src, uint32_t dst, uint16_t sp, uint16_t dp, uint32_t seq, uint32_t ack,
                  uint8_t flags, std::string_view payload) {
  std::string b(12, '\x02');
  Put16(b, 0x0800);
  b.push_back(0x45);
  b.push_back(0);
  Put16(b, static_cast<uint16_t>(40 + payload.size()));
  Put32(b, 0x40000000);
  b.push_back(64);
  b.push_back(6);
  Put16(b, 0);
  Put32(b, src);
  Put32(b, dst);
  Put16(b, sp);
  Put16(b, dp);
  Put32(b, seq);
  Put32(b, ack);
  b.push_back(0x50);
  b.push_back(static_cast<char>(flags));
  Put16(b, 65535);
  Put32(b, 0);
  b.append(payload);
  return b;
}

std::string Wire(const Request& q) {
  std::string s = absl::StrCat(q.method, " ", q.path, " HTTP/1.1\r\n");
  for (const Header& h : q.headers) absl::StrAppend(&s, h.name, ": ", h.value, "\r\n");
  return s + "\r\n" + q.body.data;
}
std::string Wire(const Response& r) {
  std::string s = absl::StrCat("HTTP/1.1 ", r.status, " ", r.reason, "\r\n");
  for (const Header& h : r.headers) absl::StrAppend(&s, h.name, ": ", h.value, "\r\n");
  return s + "\r\n" + r.body.data;
}

const std::vector<Packet>& Packets(size_t* exchanges) {
  static size_t n = 0;
  static const std::vector<Packet>* packets = [] {
    auto* out = new std::vector<Packet>;
    SyntheticTraffic t(9);
    constexpr int kConns = 64;
    uint32_t seq_c[kConns], seq_s[kConns];
    for (int c = 0; c < kConns; ++c) seq_c[c] = seq_s[c] = 1000u * c;
    uint64_t ts = 1'700'000'000'000'000'000ull;
    for (int i = 0; i < 20000; ++i, ++n) {
      Exchange x = t.Next();
      int c = i % kConns;
      uint32_t client = 0x0a000001 + c, server = 0x0a0000fe;
      uint16_t cport = static_cast<uint16_t>(40000 + c);
      auto send = [&](bool from_client, const std::string& msg) {
        for (size_t at = 0; at < msg.size(); at += 1448) {
          std::string_view part = std::string_view(msg).substr(at, 1448);
          uint32_t& seq = from_client ? seq_c[c] : seq_s[c];
          uint32_t& peer = from_client ? seq_s[c] : seq_c[c];
          out->push_back({from_client ? Frame(client, server, cport, 8080, seq, peer, 0x18, part)
                                      : Frame(server, client, 8080, cport, seq, peer, 0x18, part),
                          ts += 20'000});
          seq += static_cast<uint32_t>(part.size());
          out->push_back({from_client ? Frame(server, client, 8080, cport, peer, seq, 0x10, "")
                                      : Frame(client, server, cport, 8080, peer, seq, 0x10, ""),
                          ts += 5'000});
        }
      };
      send(true, Wire(*x.request));
      send(false, Wire(*x.response));
    }
    return out;
  }();
  *exchanges = n;
  return *packets;
}

void BM_CaptureEngine(benchmark::State& state) {
  size_t exchanges = 0;
  const std::vector<Packet>& packets = Packets(&exchanges);
  uint64_t bytes = 0, got = 0;
  for (const Packet& p : packets) bytes += p.bytes.size();
  for (auto _ : state) {
    got = 0;
    CaptureEngine engine(EngineOptions{}, [&got](Exchange&&) { ++got; });
    for (const Packet& p : packets) {
      engine.OnPacket(1, p.ts,
                      std::span<const uint8_t>(reinterpret_cast<const uint8_t*>(p.bytes.data()),
                                               p.bytes.size()),
                      static_cast<uint32_t>(p.bytes.size()));
    }
    engine.Finish(packets.back().ts);
  }
  state.SetItemsProcessed(state.iterations() * packets.size());
  state.SetBytesProcessed(state.iterations() * bytes);
  state.counters["exchanges_per_second"] = benchmark::Counter(
      static_cast<double>(got) * state.iterations(), benchmark::Counter::kIsRate);
  state.counters["exchanges_found"] = static_cast<double>(got);
  state.counters["exchanges_sent"] = static_cast<double>(exchanges);
}
BENCHMARK(BM_CaptureEngine)->Unit(benchmark::kMillisecond);

}  // namespace
}  // namespace tapkit

BENCHMARK_MAIN();
