// rotating_writer.h: taprec's output file, rotated as tcpdump rotates its -w file.
//
//   -C SIZE    a new file once the current one holds SIZE million bytes (tcpdump's unit):
//              FILE, FILE1, FILE2, ...
//   -W COUNT   with -C: a ring of COUNT files, FILE0 .. FILE<COUNT-1> (digits padded to the
//              width of COUNT-1), overwritten in turn; with -G: stop after COUNT files.
//   -G SECONDS a new file every SECONDS; FILE may hold strftime(3) conversions (%H%M%S...),
//              expanded with the local time the file opens, else FILE, FILE1, ...
// Every file is a whole .tap: header, segments, and a trailer with the counters as they stood
// when it closed. Without -C and -G it is a plain writer on FILE ("-" is standard output).
//
// Thread-safety: one thread (AsyncWriter's rule).
#ifndef TAPKIT_RECORDER_ROTATING_WRITER_H_
#define TAPKIT_RECORDER_ROTATING_WRITER_H_

#include <cstdint>
#include <functional>
#include <memory>
#include <string>

#include "absl/status/status.h"
#include "format/async_writer.h"

namespace tapkit {

struct RotationOptions {
  uint64_t max_bytes = 0;  // -C, bytes (already multiplied out); 0 = no size rotation
  uint64_t seconds = 0;    // -G; 0 = no time rotation
  uint64_t count = 0;      // -W; 0 = unlimited
  bool live = false;       // hand each exchange to the writer thread at once (AsyncWriter)
};

class RotatingWriter {
 public:
  // `trailer` is asked for the trailer of each file as it closes.
  RotatingWriter(std::string path, CaptureMetadata metadata, RotationOptions options,
                 std::function<TrailerInput()> trailer);
  ~RotatingWriter();

  // Opens the first file. Errors: the file's.
  absl::Status Open();
  // Appends, rotating first when due. After -W COUNT files with -G, returns OutOfRange: the
  // capture is over (tcpdump exits then).
  absl::Status Append(Exchange&& x);
  absl::Status Tick();
  // AsyncWriter::Submit on the current file.
  absl::Status Submit();
  absl::Status Close();
  const std::string& current() const { return current_; }
  uint64_t files() const { return files_; }

 private:
  std::string NameFor(uint64_t index) const;
  absl::Status Rotate();

  std::string path_;
  CaptureMetadata metadata_;
  RotationOptions options_;
  std::function<TrailerInput()> trailer_;
  std::unique_ptr<AsyncWriter> writer_;
  std::string current_;
  uint64_t files_ = 0;
  int64_t opened_at_ = 0;  // steady clock, nanoseconds
};

}  // namespace tapkit

#endif  // TAPKIT_RECORDER_ROTATING_WRITER_H_
