// async_writer.h: a Writer driven by a thread of its own, so that encoding and compressing
// exchanges (format/writer.h) leave the thread that captures them.
//
// The capturing thread hands exchanges over by move; they are passed to the writer thread in
// batches (every kBatch exchanges, at a Tick() once the batch has waited kTickHandOverNs, and at
// Submit(), Flush() and Close()), so a batch costs one lock and at most one wake-up. The queue is
// bounded: when the writer thread falls `max_batches` batches behind, Append() waits for it
// (back-pressure, so memory stays flat; an offline reader simply slows down). The writer thread
// ticks the Writer's flush timer itself at least every 100 ms, so a segment reaches the file within
// about flush_interval_ns + 100 ms of its first exchange even when the capture goes quiet.
//
// Errors are sticky: the first error of the underlying Writer is returned by the next Append(),
// Tick(), Flush() or Close(), and everything handed over after it is discarded.
//
// Thread-safety: one thread calls Append/Tick/Flush/Close (the producer); stats() may be called
// from any thread.
#ifndef TAPKIT_FORMAT_ASYNC_WRITER_H_
#define TAPKIT_FORMAT_ASYNC_WRITER_H_

#include <chrono>
#include <cstdint>
#include <memory>
#include <string>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "format/exchange.h"
#include "format/writer.h"

namespace tapkit {

class AsyncWriter {
 public:
  // Exchanges per hand-over batch.
  static constexpr size_t kBatch = 256;
  // How long a partial batch may wait for Tick() to hand it over (nanoseconds).
  static constexpr int64_t kTickHandOverNs = 20'000'000;

  // Opens a Writer on `file` (Writer::Open's errors) and starts the writer thread. At most
  // `max_batches` full batches wait in the queue (>= 1). `batch` exchanges go over at a time
  // (1..kBatch): a live capture, where traffic may stop at any moment, uses 1 so that nothing
  // waits with the producer.
  static absl::StatusOr<std::unique_ptr<AsyncWriter>> Open(std::unique_ptr<WritableFile> file,
                                                           const CaptureMetadata& metadata,
                                                           WriterOptions options = {},
                                                           size_t max_batches = 64,
                                                           size_t batch = kBatch);
  // Closes the file as Close() does with an empty trailer if Close() was not called.
  ~AsyncWriter();
  AsyncWriter(const AsyncWriter&) = delete;
  AsyncWriter& operator=(const AsyncWriter&) = delete;

  // Queues one exchange. Returns the writer thread's first error, if any, instead.
  absl::Status Append(Exchange&& exchange);
  // Hands over the partial batch once it has waited kTickHandOverNs, so the writer thread's flush
  // timer sees it. Cheap (a clock read); call it often.
  absl::Status Tick();
  // Hands the partial batch over at once, without waiting for it to be written. A live recorder
  // calls it after each message it receives: what arrived together costs one wake-up of the
  // writer thread, and nothing waits with the producer.
  absl::Status Submit();
  // Waits until every exchange handed over is in a segment written to the file.
  absl::Status Flush();
  // Writes everything queued, then the trailer and the footer, closes the file and joins the
  // writer thread. Later calls fail.
  absl::Status Close(const TrailerInput& trailer = {});

  // The underlying Writer's counters as of its last append (a copy; any thread).
  WriterStats stats() const;
  const std::string& name() const { return name_; }

 private:
  struct Shared;
  AsyncWriter(std::unique_ptr<Writer> writer, size_t max_batches, size_t batch);
  absl::Status HandOver(bool wait_until_written);

  std::shared_ptr<Shared> shared_;
  std::string name_;
  bool closed_ = false;
  size_t batch_ = kBatch;
  std::chrono::steady_clock::time_point pending_since_;  // first exchange of the partial batch
};

}  // namespace tapkit

#endif  // TAPKIT_FORMAT_ASYNC_WRITER_H_
