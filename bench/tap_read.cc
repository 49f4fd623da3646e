// tap_read: the format reader's whole read of one .tap file, as a program, so that tools reading
// the same file can be timed against it side by side (bench/tools_vs_reader.sh).
//
//   tap_read FILE        prints "EXCHANGES SECONDS" for one pass: open, verify every checksum and
//                        FlatBuffer, decompress both frames, iterate every exchange touching its
//                        bodies (what format_bench's BM_ReadWhole does in memory).
#include <chrono>
#include <cstdio>

#include "format/file.h"
#include "format/reader.h"

int main(int argc, char** argv) {
  if (argc != 2) {
    std::fprintf(stderr, "usage: tap_read FILE\n");
    return 2;
  }
  auto start = std::chrono::steady_clock::now();
  auto file = tapkit::OpenReadableFile(argv[1]);
  if (!file.ok()) {
    std::fprintf(stderr, "tap_read: %s\n", std::string(file.status().message()).c_str());
    return 2;
  }
  auto reader = tapkit::Reader::Open(*std::move(file));
  if (!reader.ok()) {
    std::fprintf(stderr, "tap_read: %s\n", std::string(reader.status().message()).c_str());
    return 2;
  }
  tapkit::ExchangeView v;
  uint64_t n = 0, sum = 0;
  while ((*reader)->Next(&v)) {
    ++n;
    sum += v.sort_key_ns() + v.response().status() + v.response().body().data().size() +
           v.request().path().size();
  }
  double s = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
  std::printf("%llu %.6f %llu\n", static_cast<unsigned long long>(n), s,
              static_cast<unsigned long long>(sum & 0xff));
  return (*reader)->status().ok() ? 0 : 2;
}
