#include "format/exchange.h"

#include <arpa/inet.h>

#include <cstring>

#include "absl/strings/str_cat.h"

namespace tapkit {

std::string_view DirectionName(Direction d) {
  switch (d) {
    case Direction::kInbound:
      return "in";
    case Direction::kOutbound:
      return "out";
    case Direction::kUnknown:
      break;
  }
  return "-";
}

std::string_view TlsName(TlsState t) {
  switch (t) {
    case TlsState::kNo:
      return "false";
    case TlsState::kYes:
      return "true";
    case TlsState::kUnknown:
      break;
  }
  return "-";
}

std::string_view HttpVersionName(HttpVersion v) {
  switch (v) {
    case HttpVersion::kHttp09:
      return "HTTP/0.9";
    case HttpVersion::kHttp10:
      return "HTTP/1.0";
    case HttpVersion::kHttp11:
      return "HTTP/1.1";
    case HttpVersion::kHttp2:
      return "HTTP/2";
    case HttpVersion::kHttp3:
      return "HTTP/3";
    case HttpVersion::kUnknown:
      break;
  }
  return "-";
}

std::string_view CompletionName(Completion c) {
  switch (c) {
    case Completion::kComplete:
      return "complete";
    case Completion::kNoResponse:
      return "no-response";
    case Completion::kNoRequest:
      return "no-request";
    case Completion::kReset:
      return "reset";
    case Completion::kGap:
      return "gap";
    case Completion::kTruncated:
      return "truncated";
    case Completion::kCaptureEnded:
      return "capture-ended";
    case Completion::kMalformed:
      return "malformed";
    case Completion::kTimeout:
      return "timeout";
    case Completion::kAmbiguousPairing:
      return "ambiguous-pairing";
  }
  return "unknown";
}

IpAddress IpAddress::V4(uint8_t a, uint8_t b, uint8_t c, uint8_t d) {
  IpAddress ip;
  ip.family = 4;
  ip.bytes[0] = a;
  ip.bytes[1] = b;
  ip.bytes[2] = c;
  ip.bytes[3] = d;
  return ip;
}

IpAddress IpAddress::V6(const std::array<uint8_t, 16>& b) {
  IpAddress ip;
  ip.family = 6;
  ip.bytes = b;
  return ip;
}

std::optional<IpAddress> IpAddress::Parse(std::string_view text) {
  std::string s(text);
  IpAddress ip;
  if (inet_pton(AF_INET, s.c_str(), ip.bytes.data()) == 1) {
    ip.family = 4;
    return ip;
  }
  if (inet_pton(AF_INET6, s.c_str(), ip.bytes.data()) == 1) {
    ip.family = 6;
    return ip;
  }
  return std::nullopt;
}

std::string IpAddress::ToString() const {
  char buf[INET6_ADDRSTRLEN] = {};
  if (family == 4) {
    // Dotted decimal by hand: glibc's inet_ntop formats IPv4 with sprintf, which showed in
    // tapcat -o json's profile.
    char* w = buf;
    for (int i = 0; i < 4; ++i) {
      unsigned v = bytes[i];
      if (v >= 100) *w++ = static_cast<char>('0' + v / 100);
      if (v >= 10) *w++ = static_cast<char>('0' + v / 10 % 10);
      *w++ = static_cast<char>('0' + v % 10);
      if (i < 3) *w++ = '.';
    }
    return std::string(buf, static_cast<size_t>(w - buf));
  }
  // inet_ntop follows RFC 5952 (lower case, longest zero run compressed).
  if (family == 6 && inet_ntop(AF_INET6, bytes.data(), buf, sizeof buf)) return buf;
  return "-";
}

std::string Endpoint::ToString() const {
  if (ip.family == 6) return absl::StrCat("[", ip.ToString(), "]:", port);
  return absl::StrCat(ip.ToString(), ":", port);
}

}  // namespace tapkit
