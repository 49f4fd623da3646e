// redact.h: secret header values replaced by a keyed digest before they leave the capture
// (docs/architecture.md section 6).
//
// A redacted value reads "tapkit-redacted:" followed by the first 12 hex digits of
// HMAC-SHA256(key, value): equal values stay equal within one capture (one key), so a reader can
// still see that two requests carried the same token, and without the key the value cannot be
// guessed or checked. The key is random per capture unless a key file gives one.
//
// Thread-safety: a Redactor is immutable after construction; Apply may run on many threads.
#ifndef TAPKIT_FORMAT_REDACT_H_
#define TAPKIT_FORMAT_REDACT_H_

#include <string>
#include <string_view>
#include <vector>

#include "absl/status/statusor.h"
#include "format/exchange.h"

namespace tapkit {

// The header names redacted by default (lower case): authorization, proxy-authorization, cookie,
// set-cookie, x-api-key, x-auth-token, x-csrf-token.
const std::vector<std::string>& DefaultRedactedHeaders();

inline constexpr std::string_view kRedactedPrefix = "tapkit-redacted:";

class Redactor {
 public:
  // `headers`: names to redact, compared case-insensitively (empty = DefaultRedactedHeaders());
  // `key`: the HMAC key (bytes); empty = 32 random bytes from the system's generator, never
  // stored anywhere.
  Redactor(std::vector<std::string> headers, std::string key);

  // Replaces the values of the named fields in every header list of `x` (request and response
  // headers and trailers, interim responses). Returns the number of values replaced.
  size_t Apply(Exchange* x) const;
  // The marker for one value.
  std::string Redact(std::string_view value) const;

  const std::vector<std::string>& headers() const { return headers_; }
  const std::string& key() const { return key_; }

 private:
  bool Secret(std::string_view name) const;
  std::vector<std::string> headers_;
  std::string key_;
};

// Reads a key file (16 bytes to 64 KiB of key material; the whole file is the key). The key is
// a secret (whoever has it can check a guess against a marker), so, as ssh with a private key,
// a file that group or others may read or write, or that another user than the caller or root
// owns, is refused. Errors name the file: NotFound; PermissionDenied (unreadable, its mode or
// owner); InvalidArgument when not a regular file (a FIFO or a directory: refused without
// waiting on it) or of the wrong size. Never throws.
absl::StatusOr<std::string> ReadRedactionKey(const std::string& path);

}  // namespace tapkit

#endif  // TAPKIT_FORMAT_REDACT_H_
