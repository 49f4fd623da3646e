// testutil.h: for the capture engine's tests: a capture file read through the engine, whole.
//
// Thread-safety: free functions over their arguments.
#ifndef TAPKIT_SIDECAR_TESTUTIL_H_
#define TAPKIT_SIDECAR_TESTUTIL_H_

#include <cstdint>
#include <map>
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "sidecar/engine.h"

namespace tapkit::testing {

struct EngineRun {
  absl::Status status;  // opening or reading the capture; what was read before an error is kept
  std::vector<Exchange> exchanges;  // in the order the engine wrote them
  std::map<std::string, uint64_t> counters, drops;
};

// Every frame of the capture at `path` (OpenCaptureFile with `bpf`) through a CaptureEngine with
// `options`, then Finish at the last frame's time.
EngineRun RunEngine(const std::string& path, const EngineOptions& options = {},
                    const std::string& bpf = "");

}  // namespace tapkit::testing

#endif  // TAPKIT_SIDECAR_TESTUTIL_H_
