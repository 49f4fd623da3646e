#include "recorder/rotating_writer.h"

#include <sys/stat.h>

#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstdint>
#include <cstdlib>
#include <ctime>

#include "absl/strings/str_cat.h"
#include "absl/time/clock.h"

namespace tapkit {
namespace {

// Steady clock, nanoseconds: -G counts whole periods from the moment a file opened (counting in
// whole seconds of the clock, as tcpdump does, makes the first file anything from 0 to 1 s long).
int64_t NowNs() {
  return std::chrono::duration_cast<std::chrono::nanoseconds>(
             std::chrono::steady_clock::now().time_since_epoch())
      .count();
}

// About the bytes `x` takes in a segment before compression: header fields and kept bodies,
// plus the fixed fields. An overestimate of what it adds to the file once compressed.
uint64_t RoughSize(const Exchange& x) {
  uint64_t n = 128;
  auto fields = [&n](const std::vector<Header>& hs) {
    for (const Header& h : hs) n += h.name.size() + h.value.size() + 8;
  };
  if (x.request) {
    n += x.request->method.size() + x.request->path.size() + x.request->authority.size() +
         x.request->body.data.size();
    fields(x.request->headers);
    fields(x.request->trailers);
  }
  for (const InterimResponse& i : x.interim) fields(i.headers);
  if (x.response) {
    n += x.response->reason.size() + x.response->body.data.size();
    fields(x.response->headers);
    fields(x.response->trailers);
  }
  return n;
}

}  // namespace

std::string NumberedName(const std::string& path, uint64_t index, size_t width) {
  std::string n = std::to_string(index);
  if (n.size() < width) n.insert(0, width - n.size(), '0');
  size_t slash = path.rfind('/');
  size_t base = slash == std::string::npos ? 0 : slash + 1;
  size_t dot = path.rfind('.');
  // No extension, or only a leading dot (".tap" is a hidden file's name, not an extension).
  if (dot == std::string::npos || dot <= base) return path + n;
  return absl::StrCat(path.substr(0, dot), n, path.substr(dot));
}

RotatingWriter::RotatingWriter(std::string path, CaptureMetadata metadata, RotationOptions options,
                               std::function<TrailerInput()> trailer)
    : path_(std::move(path)),
      metadata_(std::move(metadata)),
      options_(options),
      trailer_(std::move(trailer)) {}

uint64_t ParseRotationSize(const std::string& text) {
  char* end = nullptr;
  double v = std::strtod(text.c_str(), &end);
  uint64_t unit = 1000000;
  if (end && *end) {
    std::string suffix(end);
    unit = suffix == "k" || suffix == "K"   ? 1024
           : suffix == "m" || suffix == "M" ? 1048576
           : suffix == "g" || suffix == "G" ? 1073741824
                                            : 0;
  }
  if (!(v > 0) || unit == 0 || end == text.c_str()) return 0;
  // A size past what a file can be (2^63 bytes) is not a size either (and would overflow).
  if (!std::isfinite(v) || v * static_cast<double>(unit) >= 0x1p63) return 0;
  return static_cast<uint64_t>(v * unit);
}

RotatingWriter::~RotatingWriter() {
  if (writer_) (void)writer_->Close(trailer_ ? trailer_() : TrailerInput{});
}

std::string RotatingWriter::NameFor(uint64_t index, int64_t time_ns) const {
  std::string base = path_;
  if (options_.seconds && base.find('%') != std::string::npos) {
    char buf[4096];
    std::time_t t = static_cast<std::time_t>(time_ns / 1'000'000'000);
    std::tm tm{};
    localtime_r(&t, &tm);
    size_t n = std::strftime(buf, sizeof buf, base.c_str(), &tm);
    if (n > 0) base.assign(buf, n);
    return base;  // the time names each file
  }
  if (options_.max_bytes && options_.count) {
    // A ring: out0.tap .. out<count-1>.tap, padded like tcpdump.
    return NumberedName(base, index % options_.count, std::to_string(options_.count - 1).size());
  }
  return index == 0 ? base : NumberedName(base, index);
}

bool RotatingWriter::Due(int64_t now_ns) const {
  // Saturating: a period past the clock's range is never due (taprec refuses -G over 1e9 s).
  constexpr uint64_t kMaxSeconds = INT64_MAX / 1'000'000'000;
  if (!options_.seconds) return false;
  if (options_.seconds > kMaxSeconds) return false;
  return now_ns - opened_at_ >= static_cast<int64_t>(options_.seconds) * 1'000'000'000;
}

absl::Status RotatingWriter::Open() {
  int64_t wall = absl::GetCurrentTimeNanos();
  current_ = NameFor(files_, options_.capture_clock && clock_started_ ? opened_at_ : wall);
  if (options_.max_bytes && options_.count && files_ >= options_.count && options_.notice) {
    options_.notice(absl::StrCat("-W ", options_.count, ": overwriting ", current_,
                                 ", the oldest file of the ring"));
  }
  if (options_.never_overwrite) {
    struct stat st {};
    if (::stat(current_.c_str(), &st) == 0 &&
        static_cast<uint64_t>(st.st_dev) == options_.never_overwrite->device &&
        static_cast<uint64_t>(st.st_ino) == options_.never_overwrite->inode) {
      return absl::FailedPreconditionError(absl::StrCat(
          "-w ", current_, ": is the capture being read (-r); refusing to overwrite it"));
    }
  }
  auto file = OpenWritableFile(current_, options_.no_follow);
  if (!file.ok()) return file.status();
  CaptureMetadata m = metadata_;
  WriterOptions wo;
  size_t batch = options_.live ? 1 : AsyncWriter::kBatch;
  size_t queue = options_.queue_batches ? options_.queue_batches : 64;
  if (options_.max_bytes) {
    // The size is known only when a segment reaches the file: segments of at most half the
    // limit (before compression), and few exchanges in flight to the writer thread, keep a
    // file within about one segment of -C.
    wo.segment_bytes = std::clamp<uint64_t>(options_.max_bytes / 2, 2 << 10, 1 << 20);
    batch = std::min<size_t>(batch, 16);
    queue = std::min<size_t>(queue, 4);
  }
  auto w = AsyncWriter::Open(*std::move(file), m, wo, queue, batch);
  if (!w.ok()) return w.status();
  writer_ = *std::move(w);
  unwritten_bytes_ = 0;
  ++files_;
  if (!options_.capture_clock) opened_at_ = NowNs();
  return absl::OkStatus();
}

absl::Status RotatingWriter::Rotate() {
  absl::Status s = writer_->Close(trailer_ ? trailer_() : TrailerInput{});
  writer_.reset();
  if (!s.ok()) return s;
  if (options_.seconds && options_.count && files_ >= options_.count) {
    return absl::OutOfRangeError(
        absl::StrCat("-W ", options_.count, options_.count == 1 ? " file" : " files", " written"));
  }
  return Open();
}

absl::Status RotatingWriter::Append(Exchange&& x) {
  if (!writer_) return absl::FailedPreconditionError("the capture is over");
  bool due = false;
  if (options_.max_bytes) {
    // The file's size is known only for segments written, and a fast producer (taprec -r) may
    // have many exchanges in flight: once what is in flight could reach the limit, they are
    // written first, so the file ends within about one exchange of -C, as tcpdump's does.
    uint64_t known = writer_->stats().file_bytes;
    if (known < options_.max_bytes && known + unwritten_bytes_ >= options_.max_bytes) {
      if (absl::Status s = writer_->Flush(); !s.ok()) return s;
      unwritten_bytes_ = 0;
      known = writer_->stats().file_bytes;
    }
    due = known >= options_.max_bytes;
  }
  if (options_.capture_clock && options_.seconds) {
    // Capture time: the period starts at the first exchange, and each new file at the exchange
    // that opened it (a capture with a long silence gets no empty files for it).
    int64_t t = static_cast<int64_t>(x.sort_key_ns);
    if (!clock_started_) {
      clock_started_ = true;
      opened_at_ = t;
    } else if (Due(t)) {
      opened_at_ = t;
      due = true;
    }
  } else if (Due(NowNs())) {
    due = true;
  }
  if (due) {
    if (absl::Status s = Rotate(); !s.ok()) return s;
  }
  if (options_.max_bytes) unwritten_bytes_ += RoughSize(x);
  return writer_->Append(std::move(x));
}

absl::Status RotatingWriter::Tick() {
  if (!writer_) return absl::OkStatus();
  if (!options_.capture_clock && Due(NowNs())) {
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
