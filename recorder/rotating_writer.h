// rotating_writer.h: taprec's output file, rotated as tcpdump rotates its -w file.
//
//   -C SIZE    a new file once the current one holds SIZE million bytes (tcpdump's unit).
//   -W COUNT   with -C: a ring of COUNT files, overwritten in turn (each overwrite is announced
//              through RotationOptions::notice); with -G: stop after COUNT files.
//   -G SECONDS a new file every SECONDS: of the wall clock (a live capture), or of capture time,
//              the exchanges' own timestamps (`capture_clock`, taprec -r), so that reading a
//              capture cuts it where a live capture would have. FILE may hold strftime(3)
//              conversions (%H%M%S...), expanded with the local time the file opens (capture time
//              of the exchange that opened it, with `capture_clock`; the first file's is the wall
//              clock's), which then name the files alone.
// Names: tcpdump's, but with the number before the extension, so that every file still ends in
// .tap (`tapcat out*.tap` finds them all): out.tap, out1.tap, out2.tap, ... after -C or -G; a
// ring out0.tap .. out<COUNT-1>.tap (digits padded to the width of COUNT-1). A FILE without an
// extension gets the number at its end (out, out1, ...), as tcpdump's.
// Every file is a whole .tap: header, segments, and a trailer with the counters as they stood
// when it closed. Without -C and -G it is a plain writer on FILE ("-" is standard output).
//
// Thread-safety: one thread (AsyncWriter's rule); `notice` and `trailer` are called on it.
#ifndef TAPKIT_RECORDER_ROTATING_WRITER_H_
#define TAPKIT_RECORDER_ROTATING_WRITER_H_

#include <cstdint>
#include <functional>
#include <memory>
#include <optional>
#include <string>

#include "absl/status/status.h"
#include "format/async_writer.h"

namespace tapkit {

// A file's identity (st_dev, st_ino).
struct FileId {
  uint64_t device = 0, inode = 0;
};

struct RotationOptions {
  uint64_t max_bytes = 0;  // -C, bytes (already multiplied out); 0 = no size rotation
  uint64_t seconds = 0;    // -G; 0 = no time rotation
  uint64_t count = 0;      // -W; 0 = unlimited
  bool live = false;       // hand each exchange to the writer thread at once (AsyncWriter)
  // -G counts capture time (each exchange's sort_key_ns) instead of the wall clock; Tick() then
  // never rotates.
  bool capture_clock = false;
  // Refuse to write through a symbolic link at a file's name (OpenWritableFile's no_follow):
  // set when a less trusted user can write the directory (taprec -Z with -C or -G).
  bool no_follow = false;
  // A file no name of the rotation may overwrite (the capture taprec -r reads): opening it is
  // refused, FailedPrecondition naming it.
  std::optional<FileId> never_overwrite;
  // Full batches of exchanges that may wait for the writer thread (AsyncWriter's max_batches);
  // 0: 64. A bulk copy (tapfilter) keeps a few, so its memory stays flat whatever it copies.
  size_t queue_batches = 0;
  // Told, in one line without a program prefix, what the user should know: a ring about to
  // overwrite its oldest file. Null: said nowhere.
  std::function<void(const std::string&)> notice;
};

// The name of file number `index` (0 = the first) of `path` with the number before the extension
// ("out.tap", 3 -> "out3.tap"; "out", 3 -> "out3"), padded with zeros to `width` digits.
std::string NumberedName(const std::string& path, uint64_t index, size_t width = 0);

// tcpdump's -C SIZE (taprec, tapfilter): millions of bytes, or a number with k, m or g
// (1024-based: "500k", "1.5m"). Bytes; 0 when the text is not a size above 0 and below 2^63.
uint64_t ParseRotationSize(const std::string& text);

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
  // The flush timer, and -G by the wall clock. Errors: as Append.
  absl::Status Tick();
  // AsyncWriter::Submit on the current file.
  absl::Status Submit();
  absl::Status Close();
  const std::string& current() const { return current_; }
  uint64_t files() const { return files_; }

 private:
  std::string NameFor(uint64_t index, int64_t time_ns) const;
  bool Due(int64_t now_ns) const;
  absl::Status Rotate();

  std::string path_;
  CaptureMetadata metadata_;
  RotationOptions options_;
  std::function<TrailerInput()> trailer_;
  std::unique_ptr<AsyncWriter> writer_;
  std::string current_;
  uint64_t files_ = 0;
  int64_t opened_at_ = 0;       // steady clock, or capture time with capture_clock; nanoseconds
  bool clock_started_ = false;  // capture_clock: an exchange has set opened_at_
  // -C: bytes of the exchanges handed to the writer since the file's size was last known
  // (before compression, so at least what they will add to the file).
  uint64_t unwritten_bytes_ = 0;
};

}  // namespace tapkit

#endif  // TAPKIT_RECORDER_ROTATING_WRITER_H_
