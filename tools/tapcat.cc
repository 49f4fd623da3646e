// tapcat: prints the exchanges of .tap capture files.
//
//   tapcat [-o text|wide|json] [-c N] [--file-order | --reorder-window D] [-f] FILE|- ...
//   tapcat --info [-o json] FILE|- ...      tapcat --reindex FILE ...
//
// Exchanges print in sort-key (request-start) order, files merged (format/order.h); --info prints
// a report per file; with -o json, one JSON object per file (docs/json.md).
//
// Exit status (docs/architecture.md section 4): 0 success (a torn tail is only a notice), 2 usage
// or input error, including damage found in a file (whatever could be read is still printed).
#include <signal.h>
#include <unistd.h>

#include <boost/program_options.hpp>
#include <cerrno>
#include <cstdio>
#include <cstring>
#include <iostream>
#include <string>
#include <vector>

#include "absl/strings/str_cat.h"
#include "format/print.h"
#include "format/program.h"

namespace po = boost::program_options;

using tapkit::kExitError;
using tapkit::kExitOk;

namespace {

// -f ends at SIGINT or SIGTERM, with exit 0 (as tail -f). A second signal kills as usual.
volatile sig_atomic_t g_stop = 0;
void OnStop(int) { g_stop = 1; }
void CatchStopSignals() {
  struct sigaction sa {};
  sa.sa_handler = OnStop;
  sa.sa_flags = SA_RESETHAND;
  sigemptyset(&sa.sa_mask);
  sigaction(SIGINT, &sa, nullptr);
  sigaction(SIGTERM, &sa, nullptr);
}

}  // namespace

int main(int argc, char** argv) {
  std::string output = "text";
  int64_t count = -1;
  std::string window;
  std::vector<std::string> files;
  po::options_description opts(
      "Usage: tapcat [options] FILE|- ...\n"
      "Prints the HTTP exchanges of .tap capture files, linkerd-tap style.\n\nOptions");
  opts.add_options()("help,h", "show this help")("version", "print the version and exit")(
      "output,o", po::value(&output)->default_value("text"),
      "text (req/rsp/end lines), wide (with resources), or json (one object per exchange; "
      "docs/json.md)")("count,c", po::value(&count), "stop after N exchanges")(
      "info",
      "print the file's metadata, counts, time range, compression, drops and damage (with -o "
      "json: one JSON object per file, docs/json.md)")(
      "reindex", "give a file whose writer was killed its index and trailer (rewrites its tail)")(
      "file-order", "print exchanges as stored (completion order), file after file")(
      "reorder-window", po::value(&window),
      "for a pipe or a file without an index: hold exchanges this long (10s, 500ms; default "
      "10s, with -f 0) to print them in sort-key order; a later one prints at once, counted")(
      "follow,f", "follow growing files as tail -f; Ctrl+C ends (exit 0)");
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
  if (files.empty()) {
    std::fprintf(stderr, "tapcat: no input file (give FILE, or - for standard input)\n");
    return kExitError;
  }
  if (vm.count("count") && count < 0) {
    std::fprintf(stderr, "tapcat: -c %lld: must be 0 or more\n", static_cast<long long>(count));
    return kExitError;
  }
  bool follow = vm.count("follow") > 0;
  int64_t window_ns = follow ? 0 : tapkit::kDefaultReorderWindowNs;
  if (vm.count("reorder-window")) {
    absl::StatusOr<int64_t> w = tapkit::ParseDurationNs(window);
    if (!w.ok()) {
      std::fprintf(stderr, "tapcat: --reorder-window %s\n",
                   std::string(w.status().message()).c_str());
      return kExitError;
    }
    window_ns = *w;
  }
  int modes = (vm.count("info") > 0) + (vm.count("reindex") > 0) + follow;
  if (modes > 1) {
    std::fprintf(stderr, "tapcat: --info, --reindex and -f exclude each other\n");
    return kExitError;
  }
  if (vm.count("file-order") && vm.count("reorder-window")) {
    std::fprintf(stderr, "tapcat: --file-order and --reorder-window exclude each other\n");
    return kExitError;
  }
  if (follow) CatchStopSignals();
  tapkit::PrintOptions print;
  print.file_order = vm.count("file-order") > 0;
  print.reorder_window_ns = window_ns;
  print.follow = follow;
  print.stop = [] { return g_stop != 0; };
  print.files = files;
  print.format = *format;
  print.count = count;
  print.info = vm.count("info") > 0;
  print.reindex = vm.count("reindex") > 0;
  return tapkit::PrintCaptures(print, stdout, stderr) ? kExitOk : kExitError;
}
