#include "format/print.h"

#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <memory>

#include "format/file.h"
#include "format/output.h"
#include "format/reader.h"

namespace tapkit {
namespace {

// Writes `out` to `to` and empties it. False on a write error (a full disk, a closed pipe with
// SIGPIPE ignored).
bool Flush(std::string* out, std::FILE* to) {
  bool ok = out->empty() || std::fwrite(out->data(), 1, out->size(), to) == out->size();
  out->clear();
  return ok && std::fflush(to) == 0;
}

// Prints each skipped range and notice as one line naming the file and offset, after the
// exchanges printed so far (so lines keep file order). Counts the damage.
class LineReporter final : public Reporter {
 public:
  LineReporter(const std::string& program, std::string file, std::string* pending, std::FILE* out,
               std::FILE* err)
      : program_(program), file_(std::move(file)), pending_(pending), out_(out), err_(err) {}
  void Corruption(uint64_t offset, uint64_t length, std::string_view reason) override {
    ++damage;
    if (pending_) Flush(pending_, out_);
    std::fprintf(err_, "%s: %s: offset %llu: %.*s (%llu bytes skipped)\n", program_.c_str(),
                 file_.c_str(), static_cast<unsigned long long>(offset),
                 static_cast<int>(reason.size()), reason.data(),
                 static_cast<unsigned long long>(length));
  }
  void Notice(uint64_t offset, std::string_view message) override {
    if (pending_) Flush(pending_, out_);
    std::fprintf(err_, "%s: %s: offset %llu: notice: %.*s\n", program_.c_str(), file_.c_str(),
                 static_cast<unsigned long long>(offset), static_cast<int>(message.size()),
                 message.data());
  }
  int damage = 0;

 private:
  const std::string& program_;
  std::string file_;
  std::string* pending_;
  std::FILE* out_;
  std::FILE* err_;
};

bool Reindex(const PrintOptions& o, std::FILE* out, std::FILE* err) {
  bool ok = true;
  for (const std::string& f : o.files) {
    // Damage found on the way is reported line by line and is an error, as when reading; the
    // index is written all the same.
    LineReporter rep(o.program, f, nullptr, out, err);
    bool rebuilt = false;
    absl::Status s = RebuildIndex(f, &rep, &rebuilt);
    if (!s.ok()) {
      std::fprintf(err, "%s: %s\n", o.program.c_str(), std::string(s.message()).c_str());
      ok = false;
    } else {
      std::fprintf(err, "%s: %s: %s\n", o.program.c_str(), f.c_str(),
                   rebuilt ? "index and trailer written" : "already has a trailer; unchanged");
      if (rep.damage) ok = false;
    }
  }
  return ok;
}

}  // namespace

bool PrintCaptures(const PrintOptions& o, std::FILE* to, std::FILE* err) {
  if (o.reindex) return Reindex(o, to, err);
  const char* program = o.program.c_str();
  bool ok = true;
  std::string out;
  int64_t printed = 0;
  OutputOptions oo;
  oo.format = o.format;
  oo.time = o.time;
  oo.stat = o.stat;
  oo.stat_by = o.stat_by;
  absl::StatusOr<std::unique_ptr<ExchangeOutput>> output = MakeOutput(oo);
  if (!output.ok()) {
    std::fprintf(err, "%s: %s\n", program, std::string(output.status().message()).c_str());
    return false;
  }
  if (o.format == OutputFormat::kPcap && !o.info && isatty(fileno(to))) {
    // As tshark -w - refuses a terminal: packets would only garble it.
    std::fprintf(err, "%s: pcap output is binary; redirect it to a file or pipe\n", program);
    return false;
  }
  bool begun = false;
  for (const std::string& path : o.files) {
    absl::StatusOr<std::unique_ptr<ReadableFile>> file = OpenReadableFile(path);
    if (!file.ok()) {
      std::fprintf(err, "%s: %s\n", program, std::string(file.status().message()).c_str());
      ok = false;
      continue;
    }
    LineReporter reporter(o.program, (*file)->name(), &out, to, err);
    ReaderOptions ro;
    ro.reporter = &reporter;
    // Text lines need no body bytes: they skip decompressing them (and so do not check body
    // frames). --info reads everything, so the damage it reports is all the damage there is.
    ro.headers_only = !o.info && !(*output)->NeedsBodies();
    absl::StatusOr<std::unique_ptr<Reader>> reader = Reader::Open(*std::move(file), ro);
    if (!reader.ok()) {
      std::fprintf(err, "%s: %s\n", program, std::string(reader.status().message()).c_str());
      ok = false;
      continue;
    }
    ExchangeView x;
    InfoCounts counts;
    counts.min_key = UINT64_MAX;
    while ((o.count < 0 || printed < o.count || o.info) && (*reader)->Next(&x)) {
      if (o.info) {
        ++counts.exchanges;
        counts.min_key = std::min(counts.min_key, x.sort_key_ns());
        counts.max_key = std::max(counts.max_key, x.sort_key_ns());
        continue;
      }
      if (!begun) {
        OutputContext context;
        context.inputs.push_back(&(*reader)->metadata());
        context.capture_start_ns = (*reader)->metadata().start_time_ns;
        (*output)->Begin(context, &out);
        begun = true;
      }
      (*output)->Add(x, &out);
      ++printed;
      if (out.size() > (1 << 16) && !Flush(&out, to)) {
        std::fprintf(err, "%s: write error on standard output: %s\n", program,
                     std::strerror(errno));
        return false;  // nothing more is printed
      }
    }
    if (o.info) {
      if (counts.exchanges == 0) counts.min_key = 0;
      // JSON: one object per file (JSON Lines, as the exchanges); text and wide: the report.
      out += o.format == OutputFormat::kJson ? FormatInfoJson(**reader, counts)
                                             : FormatInfo(**reader, counts);
    }
    if (!Flush(&out, to)) {
      std::fprintf(err, "%s: write error on standard output: %s\n", program, std::strerror(errno));
      return false;
    }
    absl::Status s = (*reader)->status();
    if (!s.ok()) {
      // DataLoss: the damage was reported line by line already.
      if (!absl::IsDataLoss(s)) {
        std::fprintf(err, "%s: %s\n", program, std::string(s.message()).c_str());
      }
      ok = false;
    }
    if (o.count >= 0 && printed >= o.count && !o.info) break;
  }
  if (!o.info) {
    if (!begun) (*output)->Begin(OutputContext{}, &out);
    (*output)->Finish(&out);
    if (!Flush(&out, to)) {
      std::fprintf(err, "%s: write error on standard output: %s\n", program, std::strerror(errno));
      return false;
    }
  }
  if (std::fflush(to) != 0 || std::ferror(to)) {
    std::fprintf(err, "%s: write error on standard output: %s\n", program, std::strerror(errno));
    return false;
  }
  return ok;
}

}  // namespace tapkit
