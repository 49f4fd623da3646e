#include "format/output.h"

#include "format/verbose.h"

namespace tapkit {
namespace {

// linkerd tap's req/rsp/end lines (render.h AppendText); no body bytes.
class TextOutput final : public ExchangeOutput {
 public:
  explicit TextOutput(bool wide) : wide_(wide) {}
  bool NeedsBodies() const override { return false; }
  void Add(const ExchangeView& x, std::string* out) override { AppendText(x, wide_, out); }

 private:
  bool wide_;
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
  if (options.verbose && options.format != OutputFormat::kText) {
    return absl::InvalidArgumentError(
        "-V prints its own blocks; it does not combine with -o wide or -o json");
  }
  if (options.decoded_bodies && options.format != OutputFormat::kJson) {
    return absl::InvalidArgumentError(
        "--body: only with -o json (-V shows the decoded bodies by itself)");
  }
  if (options.verbose) return MakeVerboseOutput(options.decode_cap);
  switch (options.format) {
    case OutputFormat::kText:
      return std::make_unique<TextOutput>(false);
    case OutputFormat::kWide:
      return std::make_unique<TextOutput>(true);
    case OutputFormat::kJson: {
      JsonOptions json;
      json.decoded_bodies = options.decoded_bodies;
      json.decode_cap = options.decode_cap;
      return std::make_unique<JsonOutput>(json);
    }
  }
  return absl::InvalidArgumentError("unknown output format");
}

}  // namespace tapkit
