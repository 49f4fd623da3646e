// capture_report.cc: MakeCaptureReport (report.h), tapreplay -w. The live exchanges become an
// ordinary .tap file (format/SPEC.md) through format's Writer:
//   - the header: writer "tapreplay" at kVersion, this host, the start time, the target (also
//     the name of capture point 0, kind "replay"), each input as an extra ("tapreplay.source",
//     NAME; "<stdin>" for "-"), the selection as filters (Selection::Describe) with --sample and
//     --include-incomplete when given, and a body limit of format::kDefaultBodyLimit (64 KiB),
//     taprec's default: longer bodies are stored cut, `truncated`, with their full length;
//   - each exchange: ReplayedExchange::live on capture point 0, with replay_of the recorded
//     exchange's id (taken from `recorded` when the engine left it unset); an exchange that
//     failed (`error` set) has no response, completion no-response and the error as reason;
//     stream ids are 1, 2, 3, ... in the order the exchanges are written (completion order), so
//     they are unique within the file (SPEC.md section 4.5) whatever the engine numbered;
//   - redaction: with a Redactor (tapreplay's default, as taprec's), each live exchange is
//     redacted (Redactor::Apply) before its bodies are cut, and the header records the policy;
//   - the trailer: the summary's counts as counters ("replay_sent", "replay_matched", ...), and
//     with redaction "redaction_bodies_dropped".
// Cutting, redacting, numbering and the trailer's own counts are ExchangeCapture's
// (capture_report.h), which tapreplay --serve -w writes its passed-through exchanges with.
// Nothing here needs the replay engine: only format/ (and select/ for the options' Selection).
#include "replay/capture_report.h"

#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <utility>

#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "format/file.h"
#include "format/format.h"
#include "format/metadata.h"
#include "format/program.h"
#include "format/redact.h"
#include "format/writer.h"
#include "replay/report.h"

namespace tapkit::replay {
namespace {

// `s` with the file's name in front, unless it already starts with it (file.h's errors do).
absl::Status Named(const std::string& name, const absl::Status& s) {
  if (s.ok() || absl::StartsWith(s.message(), name)) return s;
  return absl::Status(s.code(), absl::StrCat(name, ": ", s.message()));
}

void CutBody(Body* b, uint64_t limit) {
  if (b->data.size() <= limit) return;
  b->length = std::max<uint64_t>(b->length, b->data.size());
  b->data.resize(limit);
  b->truncated = true;
}

CaptureMetadata HeaderFor(const ReplayOptions& o) {
  CaptureMetadata m = NewCaptureMetadata("tapreplay");
  m.target = o.target;
  m.command_line = o.command_line;
  m.filters = o.selection.Describe();
  if (o.sample_percent < 100.0) {
    m.filters.emplace_back("sample", absl::StrCat(o.sample_percent));
  }
  if (o.include_incomplete) m.filters.emplace_back("include-incomplete", "yes");
  m.capture_points = {CapturePointInfo{0, "replay", o.target, {}, {}}};
  for (const std::string& in : o.inputs) {
    m.extra.emplace_back("tapreplay.source", in == "-" ? "<stdin>" : in);
  }
  return m;
}

class CaptureReport final : public ReplayReport {
 public:
  explicit CaptureReport(std::unique_ptr<ExchangeCapture> capture) : capture_(std::move(capture)) {}

  void Add(const ReplayedExchange& x) override {
    Exchange e = x.live;
    e.capture_point = 0;
    if (!e.replay_of && x.recorded) {
      e.replay_of = ExchangeId{x.recorded->capture_point, x.recorded->stream_id};
    }
    if (!x.error.empty()) {
      e.response.reset();
      e.response_start_ns = 0;
      e.response_end_ns = 0;
      e.completion = Completion::kNoResponse;
      e.reason = x.error;
    }
    capture_->Add(std::move(e));
  }

  absl::Status Finish(const ReplaySummary& summary) override {
    return capture_->Close({{"replay_read", summary.read},
                            {"replay_selected_out", summary.selected_out},
                            {"replay_sampled_out", summary.sampled_out},
                            {"replay_skipped_incomplete", summary.skipped_incomplete},
                            {"replay_skipped_truncated_body", summary.skipped_truncated_body},
                            {"replay_sent", summary.sent},
                            {"replay_matched", summary.matched},
                            {"replay_mismatched", summary.mismatched},
                            {"replay_errors", summary.errors},
                            {"replay_not_compared", summary.not_compared},
                            {"replay_redacted_headers_dropped", summary.redacted_headers_dropped},
                            {"replay_redacted_values_sent", summary.redacted_values_sent},
                            {"replay_body_prefix_compared", summary.body_prefix_compared}});
  }

 private:
  std::unique_ptr<ExchangeCapture> capture_;
};

}  // namespace

absl::StatusOr<std::optional<Redactor>> CaptureRedactor(bool no_redact,
                                                        const std::string& key_file) {
  if (no_redact) return std::optional<Redactor>();
  RedactionFlags redaction = RedactionOnByDefault();
  redaction.key_file = key_file;
  return BuildRedactor(redaction);
}

ExchangeCapture::ExchangeCapture(std::unique_ptr<Writer> writer, std::optional<Redactor> redactor,
                                 uint64_t body_limit)
    : writer_(std::move(writer)), body_limit_(body_limit), redactor_(std::move(redactor)) {}

ExchangeCapture::~ExchangeCapture() = default;

absl::StatusOr<std::unique_ptr<ExchangeCapture>> ExchangeCapture::Open(
    const std::string& path, CaptureMetadata header, std::optional<Redactor> redactor,
    uint64_t body_limit) {
  if (path.empty()) return absl::InvalidArgumentError("-w: an empty file name");
  header.body_limit = body_limit;
  if (redactor) header.redaction = redactor->policy();
  absl::StatusOr<std::unique_ptr<WritableFile>> file = OpenWritableFile(path);
  if (!file.ok()) return file.status();
  std::string name = (*file)->name();
  absl::StatusOr<std::unique_ptr<Writer>> writer = Writer::Open(*std::move(file), header);
  if (!writer.ok()) return Named(name, writer.status());
  return std::unique_ptr<ExchangeCapture>(
      new ExchangeCapture(*std::move(writer), std::move(redactor), body_limit));
}

void ExchangeCapture::Add(Exchange e) {
  if (!status_.ok() || finished_) return;
  if (redactor_) redactor_->Apply(&e, &redaction_stats_);
  if (e.request) CutBody(&e.request->body, body_limit_);
  if (e.response) CutBody(&e.response->body, body_limit_);
  e.stream_id = next_stream_;
  absl::Status s = writer_->Append(e);
  if (absl::IsInvalidArgument(s)) {
    // Over a record or frame cap (nothing written, the writer goes on): told at Close.
    if (oversized_++ == 0) first_oversized_ = std::string(s.message());
    return;
  }
  if (!s.ok()) {
    status_ = Named(writer_->name(), s);
    return;
  }
  ++next_stream_;
}

absl::Status ExchangeCapture::Close(std::map<std::string, uint64_t> counters) {
  if (finished_) {
    return absl::FailedPreconditionError(absl::StrCat(writer_->name(), ": finished twice"));
  }
  finished_ = true;
  TrailerInput t;
  t.counters = std::move(counters);
  if (oversized_) t.drops["replay_oversized_exchanges"] = oversized_;
  if (redactor_) t.counters["redaction_bodies_dropped"] = redaction_stats_.bodies_dropped;
  // A writer that failed writes no trailer (SPEC.md section 5): its error is the answer.
  if (!status_.ok()) return status_;
  if (absl::Status s = writer_->Close(t); !s.ok()) return Named(writer_->name(), s);
  if (oversized_) {
    return absl::InvalidArgumentError(
        absl::StrCat(writer_->name(), ": ", oversized_, " exchange", oversized_ == 1 ? "" : "s",
                     " left out, over the format's caps (the first: ", first_oversized_, ")"));
  }
  return absl::OkStatus();
}

const std::string& ExchangeCapture::name() const { return writer_->name(); }

absl::StatusOr<std::unique_ptr<ReplayReport>> MakeCaptureReport(const std::string& path,
                                                                const ReplayOptions& options,
                                                                std::optional<Redactor> redactor) {
  CaptureMetadata header = HeaderFor(options);
  absl::StatusOr<std::unique_ptr<ExchangeCapture>> capture =
      ExchangeCapture::Open(path, std::move(header), std::move(redactor));
  if (!capture.ok()) return capture.status();
  return std::make_unique<CaptureReport>(*std::move(capture));
}

}  // namespace tapkit::replay
