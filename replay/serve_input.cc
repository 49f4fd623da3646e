// serve_input.cc: ReadServedExchanges (serve.h), the exchanges tapreplay --serve indexes.
//
// The inputs are read through format/order.h's ExchangeSource, the merge tapcat and tapfilter
// use: sort-key order across files, ties broken by capture point, stream id and the files' order,
// the selection run on each exchange as it is read (before it is held). -c counts what the
// selection kept. Damage in the middle of a file is an error naming the file and offset (the
// served responses would silently lack what it held); a torn tail is a notice, as tapcat says it.
#include <memory>
#include <string>
#include <utility>
#include <vector>

#include "absl/status/status.h"
#include "absl/strings/str_cat.h"
#include "format/order.h"
#include "format/reader.h"
#include "replay/serve.h"

namespace tapkit::replay {
namespace {

// One input's reports: the first damage as one error line, the notices as tapcat's lines.
class ServedInputReporter final : public Reporter {
 public:
  ServedInputReporter(std::string name, std::string* first_damage)
      : name_(std::move(name)), first_damage_(first_damage) {}
  void Corruption(uint64_t offset, uint64_t length, std::string_view reason) override {
    if (first_damage_->empty()) {
      *first_damage_ = absl::StrCat(name_, ": offset ", offset, ": ", std::string(reason), " (",
                                    length, " bytes skipped)");
    }
  }
  void Notice(uint64_t offset, std::string_view message) override {
    notices_.push_back(
        absl::StrCat(name_, ": offset ", offset, ": notice: ", std::string(message)));
  }
  const std::string& name() const { return name_; }
  const std::vector<std::string>& notices() const { return notices_; }

 private:
  std::string name_;
  std::string* first_damage_;
  std::vector<std::string> notices_;
};

}  // namespace

absl::StatusOr<std::vector<Exchange>> ReadServedExchanges(const std::vector<std::string>& paths,
                                                          Selection* selection,
                                                          std::vector<std::string>* notices,
                                                          ServedInputs* read) {
  if (paths.empty()) return absl::InvalidArgumentError("no input file");
  std::string damage;
  std::vector<std::unique_ptr<ServedInputReporter>> reporters;
  absl::Status open_error;
  OrderOptions order;
  order.files = paths;
  if (selection != nullptr && !selection->empty()) {
    order.keep = [selection](const ExchangeView& v) { return selection->Matches(v); };
  }
  order.reporter_for = [&](const std::string& name) {
    reporters.push_back(std::make_unique<ServedInputReporter>(name, &damage));
    return reporters.back().get();
  };
  order.open_error = [&](const absl::Status& s) {
    if (open_error.ok()) open_error = s;
  };
  absl::StatusOr<std::unique_ptr<ExchangeSource>> source = ExchangeSource::Open(std::move(order));
  if (!source.ok()) return source.status();
  if (!open_error.ok()) return open_error;
  if (selection != nullptr && selection->needs_inputs()) {
    std::vector<const Reader*> readers;
    for (size_t i = 0; i < (*source)->inputs(); ++i) readers.push_back((*source)->reader(i));
    if (absl::Status s = selection->Bind(readers); !s.ok()) return s;
  }
  const int64_t count = selection != nullptr ? selection->count() : -1;
  std::vector<Exchange> out;
  std::vector<size_t> input_of;
  ExchangeView view;
  size_t input = 0;
  while ((count < 0 || out.size() < static_cast<uint64_t>(count)) &&
         (*source)->Next(&view, &input)) {
    if (!damage.empty()) break;
    out.push_back(view.ToExchange());
    input_of.push_back(input);
  }
  if (!damage.empty()) return absl::DataLossError(damage);
  if (read != nullptr) {
    read->examined = out.size() + (*source)->selected_out();
    read->input_of = std::move(input_of);
  }
  for (size_t i = 0; i < (*source)->inputs(); ++i) {
    const Reader* r = (*source)->reader(i);
    if (r != nullptr && !r->status().ok()) return r->status();
  }
  if (notices != nullptr) {
    for (const auto& rep : reporters) {
      for (const std::string& line : rep->notices()) notices->push_back(line);
    }
  }
  return out;
}

}  // namespace tapkit::replay
