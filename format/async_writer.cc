#include "format/async_writer.h"

#include <pthread.h>

#include <algorithm>
#include <chrono>
#include <condition_variable>
#include <deque>
#include <mutex>
#include <thread>
#include <utility>
#include <vector>

namespace tapkit {

struct AsyncWriter::Shared {
  std::mutex mu;
  std::condition_variable work;   // the writer thread waits here
  std::condition_variable space;  // the producer waits here
  std::deque<std::vector<Exchange>> queue;
  size_t max_batches = 1;
  uint64_t flush_wanted = 0;  // Flush() calls so far
  uint64_t flush_done = 0;    // of those, answered by the writer thread
  bool closing = false;
  bool closed = false;
  TrailerInput trailer;
  absl::Status error;  // first error of the Writer; sticky
  WriterStats stats;
  std::unique_ptr<Writer> writer;  // used by the writer thread only
  std::thread thread;
  std::vector<Exchange> pending;  // the producer's partial batch (producer only)

  void Note(const absl::Status& s) {
    if (!s.ok() && error.ok()) error = s;
    stats = writer->stats();
  }

  void Run() {
    std::unique_lock<std::mutex> l(mu);
    for (;;) {
      work.wait_for(l, std::chrono::milliseconds(100),
                    [&] { return !queue.empty() || closing || flush_wanted > flush_done; });
      if (!queue.empty()) {
        std::vector<Exchange> batch = std::move(queue.front());
        queue.pop_front();
        space.notify_all();
        bool failed = !error.ok();
        l.unlock();
        absl::Status s;
        if (!failed) {
          for (const Exchange& x : batch) {
            s = writer->Append(x);
            if (!s.ok()) break;
          }
          if (s.ok()) s = writer->Tick();
        }
        // Freed here, off the producer's thread. (With glibc's malloc this contends for the
        // producer's arena lock; the tools link tcmalloc, whose thread caches take remote frees.)
        batch.clear();
        l.lock();
        Note(s);
        continue;
      }
      if (flush_wanted > flush_done) {
        uint64_t wanted = flush_wanted;
        absl::Status s;
        if (error.ok()) {
          l.unlock();
          s = writer->Flush();
          l.lock();
        }
        Note(s);
        flush_done = wanted;
        space.notify_all();
        continue;
      }
      if (closing) {
        absl::Status s;
        if (error.ok()) {
          TrailerInput t = std::move(trailer);
          l.unlock();
          s = writer->Close(t);
          l.lock();
        }
        Note(s);
        closed = true;
        space.notify_all();
        return;
      }
      // Quiet: the flush timer still has to run.
      absl::Status s;
      if (error.ok()) {
        l.unlock();
        s = writer->Tick();
        l.lock();
      }
      Note(s);
    }
  }
};

absl::StatusOr<std::unique_ptr<AsyncWriter>> AsyncWriter::Open(std::unique_ptr<WritableFile> file,
                                                               const CaptureMetadata& metadata,
                                                               WriterOptions options,
                                                               size_t max_batches, size_t batch) {
  absl::StatusOr<std::unique_ptr<Writer>> w =
      Writer::Open(std::move(file), metadata, std::move(options));
  if (!w.ok()) return w.status();
  return std::unique_ptr<AsyncWriter>(new AsyncWriter(*std::move(w), max_batches, batch));
}

AsyncWriter::AsyncWriter(std::unique_ptr<Writer> writer, size_t max_batches, size_t batch)
    : shared_(std::make_shared<Shared>()),
      name_(writer->name()),
      batch_(std::clamp<size_t>(batch, 1, kBatch)) {
  shared_->max_batches = max_batches == 0 ? 1 : max_batches;
  shared_->stats = writer->stats();
  shared_->writer = std::move(writer);
  shared_->pending.reserve(kBatch);
  shared_->thread = std::thread([s = shared_.get()] {
    pthread_setname_np(pthread_self(), "tap-writer");
    s->Run();
  });
}

AsyncWriter::~AsyncWriter() {
  if (!closed_) (void)Close();
}

absl::Status AsyncWriter::HandOver(bool wait_until_written) {
  Shared& s = *shared_;
  std::unique_lock<std::mutex> l(s.mu);
  if (!s.pending.empty()) {
    s.space.wait(l, [&] { return s.queue.size() < s.max_batches || !s.error.ok(); });
    if (s.error.ok()) s.queue.push_back(std::move(s.pending));
    s.pending = {};
    s.pending.reserve(kBatch);
    s.work.notify_one();
  }
  if (wait_until_written) {
    uint64_t ticket = ++s.flush_wanted;
    s.work.notify_one();
    s.space.wait(l, [&] { return s.flush_done >= ticket; });
  }
  absl::Status error = s.error;
  l.unlock();
  return error;
}

absl::Status AsyncWriter::Append(Exchange&& exchange) {
  if (closed_) return absl::FailedPreconditionError(name_ + ": writer is closed");
  Shared& s = *shared_;
  if (s.pending.empty()) pending_since_ = std::chrono::steady_clock::now();
  s.pending.push_back(std::move(exchange));
  if (s.pending.size() >= batch_) return HandOver(false);
  return absl::OkStatus();
}

absl::Status AsyncWriter::Tick() {
  if (closed_) return absl::FailedPreconditionError(name_ + ": writer is closed");
  // A partial batch goes over once it has waited kTickHandOverNs, not at every call: a reader
  // calling Tick every few hundred packets would otherwise wake the writer thread each time.
  Shared& s = *shared_;
  if (s.pending.empty()) return absl::OkStatus();
  auto now = std::chrono::steady_clock::now();
  if (now - pending_since_ < std::chrono::nanoseconds(kTickHandOverNs)) return absl::OkStatus();
  return HandOver(false);
}

absl::Status AsyncWriter::Submit() {
  if (closed_) return absl::FailedPreconditionError(name_ + ": writer is closed");
  if (shared_->pending.empty()) return absl::OkStatus();
  return HandOver(false);
}

absl::Status AsyncWriter::Flush() {
  if (closed_) return absl::FailedPreconditionError(name_ + ": writer is closed");
  return HandOver(true);
}

absl::Status AsyncWriter::Close(const TrailerInput& trailer) {
  if (closed_) return absl::FailedPreconditionError(name_ + ": writer is closed");
  closed_ = true;
  (void)HandOver(false);
  Shared& s = *shared_;
  {
    std::lock_guard<std::mutex> l(s.mu);
    s.trailer = trailer;
    s.closing = true;
    s.work.notify_one();
  }
  s.thread.join();
  std::lock_guard<std::mutex> l(s.mu);
  return s.error;
}

WriterStats AsyncWriter::stats() const {
  std::lock_guard<std::mutex> l(shared_->mu);
  return shared_->stats;
}

}  // namespace tapkit
