// libFuzzer target: the HTTP/1 fast path against http-parser alone on hostile byte streams. The
// input is a series of records: an op byte (bit 0: client or server side; bit 1: a gap of the
// next byte's count instead of data), a length byte, then that many bytes. Both connections get
// the same records; any difference in the exchanges they write traps.
// Run by ctest with a fixed seed (sidecar/CMakeLists.txt); seeds in fixtures/fuzz/http1.
#include <cstddef>
#include <cstdint>
#include <vector>

#include "sidecar/http1.h"

namespace {

std::vector<tapkit::Exchange> Read(const uint8_t* data, size_t size, bool fast) {
  std::vector<tapkit::Exchange> out;
  uint64_t next_id = 1;
  tapkit::Http1Counters counters;
  tapkit::Http1Options o;
  o.fast_path = fast;
  o.body_limit = 64;
  tapkit::Http1Connection conn(
      {}, o, &next_id, [&out](tapkit::Exchange&& x) { out.push_back(x); }, &counters,
      size > 0 && (data[0] & 4), size > 0 && (data[0] & 8));
  size_t at = 0;
  uint64_t ts = 1000;
  while (at + 2 <= size) {
    uint8_t op = data[at];
    size_t n = data[at + 1];
    at += 2;
    bool client = (op & 1) == 0;
    ts += 10;
    if (op & 2) {
      if (client) {
        conn.OnClientGap(n, ts);
      } else {
        conn.OnServerGap(n, ts);
      }
      continue;
    }
    n = std::min(n, size - at);
    std::span<const uint8_t> bytes(data + at, n);
    if (client) {
      conn.OnClientData(bytes, ts);
    } else {
      conn.OnServerData(bytes, ts);
    }
    at += n;
  }
  conn.OnServerEnd(ts + 1);
  conn.Close(tapkit::Completion::kNoResponse, "end", ts + 2);
  return out;
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  if (Read(data, size, true) != Read(data, size, false)) __builtin_trap();
  return 0;
}
