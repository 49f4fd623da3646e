#include "format/redact.h"

#include <openssl/evp.h>
#include <openssl/hmac.h>
#include <openssl/rand.h>

#include <cerrno>
#include <cstring>
#include <fstream>
#include <iterator>
#include <random>

#include "absl/strings/ascii.h"
#include "absl/strings/str_cat.h"

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
  std::ifstream in(path, std::ios::binary);
  if (!in) {
    if (errno == ENOENT) return absl::NotFoundError(absl::StrCat(path, ": no such file"));
    return absl::PermissionDeniedError(absl::StrCat(path, ": ", std::strerror(errno)));
  }
  std::string key((std::istreambuf_iterator<char>(in)), {});
  if (key.size() < 16) {
    return absl::InvalidArgumentError(
        absl::StrCat(path, ": a redaction key needs at least 16 bytes, the file has ", key.size()));
  }
  return key;
}

}  // namespace tapkit
