// libFuzzer target: packet bytes in, exchanges out. The input is a link type selector byte, then
// frames as (u16 big-endian length, bytes). Every exchange the engine produces is written to a
// .tap in memory and read back, so the whole path from packet to file runs on hostile bytes.
// Run by ctest with a fixed seed (sidecar/CMakeLists.txt); seeds in fixtures/fuzz/capture.
#include <cstddef>
#include <cstdint>
#include <string>

#include "format/reader.h"
#include "format/writer.h"
#include "sidecar/engine.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  // scripts/fuzz-seeds.py writes seeds from captures with indexes into this list: keep in step.
  static const int kLinks[] = {1, 0, 113, 276, 101, 228, 229, 9, 104, 108, 129, 239, 117};
  if (size < 1) return 0;
  int link = kLinks[data[0] % (sizeof kLinks / sizeof kLinks[0])];
  std::string file;
  auto writer = tapkit::Writer::Open(tapkit::NewStringWritableFile(&file), {});
  tapkit::EngineOptions o;
  o.http.body_limit = 256;
  o.max_connections = 64;
  o.max_buffered_per_direction = 4096;
  o.max_buffered_total = 16384;
  o.idle_timeout_ns = 5'000'000'000;
  tapkit::CaptureEngine engine(o, [&](tapkit::Exchange&& x) { (void)(*writer)->Append(x); });
  size_t at = 1;
  uint64_t ts = 1'000'000'000;
  while (at + 2 <= size) {
    size_t n = (size_t{data[at]} << 8) | data[at + 1];
    at += 2;
    n = std::min(n, size - at);
    engine.OnPacket(link, ts, std::span<const uint8_t>(data + at, n),
                    static_cast<uint32_t>(n + (data[at - 1] & 3)));
    at += n;
    ts += 1'000'000 * (1 + (n & 7));
  }
  engine.Finish(ts);
  (void)(*writer)->Close({engine.Drops(), engine.Counters(), {}});
  auto reader = tapkit::Reader::Open(tapkit::NewStringReadableFile(file));
  if (reader.ok()) {
    tapkit::ExchangeView v;
    while ((*reader)->Next(&v)) (void)v.ToExchange();
  }
  return 0;
}
