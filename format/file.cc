#include "format/file.h"

#include <errno.h>
#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cstring>

#include "absl/strings/str_cat.h"

namespace tapkit {
namespace {

absl::Status ErrnoError(const std::string& name, std::string_view what, int err) {
  std::string msg = absl::StrCat(name, ": ", std::string(what), ": ", std::strerror(err));
  if (err == ENOENT) return absl::NotFoundError(msg);
  if (err == EACCES || err == EPERM) return absl::PermissionDeniedError(msg);
  return absl::InternalError(msg);
}

class PosixWritableFile final : public WritableFile {
 public:
  PosixWritableFile(int fd, std::string name, bool owned)
      : fd_(fd), name_(std::move(name)), owned_(owned) {}
  ~PosixWritableFile() override {
    if (owned_ && fd_ >= 0) ::close(fd_);
  }

  // WritableFile
  absl::Status Append(std::string_view data) override {
    while (!data.empty()) {
      ssize_t n = ::write(fd_, data.data(), data.size());
      if (n < 0) {
        if (errno == EINTR) continue;
        return ErrnoError(name_, "write", errno);
      }
      data.remove_prefix(static_cast<size_t>(n));
    }
    return absl::OkStatus();
  }
  absl::Status Flush() override { return absl::OkStatus(); }  // write(2) is unbuffered here
  absl::Status Close() override {
    if (fd_ < 0) return absl::OkStatus();
    int fd = fd_;
    fd_ = -1;
    if (owned_ && ::close(fd) != 0) return ErrnoError(name_, "close", errno);
    return absl::OkStatus();
  }
  const std::string& name() const override { return name_; }

 private:
  int fd_;
  std::string name_;
  bool owned_;
};

class PosixReadableFile final : public ReadableFile {
 public:
  PosixReadableFile(int fd, std::string name, bool owned)
      : fd_(fd), name_(std::move(name)), owned_(owned) {
    struct stat st {};
    seekable_ = ::fstat(fd_, &st) == 0 && S_ISREG(st.st_mode);
  }
  ~PosixReadableFile() override {
    if (owned_) ::close(fd_);
  }

  // ReadableFile
  absl::StatusOr<size_t> Read(char* buf, size_t n) override {
    for (;;) {
      ssize_t r = ::read(fd_, buf, n);
      if (r >= 0) return static_cast<size_t>(r);
      if (errno != EINTR) return ErrnoError(name_, "read", errno);
    }
  }
  bool seekable() const override { return seekable_; }
  absl::Status Seek(uint64_t offset) override {
    if (!seekable_) return absl::UnimplementedError(absl::StrCat(name_, ": not seekable"));
    if (::lseek(fd_, static_cast<off_t>(offset), SEEK_SET) < 0) {
      return ErrnoError(name_, "lseek", errno);
    }
    return absl::OkStatus();
  }
  absl::StatusOr<uint64_t> Size() override {
    struct stat st {};
    if (!seekable_) return absl::UnimplementedError(absl::StrCat(name_, ": not seekable"));
    if (::fstat(fd_, &st) != 0) return ErrnoError(name_, "fstat", errno);
    return static_cast<uint64_t>(st.st_size);
  }
  const std::string& name() const override { return name_; }

 private:
  int fd_;
  std::string name_;
  bool owned_;
  bool seekable_ = false;
};

class StringWritableFile final : public WritableFile {
 public:
  StringWritableFile(std::string* dest, std::string name) : dest_(dest), name_(std::move(name)) {}
  absl::Status Append(std::string_view data) override {
    dest_->append(data);
    return absl::OkStatus();
  }
  absl::Status Flush() override { return absl::OkStatus(); }
  absl::Status Close() override { return absl::OkStatus(); }
  const std::string& name() const override { return name_; }

 private:
  std::string* dest_;
  std::string name_;
};

class StringReadableFile final : public ReadableFile {
 public:
  StringReadableFile(std::string_view data, std::string name, bool seekable)
      : data_(data), name_(std::move(name)), seekable_(seekable) {}
  absl::StatusOr<size_t> Read(char* buf, size_t n) override {
    size_t k = std::min(n, data_.size() - std::min<size_t>(pos_, data_.size()));
    if (!seekable_) k = std::min<size_t>(k, 4093);  // pipes hand over odd-sized pieces
    std::memcpy(buf, data_.data() + pos_, k);
    pos_ += k;
    return k;
  }
  bool seekable() const override { return seekable_; }
  absl::Status Seek(uint64_t offset) override {
    if (!seekable_) return absl::UnimplementedError(absl::StrCat(name_, ": not seekable"));
    pos_ = std::min<uint64_t>(offset, data_.size());
    return absl::OkStatus();
  }
  absl::StatusOr<uint64_t> Size() override {
    if (!seekable_) return absl::UnimplementedError(absl::StrCat(name_, ": not seekable"));
    return data_.size();
  }
  const std::string& name() const override { return name_; }

 private:
  std::string_view data_;
  std::string name_;
  bool seekable_;
  size_t pos_ = 0;
};

class FaultInjectingWritableFile final : public WritableFile {
 public:
  FaultInjectingWritableFile(std::unique_ptr<WritableFile> base, uint64_t fail_after)
      : base_(std::move(base)), left_(fail_after) {}
  absl::Status Append(std::string_view data) override {
    if (failed_) return Failure();
    if (data.size() <= left_) {
      left_ -= data.size();
      return base_->Append(data);
    }
    failed_ = true;
    if (absl::Status s = base_->Append(data.substr(0, left_)); !s.ok()) return s;
    left_ = 0;
    return Failure();
  }
  absl::Status Flush() override { return failed_ ? Failure() : base_->Flush(); }
  absl::Status Close() override { return base_->Close(); }
  const std::string& name() const override { return base_->name(); }

 private:
  absl::Status Failure() const {
    return absl::ResourceExhaustedError(absl::StrCat(name(), ": write: No space left on device"));
  }
  std::unique_ptr<WritableFile> base_;
  uint64_t left_;
  bool failed_ = false;
};

}  // namespace

absl::StatusOr<std::unique_ptr<WritableFile>> OpenWritableFile(const std::string& path,
                                                               bool no_follow) {
  if (path == "-") return std::make_unique<PosixWritableFile>(STDOUT_FILENO, "<stdout>", false);
  int fd = ::open(path.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC | (no_follow ? O_NOFOLLOW : 0),
                  0600);
  if (fd < 0 && no_follow && errno == ELOOP) {
    return absl::FailedPreconditionError(
        absl::StrCat(path, ": is a symbolic link; refusing to write through it"));
  }
  if (fd < 0) return ErrnoError(path, "open for writing", errno);
  // An existing file keeps its mode through O_TRUNC; captures hold secrets, so narrow it.
  struct stat st {};
  if (::fstat(fd, &st) == 0 && S_ISREG(st.st_mode) && (st.st_mode & 077) != 0) {
    if (::fchmod(fd, 0600) != 0) {
      int err = errno;
      ::close(fd);
      return ErrnoError(path, "chmod 0600", err);
    }
  }
  return std::make_unique<PosixWritableFile>(fd, path, true);
}

absl::StatusOr<std::unique_ptr<WritableFile>> OpenAppendableFile(const std::string& path) {
  int fd = ::open(path.c_str(), O_WRONLY | O_APPEND | O_CLOEXEC);
  if (fd < 0) return ErrnoError(path, "open for appending", errno);
  return std::make_unique<PosixWritableFile>(fd, path, true);
}

absl::StatusOr<std::unique_ptr<ReadableFile>> OpenReadableFile(const std::string& path) {
  if (path == "-") return std::make_unique<PosixReadableFile>(STDIN_FILENO, "<stdin>", false);
  int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC);
  if (fd < 0) return ErrnoError(path, "open", errno);
  struct stat st {};
  if (::fstat(fd, &st) == 0 && S_ISDIR(st.st_mode)) {
    ::close(fd);
    return absl::InvalidArgumentError(absl::StrCat(path, ": is a directory"));
  }
  return std::make_unique<PosixReadableFile>(fd, path, true);
}

std::unique_ptr<WritableFile> NewStringWritableFile(std::string* dest, std::string name) {
  return std::make_unique<StringWritableFile>(dest, std::move(name));
}

std::unique_ptr<ReadableFile> NewStringReadableFile(std::string_view data, std::string name,
                                                    bool seekable) {
  return std::make_unique<StringReadableFile>(data, std::move(name), seekable);
}

std::unique_ptr<WritableFile> NewFaultInjectingWritableFile(std::unique_ptr<WritableFile> base,
                                                            uint64_t fail_after) {
  return std::make_unique<FaultInjectingWritableFile>(std::move(base), fail_after);
}

}  // namespace tapkit
