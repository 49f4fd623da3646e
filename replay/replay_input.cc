#include "replay/replay_input.h"

#include <sys/resource.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <unistd.h>
#include <xxhash.h>

#include <algorithm>
#include <condition_variable>
#include <mutex>
#include <string>
#include <thread>
#include <utility>
#include <vector>

#include "absl/strings/str_cat.h"
#include "format/order.h"
#include "format/reader.h"

namespace tapkit::replay::internal {

bool SampledIn(const ExchangeId& id, double percent, uint64_t seed) {
  if (percent >= 100.0) return true;
  unsigned char key[12];
  for (int i = 0; i < 4; ++i) key[i] = static_cast<unsigned char>(id.capture_point >> (8 * i));
  for (int i = 0; i < 8; ++i) key[4 + i] = static_cast<unsigned char>(id.stream_id >> (8 * i));
  uint64_t h = XXH3_64bits_withSeed(key, sizeof key, seed);
  return static_cast<double>(h % 1'000'000) < percent * 10'000.0;
}

bool IsStreamInput(const std::string& path) {
  if (path == "-") return true;
  struct stat st {};
  return ::stat(path.c_str(), &st) == 0 && !S_ISREG(st.st_mode);
}

namespace {

// One input's reports: the first damage as one line naming the file and offset, and its notices
// (a torn tail, a missing trailer) as tapcat prints them (format/print.h's LineReporter).
class InputReporter final : public Reporter {
 public:
  InputReporter(std::string name, std::string* first) : name_(std::move(name)), first_(first) {}
  void Corruption(uint64_t offset, uint64_t length, std::string_view reason) override {
    if (first_->empty()) {
      *first_ = absl::StrCat(name_, ": offset ", offset, ": ", std::string(reason), " (", length,
                             " bytes skipped)");
    }
  }
  // A torn tail ends the input with a notice, not an error.
  void Notice(uint64_t offset, std::string_view message) override {
    notices_.push_back(
        absl::StrCat(name_, ": offset ", offset, ": notice: ", std::string(message)));
    if (first_notice_.empty()) {
      first_notice_ = absl::StrCat(name_, ": offset ", offset, ": ", std::string(message));
    }
  }
  const std::string& name() const { return name_; }
  std::vector<std::string>& notices() { return notices_; }
  const std::string& first_notice() const { return first_notice_; }

 private:
  std::string name_;
  std::string* first_;
  std::vector<std::string> notices_;
  std::string first_notice_;
};

uint64_t FootprintBytes(const Exchange& x) {
  uint64_t n = sizeof(Exchange) + x.reason.size();
  auto fields = [&n](const std::vector<Header>& hs) {
    for (const Header& h : hs) n += sizeof(Header) + h.name.size() + h.value.size();
  };
  if (x.request) {
    n += x.request->path.size() + x.request->authority.size() + x.request->body.data.size();
    fields(x.request->headers);
  }
  if (x.response) {
    n += x.response->body.data.size() + x.response->reason.size();
    fields(x.response->headers);
  }
  return n;
}

}  // namespace

struct InputReader::State {
  ReplayOptions options;
  bool stream_input = false;
  uint64_t cache_limit = kRoundCacheBytes;

  std::mutex mu;
  std::condition_variable space;  // signalled when the engine takes items or cancels
  std::deque<InputItem> queue;
  std::function<void()> wake;  // null once cancelled
  bool cancelled = false;
  bool finished = false;

  // Queues `item`, waiting for room; false once cancelled.
  bool Push(InputItem item) {
    std::unique_lock<std::mutex> lock(mu);
    space.wait(lock, [&] { return cancelled || queue.size() < kInputQueueLimit; });
    if (cancelled) return false;
    queue.push_back(std::move(item));
    // The engine polls the queue after every round of I/O: it needs waking only when it may
    // have found the queue empty and gone to sleep (a wakeup is a system call).
    if (queue.size() == 1 && wake) wake();
    return true;
  }
  bool Cancelled() {
    std::lock_guard<std::mutex> lock(mu);
    return cancelled;
  }

  // Reads the inputs once as round `round`. False when cancelled or failed (the error queued).
  bool ReadRound(int round, std::vector<std::shared_ptr<const Exchange>>* cache, bool* cache_ok,
                 RoundCounts* counts);
  void Run();
};

bool InputReader::State::ReadRound(int round, std::vector<std::shared_ptr<const Exchange>>* cache,
                                   bool* cache_ok, RoundCounts* counts) {
  auto fail = [&](absl::Status s) {
    InputItem item;
    item.kind = InputItem::Kind::kError;
    item.error = std::move(s);
    Push(std::move(item));
    return false;
  };
  Selection selection = options.selection;
  std::string damage;
  std::vector<std::unique_ptr<InputReporter>> reporters;
  absl::Status open_error;
  OrderOptions order;
  order.files = options.inputs;
  // A live stream is shadowed as it arrives: no reorder window to wait out.
  order.reorder_window_ns = stream_input ? 0 : kDefaultReorderWindowNs;
  if (!selection.empty()) {
    order.keep = [&selection](const ExchangeView& v) { return selection.Matches(v); };
  }
  order.reporter_for = [&](const std::string& name) {
    reporters.push_back(std::make_unique<InputReporter>(name, &damage));
    return reporters.back().get();
  };
  order.open_error = [&](const absl::Status& s) {
    if (open_error.ok()) open_error = s;
  };
  absl::StatusOr<std::unique_ptr<ExchangeSource>> source = ExchangeSource::Open(order);
  if (!source.ok()) return fail(source.status());
  if (!open_error.ok()) return fail(open_error);
  if (selection.needs_inputs()) {
    std::vector<const Reader*> readers;
    for (size_t i = 0; i < (*source)->inputs(); ++i) readers.push_back((*source)->reader(i));
    if (absl::Status s = selection.Bind(readers); !s.ok()) return fail(s);
  }
  const int64_t count = selection.count();
  const bool keep_cache = options.loop > 1 && round == 0;
  uint64_t cache_bytes = 0;
  ExchangeView view;
  while ((count < 0 || counts->taken < static_cast<uint64_t>(count)) && (*source)->Next(&view)) {
    if (!damage.empty()) break;
    if (Cancelled()) return false;
    ++counts->read;
    if (!view.has_request() ||
        (view.completion() != Completion::kComplete && !options.include_incomplete)) {
      ++counts->skipped_incomplete;
      continue;
    }
    if (!SampledIn({view.capture_point(), view.stream_id()}, options.sample_percent,
                   options.sample_seed)) {
      ++counts->sampled_out;
      continue;
    }
    auto x = std::make_shared<const Exchange>(view.ToExchange());
    if (!options.send_truncated_bodies && x->request->body.cut()) {
      ++counts->skipped_truncated_body;
      continue;
    }
    if (counts->taken == 0 || x->sort_key_ns < counts->first_key_ns) {
      counts->first_key_ns = x->sort_key_ns;
    }
    counts->last_key_ns = std::max(counts->last_key_ns, x->sort_key_ns);
    ++counts->taken;
    if (keep_cache && *cache_ok) {
      cache_bytes += FootprintBytes(*x);
      if (cache_bytes < cache_limit) {
        cache->push_back(x);
      } else {
        *cache_ok = false;  // later rounds read the inputs again
        cache->clear();
        cache->shrink_to_fit();
      }
    }
    InputItem item;
    item.round = round;
    item.exchange = std::move(x);
    if (!Push(std::move(item))) return false;
  }
  if (!damage.empty()) return fail(absl::DataLossError(damage));
  for (size_t i = 0; i < (*source)->inputs(); ++i) {
    const Reader* r = (*source)->reader(i);
    if (r && !r->status().ok()) return fail(r->status());
  }
  for (const std::unique_ptr<InputReporter>& rep : reporters) {
    // Nothing at all could be read (a torn tail right after the file header): an input that
    // cannot be read, not an empty replay.
    const Reader* r = nullptr;
    for (size_t i = 0; i < (*source)->inputs() && !r; ++i) {
      const Reader* c = (*source)->reader(i);
      if (c && c->name() == rep->name()) r = c;
    }
    if (r && r->stats().segments == 0 && !rep->first_notice().empty()) {
      return fail(
          absl::DataLossError(absl::StrCat(rep->first_notice(), " (no exchange could be read)")));
    }
    if (round != 0) continue;
    for (std::string& line : rep->notices()) {
      InputItem item;
      item.kind = InputItem::Kind::kNotice;
      item.round = round;
      item.notice = std::move(line);
      if (!Push(std::move(item))) return false;
    }
  }
  counts->selected_out = (*source)->selected_out();
  counts->read += counts->selected_out;
  return true;
}

void InputReader::State::Run() {
  std::vector<std::shared_ptr<const Exchange>> cache;
  bool cache_ok = options.loop > 1;
  RoundCounts first;
  for (int round = 0; round < options.loop; ++round) {
    RoundCounts counts;
    if (round > 0 && cache_ok) {
      for (const std::shared_ptr<const Exchange>& x : cache) {
        InputItem item;
        item.round = round;
        item.exchange = x;
        if (!Push(std::move(item))) return;
      }
      counts = first;
    } else if (!ReadRound(round, &cache, &cache_ok, &counts)) {
      return;
    }
    if (round == 0) first = counts;
    InputItem end;
    end.kind = InputItem::Kind::kRoundEnd;
    end.round = round;
    end.counts = counts;
    if (!Push(std::move(end))) return;
  }
  InputItem end;
  end.kind = InputItem::Kind::kEnd;
  Push(std::move(end));
}

std::unique_ptr<InputReader> InputReader::Start(const ReplayOptions& options,
                                                std::function<void()> wake, uint64_t cache_limit) {
  std::unique_ptr<InputReader> reader(new InputReader());
  auto state = std::make_shared<State>();
  state->options = options;
  state->stream_input = std::any_of(options.inputs.begin(), options.inputs.end(), IsStreamInput);
  state->wake = std::move(wake);
  state->cache_limit = cache_limit;
  reader->state_ = state;
  std::thread([state] {
    // Reading runs ahead of the sends (a queue of kInputQueueLimit); below the engine's thread
    // in priority, its bursts (a segment decompressed, the queue refilled) do not delay a due
    // request on a busy machine. Raising one's own nice value needs no privilege.
    setpriority(PRIO_PROCESS, static_cast<id_t>(syscall(SYS_gettid)), 10);
    state->Run();
    std::lock_guard<std::mutex> lock(state->mu);
    state->finished = true;
    state->space.notify_all();
  }).detach();
  return reader;
}

size_t InputReader::Take(std::deque<InputItem>* out, size_t max) {
  std::lock_guard<std::mutex> lock(state_->mu);
  size_t n = 0;
  while (n < max && !state_->queue.empty()) {
    out->push_back(std::move(state_->queue.front()));
    state_->queue.pop_front();
    ++n;
  }
  // The reader waits for room at a full queue: wake it once half is free, not at every take.
  if (n > 0 && state_->queue.size() <= kInputQueueLimit / 2 &&
      state_->queue.size() + n > kInputQueueLimit / 2) {
    state_->space.notify_all();
  }
  return n;
}

void InputReader::Cancel() {
  if (!state_) return;
  std::unique_lock<std::mutex> lock(state_->mu);
  state_->cancelled = true;
  state_->wake = nullptr;
  state_->space.notify_all();
  // A file input notices the cancel at its next exchange: wait for that. A thread blocked reading
  // a stream (standard input, a pipe: IsStreamInput) owns its state (shared) and ends when the
  // stream does or the process exits.
  if (!state_->stream_input) {
    state_->space.wait(lock, [&] { return state_->finished; });
  }
  lock.unlock();
  state_.reset();
}

InputReader::~InputReader() { Cancel(); }

}  // namespace tapkit::replay::internal
