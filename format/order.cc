#include "format/order.h"

#include <time.h>

#include <algorithm>
#include <cmath>
#include <deque>
#include <limits>
#include <set>

#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"

namespace tapkit {
namespace {

constexpr uint64_t kNoBound = std::numeric_limits<uint64_t>::max();

// A segment some held exchanges point into, and how many.
struct HeldSegment {
  std::shared_ptr<const Segment> segment;
  uint32_t pending = 0;
};

// One exchange waiting for its turn, with the segment that holds its bytes.
struct Held {
  uint64_t key;
  uint32_t capture_point;
  uint64_t stream_id;
  uint32_t input;
  uint64_t seq;  // arrival order: the last tie-break, so equal exchanges keep their file order
  uint32_t index;
  std::shared_ptr<HeldSegment> segment;
};

// Heap order: the smallest (key, capture point, stream id, input, seq) on top.
bool Later(const Held& a, const Held& b) {
  if (a.key != b.key) return a.key > b.key;
  if (a.capture_point != b.capture_point) return a.capture_point > b.capture_point;
  if (a.stream_id != b.stream_id) return a.stream_id > b.stream_id;
  if (a.input != b.input) return a.input > b.input;
  return a.seq > b.seq;
}

void SleepNs(int64_t ns) {
  timespec ts{static_cast<time_t>(ns / 1'000'000'000), static_cast<long>(ns % 1'000'000'000)};
  nanosleep(&ts, nullptr);
}

}  // namespace

struct ExchangeSource::Impl {
  struct Input {
    std::string path;
    std::unique_ptr<Reader> reader;
    bool tried = false;  // Open attempted
    bool indexed = false;
    std::vector<SegmentInfo> rows;  // indexed: by smallest sort key
    size_t next_row = 0;
    bool seen = false;  // streaming: an exchange was read
    uint64_t high = 0;  // streaming: the largest sort key read
    bool ended = false;
  };

  OrderOptions o;
  std::vector<Input> in;
  std::vector<Held> heap;
  std::deque<Held> now;                  // late arrivals, released before anything else
  std::shared_ptr<HeldSegment> current;  // holds the bytes of the view last returned
  uint64_t segments_held = 0;
  uint64_t seq = 0;
  bool released_any = false;
  uint64_t last_released = 0;
  bool stopped = false;
  uint64_t late = 0, selected_out = 0, max_held = 0, max_segments = 0;
  size_t file_at = 0;  // file_order: the input being read

  // Following: true (and the source stopped) when `stop` says so.
  bool StopNow(bool follow) {
    if (follow && o.stop && o.stop()) stopped = true;
    return stopped;
  }

  void OpenInput(size_t i, bool follow) {
    Input& x = in[i];
    x.tried = true;
    absl::StatusOr<std::unique_ptr<Reader>> r;
    Reporter* reporter = nullptr;
    bool named = false;
    for (;;) {
      // Opening a FIFO blocks until a writer opens it; a stop signal interrupts it (EINTR).
      absl::StatusOr<std::unique_ptr<ReadableFile>> file = OpenReadableFile(x.path);
      if (!file.ok()) {
        x.ended = true;
        if (!StopNow(follow) && o.open_error) o.open_error(file.status());
        return;
      }
      ReaderOptions ro;
      ro.headers_only = o.headers_only;
      ro.follow = follow;
      if (!named) {  // one Reporter per input, however often its header is waited for
        named = true;
        reporter = o.reporter_for ? o.reporter_for((*file)->name()) : nullptr;
      }
      ro.reporter = reporter;
      r = Reader::Open(*std::move(file), ro);
      // Following, a file whose header is not all written yet is waited for (reader.h).
      if (!follow || !absl::IsUnavailable(r.status())) break;
      if (StopNow(follow)) {
        x.ended = true;
        return;
      }
      SleepNs(o.poll_interval_ns);
    }
    if (!r.ok()) {
      x.ended = true;
      if (o.open_error) o.open_error(r.status());
      return;
    }
    x.reader = *std::move(r);
    // The index is used when it came from a verified footer at Open (a seekable file): then
    // summary() is present before anything is read. A followed file grows past its index.
    if (!follow && x.reader->summary().has_value()) {
      x.indexed = true;
      x.rows = x.reader->summary()->index;
      std::stable_sort(x.rows.begin(), x.rows.end(),
                       [](const SegmentInfo& a, const SegmentInfo& b) {
                         return a.min_sort_key < b.min_sort_key;
                       });
    }
  }

  // Everything input `i` may still yield has a sort key >= this (kNoBound: nothing more).
  uint64_t Bound(const Input& x) const {
    if (x.ended) return kNoBound;
    if (x.indexed) return x.next_row < x.rows.size() ? x.rows[x.next_row].min_sort_key : kNoBound;
    if (!x.seen) return 0;
    uint64_t w = static_cast<uint64_t>(o.reorder_window_ns);
    // Released once the input has moved past the key by the window: key + w <= high.
    return x.high >= w ? x.high - w + 1 : 0;
  }

  void Hold(const std::shared_ptr<const Segment>& seg, uint32_t input, bool streaming) {
    Input& x = in[input];
    auto held = std::make_shared<HeldSegment>();
    held->segment = seg;
    for (size_t i = 0; i < seg->size(); ++i) {
      ExchangeView v = seg->exchange(i);
      uint64_t key = v.sort_key_ns();
      if (streaming) {
        x.high = x.seen ? std::max(x.high, key) : key;
        x.seen = true;
      }
      if (o.keep && !o.keep(v)) {
        ++selected_out;
        continue;
      }
      ++held->pending;
      Held h{key, v.capture_point(), v.stream_id(), input, seq++, static_cast<uint32_t>(i), held};
      if (streaming && released_any && key < last_released) {
        // Too late for its place: out at once, and counted unless order was not asked for.
        if (o.reorder_window_ns > 0) ++late;
        now.push_back(std::move(h));
        continue;
      }
      heap.push_back(std::move(h));
      std::push_heap(heap.begin(), heap.end(), Later);
    }
    if (held->pending) ++segments_held;
    max_held = std::max<uint64_t>(max_held, heap.size() + now.size());
    max_segments = std::max(max_segments, segments_held);
  }

  // Reads more of input `i`: one segment. False when it had nothing now (ended or waiting).
  bool Advance(size_t i) {
    Input& x = in[i];
    if (x.indexed) {
      while (x.next_row < x.rows.size()) {
        std::shared_ptr<const Segment> seg = x.reader->ReadSegment(x.rows[x.next_row++]);
        if (seg) {
          Hold(seg, static_cast<uint32_t>(i), false);
          return true;
        }
        // A damaged segment was reported and is passed over; a read error ends the input.
        if (!x.reader->status().ok() && !absl::IsDataLoss(x.reader->status())) break;
      }
      x.ended = true;
      return true;
    }
    std::shared_ptr<const Segment> seg = x.reader->NextSegment();
    if (seg) {
      Hold(seg, static_cast<uint32_t>(i), true);
      return true;
    }
    if (!x.reader->waiting()) x.ended = true;
    return !x.reader->waiting();
  }

  void Release(Held&& h, ExchangeView* out, size_t* input) {
    *out = h.segment->segment->exchange(h.index);
    if (input) *input = h.input;
    if (--h.segment->pending == 0) --segments_held;
    current = std::move(h.segment);  // its bytes stay until the next call
    if (!released_any || h.key > last_released) last_released = h.key;
    released_any = true;
  }

  bool NextSorted(ExchangeView* out, size_t* input) {
    for (;;) {
      if (!now.empty()) {
        Held h = std::move(now.front());
        now.pop_front();
        Release(std::move(h), out, input);
        return true;
      }
      uint64_t bound = kNoBound;
      size_t slowest = in.size();
      bool all_ended = true;
      for (size_t i = 0; i < in.size(); ++i) {
        if (in[i].ended) continue;
        all_ended = false;
        uint64_t b = Bound(in[i]);
        if (slowest == in.size() || b < bound) {
          bound = b;
          slowest = i;
        }
      }
      if (!heap.empty() && (all_ended || stopped || heap.front().key < bound)) {
        std::pop_heap(heap.begin(), heap.end(), Later);
        Held h = std::move(heap.back());
        heap.pop_back();
        Release(std::move(h), out, input);
        return true;
      }
      if (all_ended || stopped) {
        current.reset();
        return false;
      }
      if (!Advance(slowest)) {
        // Following, and the input that holds the rest back has nothing new yet.
        if (o.stop && o.stop()) {
          stopped = true;
          continue;
        }
        SleepNs(o.poll_interval_ns);
        if (o.stop && o.stop()) stopped = true;
      }
    }
  }

  bool NextInFileOrder(ExchangeView* out, size_t* input) {
    while (file_at < in.size()) {
      Input& x = in[file_at];
      bool last = file_at + 1 == in.size();
      if (!x.tried) OpenInput(file_at, o.follow && last);
      if (!x.reader) {
        ++file_at;
        continue;
      }
      if (stopped) return false;
      if (x.reader->Next(out)) {
        if (o.keep && !o.keep(*out)) {
          ++selected_out;
          continue;
        }
        if (input) *input = file_at;
        return true;
      }
      if (x.reader->waiting()) {
        if (o.stop && o.stop()) {
          stopped = true;
          return false;
        }
        SleepNs(o.poll_interval_ns);
        if (o.stop && o.stop()) stopped = true;
        continue;
      }
      ++file_at;
    }
    return false;
  }
};

ExchangeSource::ExchangeSource() : impl_(std::make_unique<Impl>()) {}
ExchangeSource::~ExchangeSource() = default;

absl::StatusOr<std::unique_ptr<ExchangeSource>> ExchangeSource::Open(OrderOptions options) {
  if (options.reorder_window_ns < 0) {
    return absl::InvalidArgumentError("--reorder-window: must not be negative");
  }
  if (std::count(options.files.begin(), options.files.end(), "-") > 1) {
    return absl::InvalidArgumentError("standard input (-) given more than once");
  }
  std::unique_ptr<ExchangeSource> s(new ExchangeSource());
  Impl& m = *s->impl_;
  m.o = std::move(options);
  if (m.o.poll_interval_ns <= 0) m.o.poll_interval_ns = 100'000'000;
  m.in.resize(m.o.files.size());
  for (size_t i = 0; i < m.in.size(); ++i) m.in[i].path = m.o.files[i];
  if (!m.o.file_order) {
    for (size_t i = 0; i < m.in.size(); ++i) m.OpenInput(i, m.o.follow);
  }
  return s;
}

bool ExchangeSource::Next(ExchangeView* out, size_t* input) {
  return impl_->o.file_order ? impl_->NextInFileOrder(out, input) : impl_->NextSorted(out, input);
}

size_t ExchangeSource::inputs() const { return impl_->in.size(); }
const Reader* ExchangeSource::reader(size_t i) const { return impl_->in[i].reader.get(); }
uint64_t ExchangeSource::late() const { return impl_->late; }
uint64_t ExchangeSource::selected_out() const { return impl_->selected_out; }
uint64_t ExchangeSource::max_held_exchanges() const { return impl_->max_held; }
uint64_t ExchangeSource::max_held_segments() const { return impl_->max_segments; }

std::string LateNotice(uint64_t late, int64_t window_ns) {
  return absl::StrCat(late, late == 1 ? " exchange" : " exchanges", " arrived after the ",
                      FormatDurationNs(window_ns), " reorder window and printed out of order");
}

absl::StatusOr<int64_t> ParseDurationNs(std::string_view text) {
  auto bad = [&] {
    return absl::InvalidArgumentError(absl::StrCat(
        "'", std::string(text), "': not a duration (a number and a unit: 10s, 500ms, 1.5s)"));
  };
  if (text == "0") return 0;
  size_t unit_at = text.find_first_not_of("0123456789.");
  if (unit_at == 0 || unit_at == std::string_view::npos) return bad();
  std::string_view number = text.substr(0, unit_at), unit = text.substr(unit_at);
  double scale;
  if (unit == "ns") {
    scale = 1;
  } else if (unit == "us") {
    scale = 1e3;
  } else if (unit == "ms") {
    scale = 1e6;
  } else if (unit == "s") {
    scale = 1e9;
  } else if (unit == "m") {
    scale = 60e9;
  } else if (unit == "h") {
    scale = 3600e9;
  } else {
    return bad();
  }
  double v;
  if (std::count(number.begin(), number.end(), '.') > 1 ||
      !absl::SimpleAtod(std::string(number), &v) || !std::isfinite(v) || v < 0) {
    return bad();
  }
  double ns = std::round(v * scale);
  if (ns >= 9.2e18) return bad();
  return static_cast<int64_t>(ns);
}

std::string FormatDurationNs(int64_t ns) {
  struct Unit {
    int64_t size;
    const char* name;
  };
  for (Unit u : {Unit{1'000'000'000, "s"}, Unit{1'000'000, "ms"}, Unit{1'000, "us"}}) {
    if (ns >= u.size) {
      if (ns % u.size == 0) return absl::StrCat(ns / u.size, u.name);
      return absl::StrCat(static_cast<double>(ns) / static_cast<double>(u.size), u.name);
    }
  }
  return ns == 0 ? "0s" : absl::StrCat(ns, "ns");
}

}  // namespace tapkit
