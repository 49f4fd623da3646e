#include "controlplane/access.h"

#include <fcntl.h>
#include <openssl/crypto.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <cstdlib>
#include <cstring>
#include <filesystem>

#include "absl/strings/ascii.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"

namespace tapkit {
namespace {

std::string Mode(mode_t m) { return absl::StrFormat("%04o", m & 07777); }

}  // namespace

// Whether $XDG_RUNTIME_DIR `x` may hold this user's runtime directory. For root only when root
// owns it (or it does not exist yet): `sudo -E` and `su` pass the invoking user's, whom root's
// sockets must not be handed to.
bool XdgUsable(const char* x) {
  if (::geteuid() != 0) return true;
  struct stat st;
  return ::stat(x, &st) != 0 || st.st_uid == 0;
}

// Every directory above `dir` (made absolute) must be owned by root or this user and writable by
// no one else unless sticky (as /tmp): otherwise its owner or writers could rename the runtime
// directory away and put their own in its place between the check and its use (as OpenSSH's
// secure_permissions walks a path).
absl::Status CheckAncestors(const std::string& dir, const std::string& refuse) {
  std::error_code ec;
  std::filesystem::path p = std::filesystem::absolute(dir, ec).lexically_normal();
  if (ec) return absl::OkStatus();  // no working directory: the later lstat reports it
  for (p = p.parent_path(); !p.empty(); p = p.parent_path()) {
    struct stat st;
    if (::stat(p.c_str(), &st) == 0) {
      if (st.st_uid != 0 && st.st_uid != ::geteuid()) {
        return absl::FailedPreconditionError(absl::StrCat(
            refuse, "a directory above it, ", p.string(), ", is owned by uid ", st.st_uid,
            " (another user could replace it); use a directory of root's or this user's "
            "(TAPKIT_RUNTIME_DIR)"));
      }
      if ((st.st_mode & (S_IWGRP | S_IWOTH)) && !(st.st_mode & S_ISVTX)) {
        return absl::FailedPreconditionError(absl::StrCat(
            refuse, "a directory above it, ", p.string(), ", has mode ", Mode(st.st_mode),
            ": others may write there and could replace it"));
      }
    }
    if (p == p.root_path()) break;
  }
  return absl::OkStatus();
}

std::string DefaultRuntimeDir() {
  if (const char* d = std::getenv("TAPKIT_RUNTIME_DIR"); d && *d) return d;
  if (const char* x = std::getenv("XDG_RUNTIME_DIR"); x && *x && XdgUsable(x)) {
    return absl::StrCat(x, "/tapkit");
  }
  if (::geteuid() == 0) return "/run/tapkit";
  return absl::StrCat("/tmp/tapkit-", ::geteuid());
}

absl::Status CheckRuntimeDir(const std::string& dir, bool create, bool create_parents) {
  if (dir.empty()) return absl::InvalidArgumentError("the runtime directory is an empty path");
  if (create) {
    // Checked before anything is made: a refused directory is not left behind.
    std::string plain = std::filesystem::path(dir).lexically_normal().string();
    while (plain.size() > 1 && plain.back() == '/') plain.pop_back();
    if (absl::Status a =
            CheckAncestors(plain, absl::StrCat("runtime directory ", dir, " is refused: "));
        !a.ok()) {
      return a;
    }
    if (create_parents) {
      std::error_code ec;
      std::filesystem::path parent = std::filesystem::path(dir).parent_path();
      if (!parent.empty()) std::filesystem::create_directories(parent, ec);
      if (ec) {
        return absl::FailedPreconditionError(absl::StrCat("runtime directory ", dir,
                                                          ": cannot create its parent ",
                                                          parent.string(), ": ", ec.message()));
      }
    }
    // mkdir applies the umask, which can only take bits away from 0700.
    if (::mkdir(dir.c_str(), 0700) != 0 && errno != EEXIST) {
      return absl::FailedPreconditionError(
          absl::StrCat("runtime directory ", dir, ": cannot create it: ", std::strerror(errno)));
    }
  }
  // lstat sees the last component itself only in a path that ends in it: "link/", "link/." and
  // "link//" are looked up through the link. The check is made on the path written plainly, and
  // the path as given must name that same directory.
  std::string plain = std::filesystem::path(dir).lexically_normal().string();
  while (plain.size() > 1 && plain.back() == '/') plain.pop_back();
  struct stat st;
  if (::lstat(plain.c_str(), &st) != 0) {
    int e = errno;
    std::string msg = absl::StrCat("runtime directory ", dir, ": ", std::strerror(e));
    if (e == ENOENT) {
      return absl::NotFoundError(
          absl::StrCat(msg, " (is the control plane running? tap-controlplane creates it)"));
    }
    return absl::FailedPreconditionError(msg);
  }
  std::string refuse = absl::StrCat("runtime directory ", dir, " is refused: ");
  if (S_ISLNK(st.st_mode)) {
    return absl::FailedPreconditionError(
        absl::StrCat(refuse, "it is a symbolic link (another user may control where it points)"));
  }
  if (!S_ISDIR(st.st_mode)) {
    return absl::FailedPreconditionError(absl::StrCat(refuse, "it is not a directory"));
  }
  if (absl::Status a = CheckAncestors(plain, refuse); !a.ok()) return a;
  struct stat named;
  if (::stat(dir.c_str(), &named) != 0 || named.st_dev != st.st_dev || named.st_ino != st.st_ino) {
    return absl::FailedPreconditionError(absl::StrCat(
        refuse, "it leads through a symbolic link (to another directory than ", plain, ")"));
  }
  if (st.st_uid != ::geteuid()) {
    return absl::FailedPreconditionError(absl::StrCat(refuse, "it is owned by uid ", st.st_uid,
                                                      ", not by uid ", ::geteuid(),
                                                      " (this user); remove it"));
  }
  if (st.st_mode & 077) {
    return absl::FailedPreconditionError(
        absl::StrCat(refuse, "it has mode ", Mode(st.st_mode),
                     ": group or others have access (chmod 700 it, or remove it)"));
  }
  return absl::OkStatus();
}

absl::StatusOr<std::string> SecureRuntimeDir(bool create) {
  std::string dir = DefaultRuntimeDir();
  const char* tapkit_dir = std::getenv("TAPKIT_RUNTIME_DIR");
  const char* xdg = std::getenv("XDG_RUNTIME_DIR");
  bool xdg_case = !(tapkit_dir && *tapkit_dir) && xdg && *xdg && XdgUsable(xdg);
  if (absl::Status s = CheckRuntimeDir(dir, create, create && xdg_case); !s.ok()) return s;
  return dir;
}

std::string ControlPlaneAddressIn(const std::string& dir) {
  return absl::StrCat("unix:", dir, "/controlplane.sock");
}

absl::StatusOr<std::string> ControlPlaneAddressForClient() {
  absl::StatusOr<std::string> dir = SecureRuntimeDir(false);
  if (!dir.ok()) return dir.status();
  return ControlPlaneAddressIn(*dir);
}

absl::StatusOr<std::string> ReadTokenFile(const std::string& path) {
  // O_NONBLOCK: a FIFO at the path must not hold the program forever (it is refused below).
  int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC | O_NOCTTY | O_NONBLOCK);
  if (fd < 0) {
    int e = errno;
    std::string msg = absl::StrCat("token file ", path, ": ", std::strerror(e));
    if (e == ENOENT) return absl::NotFoundError(msg);
    return absl::PermissionDeniedError(msg);
  }
  struct stat st;
  if (::fstat(fd, &st) != 0) {
    int e = errno;
    ::close(fd);
    return absl::PermissionDeniedError(absl::StrCat("token file ", path, ": ", std::strerror(e)));
  }
  if (!S_ISREG(st.st_mode)) {
    ::close(fd);
    return absl::InvalidArgumentError(absl::StrCat("token file ", path, " is not a regular file"));
  }
  if (st.st_uid != ::geteuid() && st.st_uid != 0) {
    // As ssh with a private key: another user who owns the file can read or replace the token.
    ::close(fd);
    return absl::PermissionDeniedError(absl::StrCat("token file ", path, " is owned by uid ",
                                                    st.st_uid, ", not by uid ", ::geteuid(),
                                                    " (this user) or root"));
  }
  if (st.st_mode & 077) {
    ::close(fd);
    return absl::PermissionDeniedError(
        absl::StrCat("token file ", path, " has mode ", Mode(st.st_mode),
                     ": group or others can read or write it; chmod 600 it"));
  }
  std::string token;
  char buf[4096];
  for (;;) {
    ssize_t n = ::read(fd, buf, sizeof buf);
    if (n < 0 && errno == EINTR) continue;
    if (n < 0) {
      int e = errno;
      ::close(fd);
      return absl::PermissionDeniedError(absl::StrCat("token file ", path, ": ", std::strerror(e)));
    }
    if (n == 0) break;
    token.append(buf, static_cast<size_t>(n));
    if (token.size() > (1 << 16)) {
      ::close(fd);
      return absl::InvalidArgumentError(
          absl::StrCat("token file ", path, " is over 64 KiB: not a token"));
    }
  }
  ::close(fd);
  absl::StripAsciiWhitespace(&token);
  if (token.empty()) {
    return absl::InvalidArgumentError(absl::StrCat("token file ", path, " holds no token"));
  }
  return token;
}

bool TokenMatches(const std::string& presented, const std::string& expected) {
  // The length is not secret (tokens have a known shape); the bytes are.
  if (presented.size() != expected.size()) return false;
  return CRYPTO_memcmp(presented.data(), expected.data(), expected.size()) == 0;
}

}  // namespace tapkit
