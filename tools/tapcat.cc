// tapcat: prints the exchanges of .tap capture files.
//
//   tapcat [-o text|wide|json] [-c N] [--info] [--reindex] FILE|- ...
//
// --info prints a report per file; with -o json, one JSON object per file (docs/json.md).
//
// Exit status (DESIGN.md section 4): 0 success (a torn tail is a notice, not a failure), 2 usage
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
#include "format/reader.h"
#include "format/render.h"

namespace po = boost::program_options;

namespace {

using tapkit::kExitError;
using tapkit::kExitOk;

// Writes `out` to standard output and empties it. False on a write error (a full disk, a closed
// pipe with SIGPIPE ignored).
bool Flush(std::string* out) {
  bool ok = out->empty() || std::fwrite(out->data(), 1, out->size(), stdout) == out->size();
  out->clear();
  return ok && std::fflush(stdout) == 0;
}

// Prints each skipped range and notice as one stderr line naming the file and offset, after the
// exchanges printed so far (so lines keep file order).
class StderrReporter final : public tapkit::Reporter {
 public:
  StderrReporter(std::string file, std::string* pending)
      : file_(std::move(file)), pending_(pending) {}
  void Corruption(uint64_t offset, uint64_t length, std::string_view reason) override {
    if (pending_) Flush(pending_);
    std::fprintf(stderr, "tapcat: %s: offset %llu: %.*s (%llu bytes skipped)\n", file_.c_str(),
                 static_cast<unsigned long long>(offset), static_cast<int>(reason.size()),
                 reason.data(), static_cast<unsigned long long>(length));
  }
  void Notice(uint64_t offset, std::string_view message) override {
    if (pending_) Flush(pending_);
    std::fprintf(stderr, "tapcat: %s: offset %llu: notice: %.*s\n", file_.c_str(),
                 static_cast<unsigned long long>(offset), static_cast<int>(message.size()),
                 message.data());
  }

 private:
  std::string file_;
  std::string* pending_;
};

}  // namespace

int main(int argc, char** argv) {
  std::string output = "text";
  int64_t count = -1;
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
  tapkit::OutputFormat format;
  if (output == "text") {
    format = tapkit::OutputFormat::kText;
  } else if (output == "wide") {
    format = tapkit::OutputFormat::kWide;
  } else if (output == "json") {
    format = tapkit::OutputFormat::kJson;
  } else {
    std::fprintf(stderr, "tapcat: -o %s: unknown output (text, wide, json)\n", output.c_str());
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
  bool info = vm.count("info") > 0;
  int rc = kExitOk;

  if (vm.count("reindex")) {
    for (const std::string& f : files) {
      // Damage found on the way is reported line by line and makes the exit status 2, as when
      // reading; the index is written all the same.
      class Counting final : public tapkit::Reporter {
       public:
        explicit Counting(tapkit::Reporter* inner) : inner_(inner) {}
        void Corruption(uint64_t o, uint64_t l, std::string_view r) override {
          ++damage;
          inner_->Corruption(o, l, r);
        }
        void Notice(uint64_t o, std::string_view m) override { inner_->Notice(o, m); }
        int damage = 0;

       private:
        tapkit::Reporter* inner_;
      };
      StderrReporter rep(f, nullptr);
      Counting counting(&rep);
      bool rebuilt = false;
      absl::Status s = tapkit::RebuildIndex(f, &counting, &rebuilt);
      if (!s.ok()) {
        std::fprintf(stderr, "tapcat: %s\n", std::string(s.message()).c_str());
        rc = kExitError;
      } else {
        std::fprintf(stderr, "tapcat: %s: %s\n", f.c_str(),
                     rebuilt ? "index and trailer written" : "already has a trailer; unchanged");
        if (counting.damage) rc = kExitError;
      }
    }
    return rc;
  }

  std::string out;
  int64_t printed = 0;
  for (const std::string& path : files) {
    absl::StatusOr<std::unique_ptr<tapkit::ReadableFile>> file = tapkit::OpenReadableFile(path);
    if (!file.ok()) {
      std::fprintf(stderr, "tapcat: %s\n", std::string(file.status().message()).c_str());
      rc = kExitError;
      continue;
    }
    StderrReporter reporter((*file)->name(), &out);
    tapkit::ReaderOptions ro;
    ro.reporter = &reporter;
    // Text lines need no body bytes: they skip decompressing them (and so do not check body
    // frames). --info reads everything, so the damage it reports is all the damage there is.
    ro.headers_only = !info && format != tapkit::OutputFormat::kJson;
    absl::StatusOr<std::unique_ptr<tapkit::Reader>> reader =
        tapkit::Reader::Open(*std::move(file), ro);
    if (!reader.ok()) {
      std::fprintf(stderr, "tapcat: %s\n", std::string(reader.status().message()).c_str());
      rc = kExitError;
      continue;
    }
    tapkit::ExchangeView x;
    tapkit::InfoCounts counts;
    counts.min_key = UINT64_MAX;
    while ((count < 0 || printed < count || info) && (*reader)->Next(&x)) {
      if (info) {
        ++counts.exchanges;
        counts.min_key = std::min(counts.min_key, x.sort_key_ns());
        counts.max_key = std::max(counts.max_key, x.sort_key_ns());
        continue;
      }
      if (format == tapkit::OutputFormat::kJson) {
        tapkit::AppendJson(x, &out);
      } else {
        tapkit::AppendText(x, format == tapkit::OutputFormat::kWide, &out);
      }
      ++printed;
      if (out.size() > (1 << 16) && !Flush(&out)) break;
    }
    if (info) {
      if (counts.exchanges == 0) counts.min_key = 0;
      // -o json: one object per file (JSON Lines, as the exchanges); text and wide: the report.
      out += format == tapkit::OutputFormat::kJson ? tapkit::FormatInfoJson(**reader, counts)
                                                   : tapkit::FormatInfo(**reader, counts);
    }
    if (!Flush(&out)) {
      std::fprintf(stderr, "tapcat: write error on standard output: %s\n", std::strerror(errno));
      return kExitError;
    }
    absl::Status s = (*reader)->status();
    if (!s.ok()) {
      if (!absl::IsDataLoss(s)) {
        std::fprintf(stderr, "tapcat: %s\n", std::string(s.message()).c_str());
      }
      rc = kExitError;  // damage was reported line by line already
    }
    if (count >= 0 && printed >= count && !info) break;
  }
  if (std::fflush(stdout) != 0 || std::ferror(stdout)) {
    std::fprintf(stderr, "tapcat: write error on standard output: %s\n", std::strerror(errno));
    return kExitError;
  }
  return rc;
}
