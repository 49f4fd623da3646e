// tapcat: prints the exchanges of .tap capture files.
//
//   tapcat [-o text|wide|json|har|curl|pcap] [-c N] [--info] [--reindex] FILE|- ...
//
// --info prints a report per file; with -o json, one JSON object per file (docs/json.md).
//
// Exit status (docs/architecture.md section 4): 0 success (a torn tail is only a notice), 2 usage
// or input error, including damage found in a file (whatever could be read is still printed).
#include <unistd.h>

#include <boost/program_options.hpp>
#include <cerrno>
#include <cstdio>
#include <cstring>
#include <iostream>
#include <string>
#include <vector>

#include "absl/strings/str_cat.h"
#include "format/program.h"
#include "format/print.h"

namespace po = boost::program_options;

using tapkit::kExitError;
using tapkit::kExitOk;

int main(int argc, char** argv) {
  std::string output = "text";
  int64_t count = -1;
  std::vector<std::string> files;
  po::options_description opts(
      "Usage: tapcat [options] FILE|- ...\n"
      "Prints the HTTP exchanges of .tap capture files, linkerd-tap style.\n\nOptions");
  opts.add_options()("help,h", "show this help")("version", "print the version and exit")(
      "output,o", po::value(&output)->default_value("text"),
      "text (req/rsp/end lines), wide (with resources), json (one object per exchange; "
      "docs/json.md); exports: har (one HAR 1.2 document), curl (a curl command per request), "
      "pcap (the exchanges as TCP/IP packets; binary)")("count,c", po::value(&count), "stop after N exchanges")(
      "info",
      "print the file's metadata, counts, time range, compression, drops and damage (with -o "
      "json: one JSON object per file, docs/json.md)")(
      "reindex", "give a file whose writer was killed its index and trailer (rewrites its tail)");
  po::options_description hidden;
  hidden.add_options()("file", po::value(&files));
  po::options_description all;
  all.add(opts).add(hidden);
  po::positional_options_description pos;
  pos.add("file", -1);
  po::variables_map vm;
  try {
    po::store(po::command_line_parser(argc, argv).options(all).positional(pos).run(), vm);
    po::notify(vm);
  } catch (const po::error& e) {
    std::fprintf(stderr, "tapcat: %s (try --help)\n", e.what());
    return kExitError;
  }
  if (vm.count("version")) {
    std::cout << tapkit::VersionLine("tapcat");
    return kExitOk;
  }
  if (vm.count("help")) {
    std::cout << opts
              << "\nExit status: 0 ok (a torn tail is a notice), 2 usage or input error "
                 "(damage included).\n";
    return kExitOk;
  }
  absl::StatusOr<tapkit::OutputFormat> format = tapkit::ParseOutputFormat(output);
  if (!format.ok()) {
    std::fprintf(stderr, "tapcat: %s\n", std::string(format.status().message()).c_str());
    return kExitError;
  }
  if (vm.count("info") && (*format == tapkit::OutputFormat::kHar ||
                           *format == tapkit::OutputFormat::kCurl ||
                           *format == tapkit::OutputFormat::kPcap)) {
    std::fprintf(stderr, "tapcat: --info reports as text or json, not -o %s\n", output.c_str());
    return kExitError;
  }
  if (files.empty()) {
    std::fprintf(stderr, "tapcat: no input file (give FILE, or - for standard input)\n");
    return kExitError;
  }
  if (vm.count("count") && count < 0) {
    std::fprintf(stderr, "tapcat: -c %lld: must be 0 or more\n", static_cast<long long>(count));
    return kExitError;
  }
  tapkit::PrintOptions print;
  print.files = files;
  print.format = *format;
  print.count = count;
  print.info = vm.count("info") > 0;
  print.reindex = vm.count("reindex") > 0;
  return tapkit::PrintCaptures(print, stdout, stderr) ? kExitOk : kExitError;
}
