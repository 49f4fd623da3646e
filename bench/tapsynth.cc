// tapsynth: writes a .tap file of synthetic service traffic (bench/synth.h), for benchmarks and
// the demo until a live capture exists.
//
//   tapsynth [--count N] [--seed S] [--level L] -w FILE|-
#include <boost/program_options.hpp>
#include <cstdio>
#include <iostream>

#include "bench/synth.h"
#include "format/program.h"
#include "format/writer.h"

namespace po = boost::program_options;

int main(int argc, char** argv) {
  uint64_t count = 1000, seed = 1;
  int level = 3;
  std::string out;
  po::options_description opts("Usage: tapsynth [options] -w FILE|-\nOptions");
  opts.add_options()("help,h", "show this help")("version", "print the version and exit")("count,n", po::value(&count)->default_value(1000),
                                                 "exchanges to write")(
      "seed", po::value(&seed)->default_value(1), "random seed (same seed, same file)")(
      "level", po::value(&level)->default_value(3), "zstd level")(
      "write,w", po::value(&out), "output .tap file, - for standard output");
  po::variables_map vm;
  try {
    po::store(po::parse_command_line(argc, argv, opts, tapkit::kCommandLineStyle), vm);
    po::notify(vm);
  } catch (const po::error& e) {
    std::fprintf(stderr, "tapsynth: %s (try --help)\n", e.what());
    return 2;
  }
  if (vm.count("version")) {
    std::cout << tapkit::VersionLine("tapsynth");
    return 0;
  }
  if (vm.count("help")) {
    std::cout << opts;
    return 0;
  }
  if (out.empty()) {
    std::fprintf(stderr, "tapsynth: -w FILE is required\n");
    return 2;
  }
  auto file = tapkit::OpenWritableFile(out);
  if (!file.ok()) {
    std::fprintf(stderr, "tapsynth: %s\n", std::string(file.status().message()).c_str());
    return 2;
  }
  tapkit::CaptureMetadata meta;
  meta.writer_name = "tapsynth";
  meta.writer_version = std::string(tapkit::kVersion);
  meta.command_line.assign(argv, argv + argc);
  meta.start_time_ns = 1'764'460'800'000'000'000ull;
  // The pods tapped, labelled as the control plane labels them (synth.cc labels the endpoints).
  meta.capture_points = {
      {0, "pod", "backend-0", {"shop", "backend-0", "deployment", "backend", "backend"}, {1}},
      {1, "pod", "backend-1", {"shop", "backend-1", "deployment", "backend", "backend"}, {1}},
      {2, "pod", "backend-2", {"shop", "backend-2", "deployment", "backend", "backend"}, {1}}};
  meta.extra = {{"synthetic", "bench/synth.h"}, {"seed", std::to_string(seed)}};
  // The generator writes Authorization values as redaction markers, as a recorder would.
  meta.redaction = {true, {"authorization", "proxy-authorization", "cookie", "set-cookie"}, false};
  tapkit::WriterOptions wo;
  wo.zstd_level = level;
  auto writer = tapkit::Writer::Open(*std::move(file), meta, wo);
  if (!writer.ok()) {
    std::fprintf(stderr, "tapsynth: %s\n", std::string(writer.status().message()).c_str());
    return 2;
  }
  tapkit::SyntheticTraffic traffic(seed);
  for (uint64_t i = 0; i < count; ++i) {
    if (absl::Status s = (*writer)->Append(traffic.Next()); !s.ok()) {
      std::fprintf(stderr, "tapsynth: %s\n", std::string(s.message()).c_str());
      return 2;
    }
  }
  if (absl::Status s = (*writer)->Close(); !s.ok()) {
    std::fprintf(stderr, "tapsynth: %s\n", std::string(s.message()).c_str());
    return 2;
  }
  return 0;
}
