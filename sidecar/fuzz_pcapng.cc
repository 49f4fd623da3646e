// libFuzzer target: arbitrary bytes as a pcapng file for the project's own pcapng reader, whose
// frames then go through the capture engine. It must never read outside a block or crash.
// Run by ctest with a fixed seed (sidecar/CMakeLists.txt); seeds in fixtures/fuzz/pcapng.
#include <cstdio>

#include "sidecar/engine.h"
#include "sidecar/packet_source.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  if (size == 0) return 0;
  FILE* f = fmemopen(const_cast<uint8_t*>(data), size, "rb");
  if (!f) return 0;
  auto source = tapkit::OpenPcapngStream(f, "fuzz.pcapng", "");
  tapkit::CaptureEngine engine(tapkit::EngineOptions{}, [](tapkit::Exchange&&) {});
  tapkit::Frame frame;
  uint64_t last = 0;
  for (int i = 0; i < 10000 && source->Next(&frame); ++i) {
    engine.OnPacket(frame.link_type, frame.ts_ns, frame.data, frame.wire_length);
    last = frame.ts_ns;
  }
  engine.Finish(last);
  (void)source->status();
  return 0;
}
