// libFuzzer target: arbitrary bytes as a .tap file. The reader must never crash, hang, leak or
// read out of bounds, whatever the bytes; it may only return exchanges, report damage, or refuse.
// Run by ctest with a fixed seed (format/CMakeLists.txt); seeds in fixtures/fuzz/reader.
#include <cstddef>
#include <cstdint>
#include <string_view>

#include "format/reader.h"

namespace {

void ReadAllOnce(std::string_view data, bool seekable, bool headers_only, bool seek) {
  tapkit::ReaderOptions o;
  o.headers_only = headers_only;
  auto r = tapkit::Reader::Open(tapkit::NewStringReadableFile(data, "fuzz.tap", seekable), o);
  if (!r.ok()) return;
  if (seek) (void)(*r)->Seek(1'000'000'000ull);
  tapkit::ExchangeView v;
  uint64_t sum = 0;
  while ((*r)->Next(&v)) {
    // Touch every accessor, bodies included, so a bad reference would be read.
    tapkit::Exchange x = v.ToExchange();
    sum += x.latency_ns() + x.duration_ns() + x.source.port;
    if (x.response) sum += x.response->body.data.size();
    if (x.replay_of) sum += x.replay_of->capture_point + x.replay_of->stream_id;  // format 1.3
  }
  (void)(*r)->status();
  (void)sum;
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  std::string_view in(reinterpret_cast<const char*>(data), size);
  ReadAllOnce(in, true, false, false);
  ReadAllOnce(in, false, false, false);
  ReadAllOnce(in, true, true, true);
  return 0;
}
