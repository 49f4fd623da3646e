#include "format/output.h"

#include "format/verbose.h"
#include "format/curl_export.h"
#include "format/har.h"
#include "format/pcap_export.h"

namespace tapkit {
namespace {

// linkerd tap's req/rsp/end lines (render.h AppendText), each after its time column
// (line_time.h); no body bytes.
class TextOutput final : public ExchangeOutput {
 public:
  TextOutput(bool wide, TimeFormat time) : wide_(wide), clock_(time, 0) {}
  bool NeedsBodies() const override { return false; }
  void Begin(const OutputContext& context, std::string* out) override {
    (void)out;
    clock_ = LineClock(clock_.format(), context.capture_start_ns);
  }
  void Add(const ExchangeView& x, std::string* out) override {
    AppendText(x, wide_, out, clock_.format() == TimeFormat::kNone ? nullptr : &clock_);
  }

 private:
  bool wide_;
  LineClock clock_;
};

// --stat: every exchange counted, one table at the end (stats.h).
class StatsOutput final : public ExchangeOutput {
 public:
  StatsOutput(StatKey by, bool json) : table_(by), json_(json) {}
  bool NeedsBodies() const override { return false; }
  void Add(const ExchangeView& x, std::string* out) override {
    (void)out;
    table_.Add(x);
  }
  void Finish(std::string* out) override {
    *out += json_ ? table_.FormatJson() : table_.FormatText();
  }

 private:
  StatsTable table_;
  bool json_;
};

// One JSON object per exchange (docs/json.md), bodies included (decoded too with --body).
class JsonOutput final : public ExchangeOutput {
 public:
  explicit JsonOutput(const JsonOptions& options) : options_(options) {}
  bool NeedsBodies() const override { return true; }
  void Add(const ExchangeView& x, std::string* out) override { AppendJson(x, options_, out); }

 private:
  JsonOptions options_;
};

}  // namespace

absl::StatusOr<std::unique_ptr<ExchangeOutput>> MakeOutput(const OutputOptions& options) {
  if (options.verbose && (options.format != OutputFormat::kText || options.stat)) {
    return absl::InvalidArgumentError(
        "-V prints its own blocks; it does not combine with -o wide, -o json or --stat");
  }
  if (options.decoded_bodies && (options.format != OutputFormat::kJson || options.stat)) {
    return absl::InvalidArgumentError(
        "--body: only with -o json (-V shows the decoded bodies by itself)");
  }
  if (options.verbose) return MakeVerboseOutput(options.decode_cap);
  if (options.stat) {
    if (options.format == OutputFormat::kWide) {
      return absl::InvalidArgumentError("--stat prints text or json, not -o wide");
    }
    return std::make_unique<StatsOutput>(options.stat_by, options.format == OutputFormat::kJson);
  }
  switch (options.format) {
    case OutputFormat::kText:
      return std::make_unique<TextOutput>(false, options.time);
    case OutputFormat::kWide:
      return std::make_unique<TextOutput>(true, options.time);
    case OutputFormat::kJson: {
      JsonOptions json;
      json.decoded_bodies = options.decoded_bodies;
      json.decode_cap = options.decode_cap;
      return std::make_unique<JsonOutput>(json);
    }
    case OutputFormat::kHar:
      return MakeHarOutput();
    case OutputFormat::kCurl:
      return MakeCurlOutput();
    case OutputFormat::kPcap:
      return MakePcapOutput();
  }
  return absl::InvalidArgumentError("unknown output format");
}

}  // namespace tapkit
