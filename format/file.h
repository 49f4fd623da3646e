// file.h: the small file interfaces under the .tap Writer and Reader.
//
// The Writer appends to a WritableFile and the Reader reads a ReadableFile, so tests run them on
// memory (StringWritableFile, StringReadableFile) and on files that fail on purpose
// (FaultInjectingWritableFile), and the tools run them on real files, pipes, stdin and stdout.
//
// Thread-safety: none of these objects is thread-safe; use each from one thread at a time.
#ifndef TAPKIT_FORMAT_FILE_H_
#define TAPKIT_FORMAT_FILE_H_

#include <cstdint>
#include <memory>
#include <string>
#include <string_view>

#include "absl/status/status.h"
#include "absl/status/statusor.h"

namespace tapkit {

class WritableFile {
 public:
  virtual ~WritableFile() = default;
  // Appends all of `data` or returns an error (errno text and the file's name).
  virtual absl::Status Append(std::string_view data) = 0;
  // Hands buffered bytes to the operating system (no fsync).
  virtual absl::Status Flush() = 0;
  virtual absl::Status Close() = 0;
  virtual const std::string& name() const = 0;
};

class ReadableFile {
 public:
  virtual ~ReadableFile() = default;
  // Reads up to `n` bytes at the current position into `buf`; returns the count, 0 at end of file.
  // Retries short reads from pipes itself only as far as one read(2) goes: callers loop.
  virtual absl::StatusOr<size_t> Read(char* buf, size_t n) = 0;
  // Whether Seek and Size work (false for pipes and terminals).
  virtual bool seekable() const = 0;
  // Moves the position to `offset` bytes from the start. Unimplemented when not seekable.
  virtual absl::Status Seek(uint64_t offset) = 0;
  // Size in bytes. Unimplemented when not seekable.
  virtual absl::StatusOr<uint64_t> Size() = 0;
  virtual const std::string& name() const = 0;
};

// Creates or truncates `path` with mode 0600 (capture files hold secrets); "-" is standard output.
// `no_follow`: a symbolic link at `path` is refused (O_NOFOLLOW; FailedPrecondition naming the
// file), for a file in a directory that a less trusted user can write (taprec -Z with -C/-G),
// who could otherwise point it at any file the opener may write.
absl::StatusOr<std::unique_ptr<WritableFile>> OpenWritableFile(const std::string& path,
                                                               bool no_follow = false);
// Opens `path` for appending at its end (index rebuilds); mode unchanged.
absl::StatusOr<std::unique_ptr<WritableFile>> OpenAppendableFile(const std::string& path);
// Opens `path` for reading; "-" is standard input.
absl::StatusOr<std::unique_ptr<ReadableFile>> OpenReadableFile(const std::string& path);

// Appends to `*dest`, which must outlive the file.
std::unique_ptr<WritableFile> NewStringWritableFile(std::string* dest,
                                                    std::string name = "<memory>");
// Reads `data`, which must outlive the file. `seekable` false behaves like a pipe.
std::unique_ptr<ReadableFile> NewStringReadableFile(std::string_view data,
                                                    std::string name = "<memory>",
                                                    bool seekable = true);

// Passes writes to `base` until `fail_after` bytes in total have been accepted; the write that
// would cross that point stores only the bytes up to it (a torn write) and returns an error, as a
// full disk does. Every later call fails too.
std::unique_ptr<WritableFile> NewFaultInjectingWritableFile(std::unique_ptr<WritableFile> base,
                                                            uint64_t fail_after);

}  // namespace tapkit

#endif  // TAPKIT_FORMAT_FILE_H_
