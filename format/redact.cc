#include "format/redact.h"

#include <openssl/evp.h>
#include <openssl/hmac.h>
#include <openssl/rand.h>
#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <random>

#include "absl/strings/ascii.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"

namespace tapkit {

const std::vector<std::string>& DefaultRedactedHeaders() {
  static const std::vector<std::string> names = {
      "authorization", "proxy-authorization", "cookie",      "set-cookie",
      "x-api-key",     "x-auth-token",        "x-csrf-token"};
  return names;
}

Redactor::Redactor(std::vector<std::string> headers, std::string key)
    : headers_(headers.empty() ? DefaultRedactedHeaders() : std::move(headers)),
      key_(std::move(key)) {
  for (std::string& h : headers_) absl::AsciiStrToLower(&h);
  if (key_.empty()) {
    key_.resize(32);
    if (RAND_bytes(reinterpret_cast<unsigned char*>(key_.data()), 32) != 1) {
      std::random_device rd;  // OpenSSL's generator failed: the kernel's, through the library
      for (char& c : key_) c = static_cast<char>(rd());
    }
  }
}

bool Redactor::Secret(std::string_view name) const {
  // A name as a lenient parser keeps it ("Authorization " before the colon, RFC 9112 section
  // 5.1 says reject; servers that accept it still read the secret): compare it trimmed.
  while (!name.empty() && (name.back() == ' ' || name.back() == '\t')) name.remove_suffix(1);
  while (!name.empty() && (name.front() == ' ' || name.front() == '\t')) name.remove_prefix(1);
  for (const std::string& h : headers_) {
    if (h.size() == name.size() && std::equal(h.begin(), h.end(), name.begin(), [](char a, char b) {
          return a == absl::ascii_tolower(static_cast<unsigned char>(b));
        })) {
      return true;
    }
  }
  return false;
}

std::string Redactor::Redact(std::string_view value) const {
  unsigned char mac[EVP_MAX_MD_SIZE];
  unsigned int len = 0;
  HMAC(EVP_sha256(), key_.data(), static_cast<int>(key_.size()),
       reinterpret_cast<const unsigned char*>(value.data()), value.size(), mac, &len);
  static const char kHex[] = "0123456789abcdef";
  std::string out(kRedactedPrefix);
  for (unsigned i = 0; i < 6 && i < len; ++i) {
    out.push_back(kHex[mac[i] >> 4]);
    out.push_back(kHex[mac[i] & 15]);
  }
  return out;
}

size_t Redactor::Apply(Exchange* x) const {
  size_t n = 0;
  auto list = [&](std::vector<Header>& hs) {
    for (Header& h : hs) {
      if (Secret(h.name) && !h.value.starts_with(kRedactedPrefix)) {
        h.value = Redact(h.value);
        ++n;
      }
    }
  };
  if (x->request) {
    list(x->request->headers);
    list(x->request->trailers);
  }
  for (InterimResponse& i : x->interim) list(i.headers);
  if (x->response) {
    list(x->response->headers);
    list(x->response->trailers);
  }
  return n;
}

absl::StatusOr<std::string> ReadRedactionKey(const std::string& path) {
  constexpr size_t kMinKey = 16, kMaxKey = 64 << 10;
  int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC | O_NOCTTY | O_NONBLOCK);
  if (fd < 0) {
    int e = errno;
    if (e == ENOENT) return absl::NotFoundError(absl::StrCat(path, ": no such file"));
    return absl::PermissionDeniedError(absl::StrCat(path, ": ", std::strerror(e)));
  }
  auto fail = [fd](absl::Status s) {
    ::close(fd);
    return s;
  };
  struct stat st {};
  if (::fstat(fd, &st) != 0) {
    return fail(absl::PermissionDeniedError(absl::StrCat(path, ": ", std::strerror(errno))));
  }
  if (!S_ISREG(st.st_mode)) {
    return fail(absl::InvalidArgumentError(absl::StrCat(path, ": not a regular file")));
  }
  if (st.st_uid != ::geteuid() && st.st_uid != 0) {
    return fail(absl::PermissionDeniedError(absl::StrCat(
        path, ": owned by uid ", st.st_uid, ", not by uid ", ::geteuid(), " (this user) or root")));
  }
  if (st.st_mode & 077) {
    return fail(absl::PermissionDeniedError(
        absl::StrCat(path, ": mode ", absl::StrFormat("%04o", st.st_mode & 07777),
                     ": group or others can read or write the key; chmod 600 it")));
  }
  std::string key;
  char buf[4096];
  for (;;) {
    ssize_t n = ::read(fd, buf, sizeof buf);
    if (n < 0 && errno == EINTR) continue;
    if (n < 0) return fail(absl::PermissionDeniedError(absl::StrCat(path, ": ", std::strerror(errno))));
    if (n == 0) break;
    key.append(buf, static_cast<size_t>(n));
    if (key.size() > kMaxKey) break;
  }
  ::close(fd);
  if (key.size() < kMinKey || key.size() > kMaxKey) {
    return absl::InvalidArgumentError(absl::StrCat(
        path, ": a redaction key is 16 bytes to 64 KiB, the file has ",
        key.size() > kMaxKey ? std::string("more") : std::to_string(key.size())));
  }
  return key;
}

}  // namespace tapkit
