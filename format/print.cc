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
      if (rep.damage()) ok = false;
    }
  }
  return ok;
}

bool WriteError(const PrintOptions& o, std::FILE* err) {
  std::fprintf(err, "%s: write error on standard output: %s\n", o.program.c_str(),
               std::strerror(errno));
  return false;
}

// --info: one report per file, each read whole in file order.
bool PrintInfo(const PrintOptions& o, std::FILE* to, std::FILE* err) {
  const char* program = o.program.c_str();
  bool ok = true;
  std::string out;
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
    // --info reads everything, bodies included, so the damage it reports is all there is.
    absl::StatusOr<std::unique_ptr<Reader>> reader = Reader::Open(*std::move(file), ro);
    if (!reader.ok()) {
      std::fprintf(err, "%s: %s\n", program, std::string(reader.status().message()).c_str());
      ok = false;
      continue;
    }
    ExchangeView x;
    InfoCounts counts;
    counts.min_key = UINT64_MAX;
    while ((*reader)->Next(&x)) {
      ++counts.exchanges;
      counts.min_key = std::min(counts.min_key, x.sort_key_ns());
      counts.max_key = std::max(counts.max_key, x.sort_key_ns());
    }
    if (counts.exchanges == 0) counts.min_key = 0;
    // JSON: one object per file (JSON Lines, as the exchanges); text and wide: the report.
    out += o.format == OutputFormat::kJson ? FormatInfoJson(**reader, counts)
                                           : FormatInfo(**reader, counts);
    if (!Flush(&out, to)) return WriteError(o, err);
    absl::Status s = (*reader)->status();
    if (!s.ok()) {
      // DataLoss: the damage was reported line by line already.
      if (!absl::IsDataLoss(s)) {
        std::fprintf(err, "%s: %s\n", program, std::string(s.message()).c_str());
      }
      ok = false;
    }
  }
  return ok;
}

}  // namespace

bool PrintCaptures(const PrintOptions& o, std::FILE* to, std::FILE* err) {
  if (o.reindex) return Reindex(o, to, err);
  if (o.info) return PrintInfo(o, to, err) && (std::fflush(to) == 0 || WriteError(o, err));
  const char* program = o.program.c_str();
  bool ok = true;
  std::string out;
  OutputOptions oo;
  oo.format = o.format;
  oo.time = o.time;
  oo.stat = o.stat;
  oo.stat_by = o.stat_by;
  oo.verbose = o.verbose;
  oo.decoded_bodies = o.decoded_bodies;
  absl::StatusOr<std::unique_ptr<ExchangeOutput>> output = MakeOutput(oo);
  if (!output.ok()) {
    std::fprintf(err, "%s: %s\n", program, std::string(output.status().message()).c_str());
    return false;
  }
  if (o.format == OutputFormat::kPcap && isatty(fileno(to))) {
    // As tshark -w - refuses a terminal: packets would only garble it.
    std::fprintf(err, "%s: pcap output is binary; redirect it to a file or pipe\n", program);
    return false;
  }
  std::vector<std::unique_ptr<LineReporter>> reporters;
  OrderOptions order;
  order.files = o.files;
  order.file_order = o.file_order;
  order.reorder_window_ns = o.reorder_window_ns;
  // Text lines need no body bytes: they skip decompressing them (and so do not check body
  // frames).
  order.headers_only = !(*output)->NeedsBodies();
  order.follow = o.follow;
  order.stop = o.stop;
  Selection selection = o.selection;  // bound below, before the first Next() calls it
  if (!selection.empty()) {
    order.keep = [&selection](const ExchangeView& v) { return selection.Matches(v); };
  }
  order.reporter_for = [&](const std::string& name) {
    reporters.push_back(std::make_unique<LineReporter>(o.program, name, &out, to, err));
    return reporters.back().get();
  };
  order.open_error = [&](const absl::Status& s) {
    if (!Flush(&out, to)) ok = false;
    std::fprintf(err, "%s: %s\n", program, std::string(s.message()).c_str());
    ok = false;
  };
  absl::StatusOr<std::unique_ptr<ExchangeSource>> source = ExchangeSource::Open(order);
  if (!source.ok()) {
    std::fprintf(err, "%s: %s\n", program, std::string(source.status().message()).c_str());
    return false;
  }
  if (selection.needs_inputs()) {
    std::vector<const Reader*> inputs;
    for (size_t i = 0; i < (*source)->inputs(); ++i) inputs.push_back((*source)->reader(i));
    if (absl::Status s = selection.Bind(inputs); !s.ok()) {
      std::fprintf(err, "%s: %s\n", program, std::string(s.message()).c_str());
      return false;
    }
  }
  // The inputs opened so far (all of them, but with --file-order) tell the output where the
  // capture starts.
  bool begun = false;
  auto begin = [&] {
    OutputContext context;
    context.capture_start_ns = UINT64_MAX;
    for (size_t i = 0; i < (*source)->inputs(); ++i) {
      if (const Reader* r = (*source)->reader(i)) {
        context.inputs.push_back(&r->metadata());
        context.capture_start_ns = std::min(context.capture_start_ns, r->metadata().start_time_ns);
      }
    }
    if (context.inputs.empty()) context.capture_start_ns = 0;
    (*output)->Begin(context, &out);
    begun = true;
  };
  ExchangeView x;
  int64_t printed = 0;
  while ((o.count < 0 || printed < o.count) && (*source)->Next(&x)) {
    if (!begun) begin();
    (*output)->Add(x, &out);
    ++printed;
    // Following, each exchange is out as soon as it prints.
    if ((o.follow || out.size() > (1 << 16)) && !Flush(&out, to)) {
      return WriteError(o, err);  // nothing more is printed
    }
  }
  if (!begun) begin();
  (*output)->Finish(&out);
  if (!Flush(&out, to)) return WriteError(o, err);
  for (size_t i = 0; i < (*source)->inputs(); ++i) {
    const Reader* r = (*source)->reader(i);
    if (!r) continue;
    absl::Status s = r->status();
    if (!s.ok()) {
      // DataLoss: the damage was reported line by line already.
      if (!absl::IsDataLoss(s)) {
        std::fprintf(err, "%s: %s\n", program, std::string(s.message()).c_str());
      }
      ok = false;
    }
  }
  for (const std::string& notice : (*output)->Notices()) {
    std::fprintf(err, "%s: notice: %s\n", program, notice.c_str());
  }
  if (uint64_t late = (*source)->late(); late > 0) {
    std::fprintf(err, "%s: notice: %s\n", program, LateNotice(late, o.reorder_window_ns).c_str());
  }
  if (std::fflush(to) != 0 || std::ferror(to)) return WriteError(o, err);
  return ok;
}

}  // namespace tapkit
