// libFuzzer target: arbitrary bytes as a classic pcap file, read by the project's mapped reader
// (OpenPcapBytes) and by libpcap (through fmemopen). Every frame and the way the reading ends
// must agree; any difference traps. Then the frames go through the capture engine.
// Run by ctest with a fixed seed (sidecar/CMakeLists.txt); seeds in fixtures/fuzz/pcap.
#include <pcap/pcap.h>

#include <algorithm>
#include <cstdio>
#include <cstring>
#include <vector>

#include "sidecar/engine.h"
#include "sidecar/packet_source.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  std::span<const uint8_t> bytes(data, size);
  auto mapped = tapkit::OpenPcapBytes(bytes, "fuzz.pcap", "");
  if (!mapped) return 0;  // not a classic pcap of a link type the mapped reader takes
  std::vector<uint8_t> copy(data, data + size);
  FILE* f = fmemopen(copy.data(), copy.size(), "rb");
  if (!f) return 0;
  char err[PCAP_ERRBUF_SIZE];
  pcap_t* p = pcap_fopen_offline_with_tstamp_precision(f, PCAP_TSTAMP_PRECISION_NANO, err);
  if (!p) {
    std::fclose(f);
    __builtin_trap();  // the mapped reader took a header libpcap refuses
  }
  tapkit::CaptureEngine engine(tapkit::EngineOptions{}, [](tapkit::Exchange&&) {});
  tapkit::Frame frame;
  uint64_t last = 0;
  for (int i = 0; i < 10000; ++i) {
    pcap_pkthdr* h = nullptr;
    const u_char* d = nullptr;
    int rc = pcap_next_ex(p, &h, &d);
    bool got = mapped->Next(&frame);
    if (rc != 1) {
      if (got || (rc == PCAP_ERROR) != !mapped->status().ok()) __builtin_trap();
      break;
    }
    if (!got || frame.link_type != pcap_datalink(p) || frame.data.size() != h->caplen ||
        std::memcmp(frame.data.data(), d, h->caplen) != 0 ||
        frame.wire_length != std::max(h->len, h->caplen) ||
        frame.ts_ns != static_cast<uint64_t>(h->ts.tv_sec) * 1'000'000'000ull +
                           static_cast<uint64_t>(h->ts.tv_usec)) {
      __builtin_trap();
    }
    engine.OnPacket(frame.link_type, frame.ts_ns, frame.data, frame.wire_length);
    last = frame.ts_ns;
  }
  engine.Finish(last);
  pcap_close(p);
  return 0;
}
