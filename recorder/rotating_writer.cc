#include "recorder/rotating_writer.h"

#include <algorithm>
#include <chrono>
#include <ctime>

#include "absl/strings/str_cat.h"

namespace tapkit {
namespace {

// Steady clock, nanoseconds: -G counts whole periods from the moment a file opened (counting in
// whole seconds of the clock, as tcpdump does, makes the first file anything from 0 to 1 s long).
int64_t NowNs() {
  return std::chrono::duration_cast<std::chrono::nanoseconds>(
             std::chrono::steady_clock::now().time_since_epoch())
      .count();
}

}  // namespace

RotatingWriter::RotatingWriter(std::string path, CaptureMetadata metadata, RotationOptions options,
                               std::function<TrailerInput()> trailer)
    : path_(std::move(path)),
      metadata_(std::move(metadata)),
      options_(options),
      trailer_(std::move(trailer)) {}

RotatingWriter::~RotatingWriter() {
  if (writer_) (void)writer_->Close(trailer_ ? trailer_() : TrailerInput{});
}

std::string RotatingWriter::NameFor(uint64_t index) const {
  std::string base = path_;
  if (options_.seconds && base.find('%') != std::string::npos) {
    char buf[4096];
    std::time_t t = std::time(nullptr);
    std::tm tm{};
    localtime_r(&t, &tm);
    size_t n = std::strftime(buf, sizeof buf, base.c_str(), &tm);
    if (n > 0) base.assign(buf, n);
    return base;  // the time names each file
  }
  if (options_.max_bytes && options_.count) {
    // A ring: FILE0 .. FILE<count-1>, padded like tcpdump.
    std::string digits = std::to_string(options_.count - 1);
    std::string i = std::to_string(index % options_.count);
    return absl::StrCat(base, std::string(digits.size() - i.size(), '0'), i);
  }
  return index == 0 ? base : absl::StrCat(base, index);
}

absl::Status RotatingWriter::Open() {
  current_ = NameFor(files_);
  auto file = OpenWritableFile(current_);
  if (!file.ok()) return file.status();
  CaptureMetadata m = metadata_;
  WriterOptions wo;
  size_t batch = options_.live ? 1 : AsyncWriter::kBatch, queue = 64;
  if (options_.max_bytes) {
    // The size is known only when a segment reaches the file: segments of at most half the
    // limit (before compression), and few exchanges in flight to the writer thread, keep a
    // file within about one segment of -C.
    wo.segment_bytes = std::clamp<uint64_t>(options_.max_bytes / 2, 2 << 10, 1 << 20);
    batch = std::min<size_t>(batch, 16);
    queue = 4;
  }
  auto w = AsyncWriter::Open(*std::move(file), m, wo, queue, batch);
  if (!w.ok()) return w.status();
  writer_ = *std::move(w);
  ++files_;
  opened_at_ = NowNs();
  return absl::OkStatus();
}

absl::Status RotatingWriter::Rotate() {
  absl::Status s = writer_->Close(trailer_ ? trailer_() : TrailerInput{});
  writer_.reset();
  if (!s.ok()) return s;
  if (options_.seconds && options_.count && files_ >= options_.count) {
    return absl::OutOfRangeError(absl::StrCat("-W ", options_.count, " files written"));
  }
  return Open();
}

absl::Status RotatingWriter::Append(Exchange&& x) {
  if (!writer_) return absl::FailedPreconditionError("the capture is over");
  bool due =
      (options_.max_bytes && writer_->stats().file_bytes >= options_.max_bytes) ||
      (options_.seconds && NowNs() - opened_at_ >= int64_t(options_.seconds) * 1'000'000'000);
  if (due) {
    if (absl::Status s = Rotate(); !s.ok()) return s;
  }
  return writer_->Append(std::move(x));
}

absl::Status RotatingWriter::Tick() {
  if (!writer_) return absl::OkStatus();
  if (options_.seconds && NowNs() - opened_at_ >= int64_t(options_.seconds) * 1'000'000'000) {
    if (absl::Status s = Rotate(); !s.ok()) return s;
  }
  return writer_->Tick();
}

absl::Status RotatingWriter::Submit() {
  if (!writer_) return absl::OkStatus();
  return writer_->Submit();
}

absl::Status RotatingWriter::Close() {
  if (!writer_) return absl::OkStatus();
  absl::Status s = writer_->Close(trailer_ ? trailer_() : TrailerInput{});
  writer_.reset();
  return s;
}

}  // namespace tapkit
