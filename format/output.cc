#include "format/output.h"

#include "format/curl_export.h"
#include "format/har.h"
#include "format/pcap_export.h"

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

// One JSON object per exchange (docs/json.md), bodies included.
class JsonOutput final : public ExchangeOutput {
 public:
  bool NeedsBodies() const override { return true; }
  void Add(const ExchangeView& x, std::string* out) override { AppendJson(x, out); }
};

}  // namespace

absl::StatusOr<std::unique_ptr<ExchangeOutput>> MakeOutput(const OutputOptions& options) {
  switch (options.format) {
    case OutputFormat::kText:
      return std::make_unique<TextOutput>(false);
    case OutputFormat::kWide:
      return std::make_unique<TextOutput>(true);
    case OutputFormat::kJson:
      return std::make_unique<JsonOutput>();
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
