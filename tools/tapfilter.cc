// tapfilter: writes new .tap files from existing ones: inputs merged in sort-key order, the
// selected exchanges, redacted, split with -C (recorder/filter.h).
//
//   tapfilter [-c N] [selection] [redaction] [-C SIZE] [--reorder-window D] -w OUT.tap|-
//   IN.tap|-...
//
// The selection flags (--status 5xx, --path /api, ...; -c counts what they select) are
// format/select.h's; the redaction flags (--redact, --redact-header, --redact-query-param,
// --redact-json-field, --redact-key-file) format/redact_options.h's, as taprec's.
//
// Exit status (docs/architecture.md section 4): 0 success, 2 usage or input error, including
// damage found in an input (whatever could be read is still written), or stopped by SIGINT or
// SIGTERM (the output is finished, with its trailer, and holds what was written by then).
#include <boost/program_options.hpp>
#include <cstdio>
#include <iostream>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "format/order.h"
#include "format/program.h"
#include "format/program_options.h"
#include "format/redact.h"
#include "format/redact_options.h"
#include "format/select.h"
#include "recorder/filter.h"
#include "recorder/rotating_writer.h"

namespace po = boost::program_options;

using tapkit::kExitError;
using tapkit::kExitOk;

int main(int argc, char** argv) {
  tapkit::FilterOptions f;
  std::string size, window;
  tapkit::SelectionFlags selection_flags;
  po::options_description opts(
      "Usage: tapfilter [options] -w OUT.tap|- IN.tap|- ...\n"
      "Writes the exchanges of .tap files, merged in request-start order, into a new capture.\n\n"
      "Options");
  opts.add_options()("help,h", "show this help")("version", "print the version and exit")(
      "write,w", po::value(&f.output), "the output .tap file, - for standard output")(
      "file-size,C", po::value(&size),
      "a new file every SIZE million bytes (suffix k, m, g: KiB, MiB, GiB): out.tap, out1.tap, "
      "...")("reorder-window", po::value(&window),
             "for a pipe or a file without an index: hold exchanges this long (10s, 500ms; default "
             "10s) to merge them in order; a later one is written at once, counted");
  po::options_description select_opts(
      "Selection (ANDed; a repeated flag or a comma list ORs; -c counts selected exchanges)");
  tapkit::AddSelectionOptions(&select_opts, &selection_flags);
  opts.add(select_opts);
  // tapfilter copies values as they are unless asked: --redact, or any other redaction flag.
  tapkit::RedactionFlags redaction_flags;
  po::options_description redact_opts(
      "Redaction (--redact: the default headers and query parameters; each flag adds to it)");
  tapkit::AddRedactionOptions(&redact_opts, &redaction_flags);
  opts.add(redact_opts);
  po::options_description hidden;
  hidden.add_options()("input", po::value(&f.inputs));
  po::variables_map vm;
  if (std::optional<int> done = tapkit::ParseCommandLine(
          {.program = "tapfilter",
           .visible = &opts,
           .hidden = &hidden,
           .positional = "input",
           .extra_parser = tapkit::SelectionExtraParser,
           .help_epilogue =
               "The output header names the inputs; their drops are summed into its trailer, and "
               "exchanges left out are counted as selected_out.\n"
               "Exit status: 0 ok, 2 usage or input error (damage included) or interrupted "
               "(SIGINT, SIGTERM: the output is finished up to there).\n"},
          argc, argv, &vm, std::cout, std::cerr)) {
    return *done;
  }
  absl::StatusOr<tapkit::Selection> selection = tapkit::Selection::Parse(selection_flags);
  if (!selection.ok()) {
    std::fprintf(stderr, "tapfilter: %s\n", std::string(selection.status().message()).c_str());
    return kExitError;
  }
  for (const std::string& w : selection->Warnings()) {
    std::fprintf(stderr, "tapfilter: warning: %s\n", w.c_str());
  }
  f.count = selection->count();
  f.selection = selection->Describe();
  if (!selection->empty()) {
    f.keep = [&](const tapkit::ExchangeView& x) { return selection->Matches(x); };
  }
  if (selection->needs_inputs()) {
    f.bind = [&](const std::vector<const tapkit::Reader*>& readers) {
      return selection->Bind(readers);
    };
  }
  absl::StatusOr<std::optional<tapkit::Redactor>> redactor = tapkit::BuildRedactor(redaction_flags);
  if (!redactor.ok()) {
    std::fprintf(stderr, "tapfilter: %s\n", std::string(redactor.status().message()).c_str());
    return kExitError;
  }
  // Totals for the trailer, counted on FilterCaptures' thread.
  auto redaction_stats = std::make_shared<tapkit::RedactionStats>();
  if (redactor->has_value()) {
    const tapkit::Redactor& r = **redactor;
    f.redaction.apply = [&r, redaction_stats](tapkit::Exchange* x) {
      r.Apply(x, redaction_stats.get());
      return absl::OkStatus();
    };
    f.redaction.policy = r.policy();
    f.redaction.counters = [redaction_stats](std::map<std::string, uint64_t>* counters) {
      (*counters)["redaction_bodies_dropped"] += redaction_stats->bodies_dropped;
    };
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
