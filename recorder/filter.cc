#include "recorder/filter.h"

#include <signal.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <memory>
#include <set>

#include "absl/strings/str_cat.h"
#include "format/print.h"
#include "format/program.h"
#include "format/select.h"
#include "recorder/rotating_writer.h"
#include "recorder/stop_signals.h"

namespace tapkit {
namespace {

bool SameFile(const std::string& a, const std::string& b) {
  struct stat sa {
  }, sb{};
  return ::stat(a.c_str(), &sa) == 0 && ::stat(b.c_str(), &sb) == 0 && sa.st_dev == sb.st_dev &&
         sa.st_ino == sb.st_ino;
}

// The capture points of one input as its trailer (else its header) lists them.
const std::vector<CapturePointInfo>& PointsOf(const Reader& r) {
  if (r.summary() && !r.summary()->capture_points.empty()) return r.summary()->capture_points;
  return r.metadata().capture_points;
}

}  // namespace

absl::Status FilterCaptures(const FilterOptions& o, std::FILE* err, FilterSummary* summary) {
  *summary = {};
  const char* program = o.program.c_str();
  if (o.inputs.empty()) return absl::InvalidArgumentError("no input file (give FILE, or -)");
  if (o.output.empty()) return absl::InvalidArgumentError("-w FILE is required (- for stdout)");
  if (o.output == "-" && o.max_bytes) {
    return absl::InvalidArgumentError("-C needs -w FILE: standard output cannot be split");
  }
  if (o.count < -1) return absl::InvalidArgumentError("-c: must be 0 or more");
  if (o.output != "-") {
    // With -C the output is out.tap, out1.tap, out2.tap, ...: none of them may be an input. The
    // files cannot outnumber the inputs' bytes over the size (plus slack for redaction markers
    // and the last, partial file), so that many names are checked.
    uint64_t names = 1;
    if (o.max_bytes) {
      uint64_t total = 0;
      for (const std::string& in : o.inputs) {
        struct stat st {};
        if (in != "-" && ::stat(in.c_str(), &st) == 0) total += static_cast<uint64_t>(st.st_size);
      }
      names = std::min<uint64_t>(2 * (total / o.max_bytes) + 2, 1'000'000);
    }
    for (uint64_t k = 0; k < names; ++k) {
      std::string name = k == 0 ? o.output : NumberedName(o.output, k);
      for (const std::string& in : o.inputs) {
        if (in != "-" && SameFile(in, name)) {
          return absl::FailedPreconditionError(absl::StrCat(
              "-w ", o.output, ": ", k ? absl::StrCat("its -C file ", name, " ") : "",
              "is the input ", in, "; refusing to overwrite it"));
        }
      }
    }
  }

  int unreadable = 0;
  std::vector<std::unique_ptr<LineReporter>> reporters;
  OrderOptions order;
  order.files = o.inputs;
  order.reorder_window_ns = o.reorder_window_ns;
  order.keep = o.keep;
  order.reporter_for = [&](const std::string& name) {
    reporters.push_back(std::make_unique<LineReporter>(o.program, name, nullptr, nullptr, err));
    return reporters.back().get();
  };
  order.open_error = [&](const absl::Status& s) {
    ++unreadable;
    std::fprintf(err, "%s: %s\n", program, std::string(s.message()).c_str());
  };
  absl::StatusOr<std::unique_ptr<ExchangeSource>> opened = ExchangeSource::Open(order);
  if (!opened.ok()) return opened.status();
  ExchangeSource& source = **opened;
  if (o.bind) {
    std::vector<const Reader*> readers;
    for (size_t i = 0; i < source.inputs(); ++i) readers.push_back(source.reader(i));
    if (absl::Status s = o.bind(readers); !s.ok()) return s;
  }

  // The header, from the inputs' headers (filter.h says how).
  // The start time is the earliest input's (below).
  CaptureMetadata meta = NewCaptureMetadata("tapfilter");
  meta.command_line = o.command_line;
  meta.body_limit = 0;
  std::vector<uint32_t> base(source.inputs(), 0);
  bool first = true, all_redacted = true, all_keyed = true, all_labelled = true;
  // What every input redacted (intersections), to which the redaction here adds its own.
  std::vector<std::string> redacted_headers, redacted_params, redacted_fields;
  auto keep_common = [](std::vector<std::string>* mine, const std::vector<std::string>& theirs) {
    std::erase_if(*mine, [&](const std::string& h) {
      return std::find(theirs.begin(), theirs.end(), h) == theirs.end();
    });
  };
  auto add_missing = [](std::vector<std::string>* to, const std::vector<std::string>& more) {
    for (const std::string& h : more) {
      if (std::find(to->begin(), to->end(), h) == to->end()) to->push_back(h);
    }
  };
  std::vector<std::pair<std::string, std::string>> input_filters;
  bool same_filters = true, same_target = true;
  uint32_t next_base = 0;
  for (size_t i = 0; i < source.inputs(); ++i) {
    const std::string name = o.inputs[i] == "-" ? "<stdin>" : o.inputs[i];
    meta.extra.emplace_back("tapfilter.source", name);
    const Reader* r = source.reader(i);
    if (!r) continue;
    const CaptureMetadata& m = r->metadata();
    base[i] = next_base;
    uint32_t top = 0;
    bool any = false;
    for (const CapturePointInfo& cp : PointsOf(*r)) {
      top = std::max(top, cp.id);
      any = true;
    }
    next_base += any ? top + 1 : 0;
    if (first) {
      meta.start_time_ns = m.start_time_ns;
      meta.target = m.target;
      meta.ns = m.ns;
      input_filters = m.filters;
      redacted_headers = m.redaction.headers;
      redacted_params = m.redaction.query_params;
      redacted_fields = m.redaction.json_fields;
    } else {
      meta.start_time_ns = std::min(meta.start_time_ns, m.start_time_ns);
      same_target = same_target && meta.target == m.target && meta.ns == m.ns;
      same_filters = same_filters && input_filters == m.filters;
      keep_common(&redacted_headers, m.redaction.headers);
      keep_common(&redacted_params, m.redaction.query_params);
      keep_common(&redacted_fields, m.redaction.json_fields);
    }
    first = false;
    all_labelled = all_labelled && EndpointsLabelled(m);
    all_redacted = all_redacted && m.redaction.enabled;
    all_keyed = all_keyed && m.redaction.keyed;
    meta.body_limit = std::max(meta.body_limit, m.body_limit);
  }
  if (first) {
    // No input opened: nothing to write, and the errors were told.
    return absl::DataLossError(
        absl::StrCat("no input could be read (", unreadable, " unreadable)"));
  }
  if (!same_target) meta.target.clear(), meta.ns.clear();
  // Merged inputs with different targets or inventories lose those header fields, not the
  // labels on their exchanges: say so, for a workload selection on the output (select.h).
  if (all_labelled) meta.extra.emplace_back("endpoint-labels", "yes");
  if (same_filters) meta.filters = input_filters;
  for (const auto& f : o.selection) {
    if (!f.second.empty()) meta.filters.push_back(f);
  }
  meta.redaction.enabled = all_redacted || static_cast<bool>(o.redaction.apply);
  if (all_redacted) {
    meta.redaction.headers = redacted_headers;
    meta.redaction.query_params = redacted_params;
    meta.redaction.json_fields = redacted_fields;
  }
  meta.redaction.keyed = all_redacted && all_keyed;
  if (o.redaction.apply) {
    add_missing(&meta.redaction.headers, o.redaction.policy.headers);
    add_missing(&meta.redaction.query_params, o.redaction.policy.query_params);
    add_missing(&meta.redaction.json_fields, o.redaction.policy.json_fields);
    meta.redaction.keyed = (all_redacted ? all_keyed : true) && o.redaction.policy.keyed;
    meta.extra.insert(meta.extra.end(), o.redaction.description.begin(),
                      o.redaction.description.end());
  }
  auto renumbered = [&](const std::vector<CapturePointInfo>& points, size_t input) {
    std::vector<CapturePointInfo> out = points;
    for (CapturePointInfo& cp : out) cp.id += base[input];
    return out;
  };
  for (size_t i = 0; i < source.inputs(); ++i) {
    if (const Reader* r = source.reader(i)) {
      std::vector<CapturePointInfo> p = renumbered(r->metadata().capture_points, i);
      meta.capture_points.insert(meta.capture_points.end(), p.begin(), p.end());
    }
  }

  auto trailer = [&]() {
    TrailerInput t;
    for (size_t i = 0; i < source.inputs(); ++i) {
      const Reader* r = source.reader(i);
      if (!r) continue;
      if (r->summary()) {
        for (const auto& [k, v] : r->summary()->drops) t.drops[k] += v;
        for (const auto& [k, v] : r->summary()->counters) t.counters[k] += v;
      }
      std::vector<CapturePointInfo> p = renumbered(PointsOf(*r), i);
      t.capture_points.insert(t.capture_points.end(), p.begin(), p.end());
    }
    t.counters["selected_out"] += source.selected_out();
    if (o.redaction.counters) o.redaction.counters(&t.counters);
    return t;
  };
  RotationOptions rotation;
  rotation.max_bytes = o.max_bytes;
  // A few batches in flight keep the writer thread busy; more would only hold memory (the
  // inputs may be far larger than memory).
  rotation.queue_batches = 4;
  RotatingWriter writer(o.output, meta, rotation, trailer);
  if (absl::Status s = writer.Open(); !s.ok()) return s;

  absl::Status failed;
  ExchangeView v;
  size_t input = 0;
  // SA_RESTART: a read goes on after the signal, and the loop stops at the next exchange.
  StopSignals signals(/*restart=*/true, /*ignore_sigpipe=*/false);
  bool interrupted = false;
  while (o.count < 0 || static_cast<int64_t>(summary->exchanges) < o.count) {
    if (StopSignals::stopped()) {
      interrupted = true;
      break;
    }
    if (!source.Next(&v, &input)) break;
    Exchange x = v.ToExchange();
    x.capture_point += base[input];
    if (o.redaction.apply) {
      if (absl::Status s = o.redaction.apply(&x); !s.ok()) {
        failed = s;
        break;
      }
    }
    if (absl::Status s = writer.Append(std::move(x)); !s.ok()) {
      failed = s;
      break;
    }
    ++summary->exchanges;
  }
  summary->selected_out = source.selected_out();
  summary->late = source.late();
  summary->files = writer.files();
  absl::Status closed = writer.Close();
  if (!failed.ok()) return failed;
  if (!closed.ok()) return closed;
  if (interrupted) {
    const int sig = StopSignals::last_signal();
    return absl::CancelledError(absl::StrCat(
        "interrupted by ", sig == SIGTERM ? "SIGTERM" : "SIGINT", ": ", summary->exchanges,
        summary->exchanges == 1 ? " exchange" : " exchanges",
        " written; the output ends there, with its index and trailer"));
  }
  if (summary->late > 0) {
    std::fprintf(err, "%s: notice: %s\n", program,
                 LateNotice(summary->late, o.reorder_window_ns).c_str());
  }
  int damaged = 0;
  for (size_t i = 0; i < source.inputs(); ++i) {
    const Reader* r = source.reader(i);
    if (!r || r->status().ok()) continue;
    ++damaged;
    // DataLoss was reported line by line already; a read error was not.
    if (!absl::IsDataLoss(r->status())) {
      std::fprintf(err, "%s: %s\n", program, std::string(r->status().message()).c_str());
    }
  }
  if (damaged || unreadable) {
    return absl::DataLossError(
        absl::StrCat(damaged + unreadable, damaged + unreadable == 1 ? " input" : " inputs",
                     " damaged or unreadable; what could be read was written (", summary->exchanges,
                     summary->exchanges == 1 ? " exchange)" : " exchanges)"));
  }
  return absl::OkStatus();
}

}  // namespace tapkit
