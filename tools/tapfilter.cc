// tapfilter: writes new .tap files from existing ones: inputs merged in sort-key order, the
// selected exchanges, redacted, split with -C (recorder/filter.h).
//
//   tapfilter [-c N] [-C SIZE] [--reorder-window D] -w OUT.tap|- IN.tap|- ...
//
// Exit status (docs/architecture.md section 4): 0 success, 2 usage or input error, including
// damage found in an input (whatever could be read is still written).
#include <boost/program_options.hpp>
#include <cstdio>
#include <iostream>
#include <string>
#include <vector>

#include "format/order.h"
#include "format/program.h"
#include "recorder/filter.h"
#include "recorder/rotating_writer.h"

namespace po = boost::program_options;

using tapkit::kExitError;
using tapkit::kExitOk;

int main(int argc, char** argv) {
  tapkit::FilterOptions f;
  std::string size, window;
  po::options_description opts(
      "Usage: tapfilter [options] -w OUT.tap|- IN.tap|- ...\n"
      "Writes the exchanges of .tap files, merged in request-start order, into a new capture.\n\n"
      "Options");
  opts.add_options()("help,h", "show this help")("version", "print the version and exit")(
      "write,w", po::value(&f.output), "the output .tap file, - for standard output")(
      "file-size,C", po::value(&size),
      "a new file every SIZE million bytes (suffix k, m, g: KiB, MiB, GiB): out.tap, out1.tap, "
      "...")("count,c", po::value(&f.count), "stop after writing N exchanges")(
      "reorder-window", po::value(&window),
      "for a pipe or a file without an index: hold exchanges this long (10s, 500ms; default "
      "10s) to merge them in order; a later one is written at once, counted");
  po::options_description hidden;
  hidden.add_options()("input", po::value(&f.inputs));
  po::options_description all;
  all.add(opts).add(hidden);
  po::positional_options_description pos;
  pos.add("input", -1);
  po::variables_map vm;
  try {
    po::store(po::command_line_parser(argc, argv).options(all).positional(pos).run(), vm);
    po::notify(vm);
  } catch (const po::error& e) {
    std::fprintf(stderr, "tapfilter: %s (try --help)\n", e.what());
    return kExitError;
  }
  if (vm.count("version")) {
    std::cout << tapkit::VersionLine("tapfilter");
    return kExitOk;
  }
  if (vm.count("help")) {
    std::cout << opts
              << "\nThe output header names the inputs; their drops are summed into its trailer, "
                 "and exchanges left out are counted as selected_out.\n"
                 "Exit status: 0 ok, 2 usage or input error (damage included).\n";
    return kExitOk;
  }
  if (vm.count("count") && f.count < 0) {
    std::fprintf(stderr, "tapfilter: -c %lld: must be 0 or more\n",
                 static_cast<long long>(f.count));
    return kExitError;
  }
  if (vm.count("file-size")) {
    f.max_bytes = tapkit::ParseRotationSize(size);
    if (f.max_bytes == 0) {
      std::fprintf(stderr,
                   "tapfilter: -C %s: not a size above 0 and below 2^63 bytes (N million bytes, "
                   "or Nk, Nm, Ng)\n",
                   size.c_str());
      return kExitError;
    }
  }
  if (vm.count("reorder-window")) {
    absl::StatusOr<int64_t> w = tapkit::ParseDurationNs(window);
    if (!w.ok()) {
      std::fprintf(stderr, "tapfilter: --reorder-window %s\n",
                   std::string(w.status().message()).c_str());
      return kExitError;
    }
    f.reorder_window_ns = *w;
  }
  f.command_line.assign(argv, argv + argc);
  if (f.count >= 0) f.selection.emplace_back("count", std::to_string(f.count));
  tapkit::FilterSummary summary;
  absl::Status s = tapkit::FilterCaptures(f, stderr, &summary);
  if (!s.ok()) {
    std::fprintf(stderr, "tapfilter: %s\n", std::string(s.message()).c_str());
    return kExitError;
  }
  return kExitOk;
}
