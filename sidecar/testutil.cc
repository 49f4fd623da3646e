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

}  // namespace tapkit::testing
