#include "format/output.h"

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

// One JSON object per exchange (docs/json.md), bodies included.
class JsonOutput final : public ExchangeOutput {
 public:
  bool NeedsBodies() const override { return true; }
  void Add(const ExchangeView& x, std::string* out) override { AppendJson(x, out); }
};

}  // namespace

absl::StatusOr<std::unique_ptr<ExchangeOutput>> MakeOutput(const OutputOptions& options) {
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
    case OutputFormat::kJson:
      return std::make_unique<JsonOutput>();
  }
  return absl::InvalidArgumentError("unknown output format");
}

}  // namespace tapkit
