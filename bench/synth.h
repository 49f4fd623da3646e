// synth.h: a deterministic generator of synthetic service-to-service HTTP exchanges, for
// benchmarks and the demo. The mix imitates JSON APIs behind a service mesh (bench/README.md):
// typical header sets, bodies from 0 B to 16 KiB, a median exchange of about 700 bytes on the wire.
//
// Thread-safety: a SyntheticTraffic object is not thread-safe; use one per thread.
#ifndef TAPKIT_BENCH_SYNTH_H_
#define TAPKIT_BENCH_SYNTH_H_

#include <cstdint>
#include <random>

#include "format/exchange.h"

namespace tapkit {

class SyntheticTraffic {
 public:
  // `seed` fixes the sequence; `start_ns` is the first request's time (ns since the Unix epoch).
  explicit SyntheticTraffic(uint64_t seed, uint64_t start_ns = 1'764'460'800'000'000'000ull);
  // The next exchange, in completion order (sort keys nearly ordered).
  Exchange Next();

 private:
  std::mt19937_64 rng_;
  uint64_t now_ns_;
  uint64_t stream_ = 0;
};

// Bytes the exchange took on the wire as HTTP/1.1 (start lines, headers, bodies): what "an
// exchange of 700 bytes" means in bench/README.md.
uint64_t WireSize(const Exchange& x);

}  // namespace tapkit

#endif  // TAPKIT_BENCH_SYNTH_H_
