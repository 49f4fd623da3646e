// tapcat: prints the exchanges of .tap capture files.
//
//   tapcat [-o text|wide|json|har|curl|pcap] [-V] [--body] [-c N] [-t | --time FORMAT]
//          [--stat [--by KEY]]
//          [--file-order | --reorder-window D] [-f] FILE|- ...
//   tapcat --info [-o json] FILE|- ...      tapcat --reindex FILE ...
//
// Exchanges print in sort-key (request-start) order, files merged (format/order.h); -f follows
// growing files until SIGINT or SIGTERM (exit 0). --info prints a report per file; with -o json,
// one JSON object per file (docs/json.md). --stat prints a table per workload and route
// (format/stats.h); -t and --time pick the time column of text and wide lines
// (format/line_time.h). -V prints one block per exchange for a person (format/verbose.h); --body
// adds the decoded bodies to -o json. The selection flags (--status 5xx, --path /api, ...; -c
// counts what they select) are format/select.h's.
//
// Exit status (docs/architecture.md section 4): 0 success (a torn tail is only a notice), 2 usage
// or input error, including damage found in a file (whatever could be read is still printed).
#include <signal.h>
#include <unistd.h>

#include <algorithm>
#include <boost/program_options.hpp>
#include <cerrno>
#include <cstdio>
#include <cstring>
#include <iostream>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "absl/strings/str_cat.h"
#include "format/print.h"
#include "format/program.h"
#include "format/program_options.h"
#include "format/select.h"

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

// Flags that cannot be given together: one of them would be silently ignored. Each is named as
// the user wrote it ("-o WORD" for an explicit -o); the first pair found is reported on one line,
// exit 2. When a flag lands, its row goes here.
struct Conflict {
  std::string_view a, b, why;
};
constexpr Conflict kConflicts[] = {
    {"--info", "--reindex", "--reindex repairs files, --info reports on them"},
    {"--stat", "--info", "--info reports on files, --stat on their exchanges"},
    {"--stat", "--reindex", "--reindex prints no exchanges"},
    {"-c", "--info", "--info reads every exchange"},
    {"-c", "--reindex", "--reindex reads every exchange"},
    {"-t", "--time", "-t is no time column"},
    {"-t", "--stat", "--stat prints no lines to stamp"},
    {"--time", "--stat", "--stat prints no lines to stamp"},
    {"-t", "--info", "--info prints no exchange lines"},
    {"--time", "--info", "--info prints no exchange lines"},
    {"-t", "--reindex", "--reindex prints no exchange lines"},
    {"--time", "--reindex", "--reindex prints no exchange lines"},
    {"-f", "--info", "--info reports on files as they are"},
    {"-f", "--reindex", "--reindex rewrites a finished file's tail"},
    {"--file-order", "--reorder-window", "--file-order prints as stored"},
    {"--file-order", "--info", "--info prints no exchanges"},
    {"--reorder-window", "--info", "--info prints no exchanges"},
    {"--file-order", "--reindex", "--reindex prints no exchanges"},
    {"--reorder-window", "--reindex", "--reindex prints no exchanges"},
    {"-V", "--info", "--info reports on files, -V on their exchanges"},
    {"-V", "--reindex", "--reindex prints no exchanges"},
    {"-V", "--stat", "--stat prints a table, -V each exchange"},
    {"-V", "--body", "-V shows the decoded bodies by itself"},
    {"-V", "-t", "-V prints its own times"},
    {"-V", "--time", "-V prints its own times"},
    {"--body", "--info", "--info prints no bodies"},
    {"--body", "--reindex", "--reindex prints no exchanges"},
    {"--body", "--stat", "--stat prints no bodies"},
};
// The -o words each flag can print; an explicit -o outside its list would be ignored. --reindex
// prints nothing, so takes none.
struct OutputRule {
  std::string_view flag;
  std::vector<std::string_view> outputs;
  std::string_view what;
};
const OutputRule kOutputRules[] = {
    {"--info", {"text", "json"}, "--info prints text or json"},
    {"--stat", {"text", "json"}, "--stat prints text or json"},
    {"--reindex", {}, "--reindex prints no exchanges"},
    {"-t", {"text", "wide"}, "only text and wide lines have a time column"},
    {"--time", {"text", "wide"}, "only text and wide lines have a time column"},
    {"-V", {"text"}, "-V prints its own blocks"},
    {"--body", {"json"}, "--body adds decoded bodies to -o json"},
    {"--file-order",
     {"text", "wide", "json", "har", "curl"},
     "-o pcap writes packets in time order, --file-order gives exchanges as stored"},
};

// The first conflict among the flags given (`given`: names as in kConflicts; `output`: the -o
// word when -o was given), as one line without the program's name; empty when there is none.
std::string FindConflict(const std::vector<std::string_view>& given, const std::string* output) {
  auto has = [&](std::string_view f) {
    return std::find(given.begin(), given.end(), f) != given.end();
  };
  for (const Conflict& c : kConflicts) {
    if (has(c.a) && has(c.b)) {
      return absl::StrCat(std::string(c.a), " and ", std::string(c.b), " cannot be used together (",
                          std::string(c.why), ")");
    }
  }
  if (output) {
    for (const OutputRule& r : kOutputRules) {
      if (has(r.flag) &&
          std::find(r.outputs.begin(), r.outputs.end(), *output) == r.outputs.end()) {
        return absl::StrCat(std::string(r.flag), " and -o ", *output, " cannot be used together (",
                            std::string(r.what), ")");
      }
    }
  }
  return "";
}

}  // namespace

int main(int argc, char** argv) {
  std::string output = "text";
  std::string time = "absolute";
  std::string by;
  tapkit::SelectionFlags selection_flags;
  std::string window;
  std::vector<std::string> files;
  po::options_description opts(
      "Usage: tapcat [options] FILE|- ...\n"
      "Prints the HTTP exchanges of .tap capture files, linkerd-tap style.\n\nOptions");
  opts.add_options()("help,h", "show this help")("version", "print the version and exit")(
      "output,o", po::value(&output)->default_value("text"),
      "text (req/rsp/end lines), wide (with resources), json (one object per exchange; "
      "docs/json.md); exports: har (one HAR 1.2 document), curl (a curl command per request), "
      "pcap (the exchanges as TCP/IP packets; binary)")(
      "verbose,V",
      "one block per exchange: timing, endpoints, every header, interim responses, trailers, "
      "and the bodies decoded (gzip, deflate, br) and shown as pretty JSON, text or a hex dump")(
      "body",
      "with -o json: each body gains `decoded`, its Content-Encoding undone (docs/json.md)")(
      ",t", "no time column: linkerd tap's lines exactly (as tcpdump -t)")(
      "time", po::value(&time),
      "the time column of text and wide lines: absolute (default; RFC 3339 UTC, microseconds), "
      "relative (seconds since the capture's start), delta (seconds since the previous line) or "
      "epoch (Unix seconds, as tcpdump -tt)")(
      "stat",
      "a table per workload and route (method and path with ids as {id}): count, success rate, "
      "requests per second, latency p50, p95, p99 (with -o json: one object per row)")(
      "by", po::value(&by), "--stat grouped by authority, path, status or direction instead")(
      "info",
      "print the file's metadata, counts, time range, compression, drops and damage (with -o "
      "json: one JSON object per file, docs/json.md)")(
      "reindex", "give a file whose writer was killed its index and trailer (rewrites its tail)")(
      "file-order", "print exchanges as stored (completion order), file after file")(
      "reorder-window", po::value(&window),
      "for a pipe or a file without an index: hold exchanges this long (10s, 500ms; default "
      "10s, with -f 0) to print them in sort-key order; a later one prints at once, counted")(
      "follow,f", "follow growing files as tail -f; Ctrl+C ends (exit 0)");
  po::options_description select_opts(
      "Selection (ANDed; a repeated flag or a comma list ORs; -c counts selected exchanges)");
  tapkit::AddSelectionOptions(&select_opts, &selection_flags);
  opts.add(select_opts);
  po::options_description hidden;
  hidden.add_options()("file", po::value(&files));
  po::variables_map vm;
  if (std::optional<int> done = tapkit::ParseCommandLine(
          {.program = "tapcat",
           .visible = &opts,
           .hidden = &hidden,
           .positional = "file",
           .extra_parser = tapkit::SelectionExtraParser,
           .help_epilogue =
               "Exit status: 0 ok (a torn tail is a notice), 2 usage or input error (damage "
               "included).\n"},
          argc, argv, &vm, std::cout, std::cerr)) {
    return *done;
  }
  absl::StatusOr<tapkit::OutputFormat> format = tapkit::ParseOutputFormat(output);
  if (!format.ok()) {
    std::fprintf(stderr, "tapcat: %s\n", std::string(format.status().message()).c_str());
    return kExitError;
  }
  // Flags as the user wrote them, for the conflict table.
  std::vector<std::string_view> given;
  for (auto [option, flag] : {std::pair<const char*, std::string_view>{"info", "--info"},
                              {"reindex", "--reindex"},
                              {"stat", "--stat"},
                              {"by", "--by"},
                              {"time", "--time"},
                              {"-t", "-t"},
                              {"count", "-c"},
                              {"verbose", "-V"},
                              {"body", "--body"},
                              {"follow", "-f"},
                              {"file-order", "--file-order"},
                              {"reorder-window", "--reorder-window"}}) {
    if (vm.count(option)) given.push_back(flag);
  }
  const std::string* explicit_output = vm["output"].defaulted() ? nullptr : &output;
  if (std::string conflict = FindConflict(given, explicit_output); !conflict.empty()) {
    std::fprintf(stderr, "tapcat: %s\n", conflict.c_str());
    return kExitError;
  }
  if (vm.count("by") && !vm.count("stat")) {
    std::fprintf(stderr, "tapcat: --by %s: needs --stat\n", by.c_str());
    return kExitError;
  }
  tapkit::TimeFormat time_format = tapkit::TimeFormat::kNone;
  if (!vm.count("-t")) {
    absl::StatusOr<tapkit::TimeFormat> parsed = tapkit::ParseTimeFormat(time);
    if (!parsed.ok()) {
      std::fprintf(stderr, "tapcat: %s\n", std::string(parsed.status().message()).c_str());
      return kExitError;
    }
    time_format = *parsed;
  }
  tapkit::StatKey stat_by = tapkit::StatKey::kRoute;
  if (vm.count("by")) {
    absl::StatusOr<tapkit::StatKey> parsed = tapkit::ParseStatKey(by);
    if (!parsed.ok()) {
      std::fprintf(stderr, "tapcat: %s\n", std::string(parsed.status().message()).c_str());
      return kExitError;
    }
    stat_by = *parsed;
  }
  if (files.empty()) {
    std::fprintf(stderr, "tapcat: no input file (give FILE, or - for standard input)\n");
    return kExitError;
  }
  absl::StatusOr<tapkit::Selection> selection = tapkit::Selection::Parse(selection_flags);
  if (!selection.ok()) {
    std::fprintf(stderr, "tapcat: %s\n", std::string(selection.status().message()).c_str());
    return kExitError;
  }
  for (const std::string& w : selection->Warnings()) {
    std::fprintf(stderr, "tapcat: warning: %s\n", w.c_str());
  }
  if ((vm.count("info") || vm.count("reindex")) && !selection->empty()) {
    std::fprintf(stderr,
                 "tapcat: %s works on whole files; the selection flags go with printing "
                 "exchanges\n",
                 vm.count("info") ? "--info" : "--reindex");
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
  if (follow) CatchStopSignals();
  tapkit::PrintOptions print;
  print.file_order = vm.count("file-order") > 0;
  print.reorder_window_ns = window_ns;
  print.follow = follow;
  print.stop = [] { return g_stop != 0; };
  print.files = files;
  print.format = *format;
  print.time = time_format;
  print.verbose = vm.count("verbose") > 0;
  print.decoded_bodies = vm.count("body") > 0;
  print.stat = vm.count("stat") > 0;
  print.stat_by = stat_by;
  print.count = selection->count();
  print.selection = *std::move(selection);
  print.info = vm.count("info") > 0;
  print.reindex = vm.count("reindex") > 0;
  return tapkit::PrintCaptures(print, stdout, stderr) ? kExitOk : kExitError;
}
