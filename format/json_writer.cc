#include "format/json_writer.h"

#ifdef __SSE2__
#include <emmintrin.h>
#endif

#include <array>
#include <cstring>

#include "absl/strings/str_cat.h"

namespace tapkit {
namespace {

// The length of the well-formed UTF-8 sequence at the start of `s` (RFC 3629: no overlongs,
// surrogates or values past U+10FFFF), or 0.
size_t Utf8Length(const unsigned char* p, size_t n) {
  unsigned char c = p[0];
  size_t len;
  uint32_t cp;
  if (c >= 0xc2 && c <= 0xdf) {
    len = 2;
    cp = c & 0x1f;
  } else if (c >= 0xe0 && c <= 0xef) {
    len = 3;
    cp = c & 0x0f;
  } else if (c >= 0xf0 && c <= 0xf4) {
    len = 4;
    cp = c & 0x07;
  } else {
    return 0;
  }
  if (len > n) return 0;
  for (size_t k = 1; k < len; ++k) {
    if ((p[k] & 0xc0) != 0x80) return 0;
    cp = (cp << 6) | (p[k] & 0x3f);
  }
  if ((len == 3 && cp < 0x800) || (len == 4 && cp < 0x10000) || cp > 0x10ffff ||
      (cp >= 0xd800 && cp <= 0xdfff)) {
    return 0;
  }
  return len;
}

// kPlain[c]: the byte is copied as it is (printable ASCII other than '"' and '\\').
constexpr auto kPlain = [] {
  std::array<bool, 256> t{};
  for (int c = 0x20; c < 0x80; ++c) t[c] = c != '"' && c != '\\';
  return t;
}();

// Appends the escaped string; with `strict`, stops at the first byte that is not UTF-8 and
// returns false (the caller drops what was appended), else replaces such bytes by U+FFFD.
// Bytes are copied in runs: a run ends only at a byte that must be written otherwise. '"' and
// '\\' end a run with a backslash and begin the next one themselves; valid UTF-8 stays in the run.
bool AppendEscaped(std::string_view s, std::string* out, bool strict) {
  static const char kHex[] = "0123456789abcdef";
  const auto* p = reinterpret_cast<const unsigned char*>(s.data());
  const size_t n = s.size();
  out->reserve(out->size() + n + n / 8 + 2);
  out->push_back('"');
  size_t run = 0, i = 0;
#ifdef __SSE2__
  const __m128i quote = _mm_set1_epi8('"'), backslash = _mm_set1_epi8('\\'),
                space = _mm_set1_epi8(0x20);
#endif
  while (i < n) {
#ifdef __SSE2__
    // Sixteen bytes at a time (SSE2, in every x86-64): a signed compare below 0x20 finds control
    // bytes and, as negative numbers, bytes from 0x80.
    if (i + 16 <= n) {
      __m128i v = _mm_loadu_si128(reinterpret_cast<const __m128i*>(p + i));
      int m = _mm_movemask_epi8(_mm_or_si128(
          _mm_or_si128(_mm_cmpeq_epi8(v, quote), _mm_cmpeq_epi8(v, backslash)),
          _mm_cmplt_epi8(v, space)));
      if (m == 0) {
        i += 16;
        continue;
      }
      i += static_cast<size_t>(__builtin_ctz(static_cast<unsigned>(m)));
    } else
#endif
    if (kPlain[p[i]]) {
      ++i;
      continue;
    }
    unsigned char c = p[i];
    if (c >= 0x80) {
      size_t len = Utf8Length(p + i, n - i);
      if (len) {
        i += len;  // stays in the run
        continue;
      }
      if (strict) return false;
      out->append(s.data() + run, i - run);
      out->append("\xef\xbf\xbd");  // U+FFFD for a byte that is not UTF-8
      run = ++i;
      continue;
    }
    out->append(s.data() + run, i - run);
    if (c == '"' || c == '\\') {
      out->push_back('\\');
      run = i++;  // the byte itself begins the next run
      continue;
    }
    switch (c) {
      case '\n': out->append("\\n"); break;
      case '\r': out->append("\\r"); break;
      case '\t': out->append("\\t"); break;
      case '\b': out->append("\\b"); break;
      case '\f': out->append("\\f"); break;
      default: {
        const char u[6] = {'\\', 'u', '0', '0', kHex[c >> 4], kHex[c & 15]};
        out->append(u, 6);
      }
    }
    run = ++i;
  }
  out->append(s.data() + run, n - run);
  out->push_back('"');
  return true;
}

}  // namespace

void AppendJsonString(std::string_view s, std::string* out) { AppendEscaped(s, out, false); }

bool AppendJsonUtf8String(std::string_view s, std::string* out) {
  size_t mark = out->size();
  if (AppendEscaped(s, out, true)) return true;
  out->resize(mark);
  return false;
}

void AppendJsonMilliseconds(uint64_t ns, std::string* out) {
  absl::StrAppend(out, ns / 1'000'000);
  uint64_t frac = ns % 1'000'000;
  if (frac == 0) return;
  char digits[7] = {'.', 0, 0, 0, 0, 0, 0};
  int last = 0;
  for (int k = 6; k >= 1; --k) {
    digits[k] = static_cast<char>('0' + frac % 10);
    if (!last && frac % 10) last = k;
    frac /= 10;
  }
  out->append(digits, last + 1);
}

void JsonWriter::Value() {
  if (after_key_) {
    after_key_ = false;
    return;
  }
  if (!stack_.empty()) {
    if (stack_.back().first) out_->push_back(',');
    stack_.back().first = true;
  }
}

void JsonWriter::Open(char c) {
  Value();
  out_->push_back(c);
  stack_.emplace_back(false, c == '{');
}

void JsonWriter::Close(char c) {
  stack_.pop_back();
  out_->push_back(c);
}

void JsonWriter::Key(std::string_view key) {
  if (stack_.back().first) out_->push_back(',');
  stack_.back().first = true;
  bool plain = true;
  for (unsigned char c : key) plain &= kPlain[c];
  if (plain) {  // the usual case, a name from the program: no escaping pass
    out_->push_back('"');
    out_->append(key);
    out_->append("\":");
  } else {
    AppendJsonString(key, out_);
    out_->push_back(':');
  }
  after_key_ = true;
}

void JsonWriter::String(std::string_view s) {
  Value();
  AppendJsonString(s, out_);
}

void JsonWriter::Int(int64_t v) {
  Value();
  absl::StrAppend(out_, v);
}

void JsonWriter::Milliseconds(uint64_t ns) {
  Value();
  AppendJsonMilliseconds(ns, out_);
}

bool JsonWriter::Utf8String(std::string_view s) {
  size_t mark = out_->size();
  bool had_member = !stack_.empty() && stack_.back().first;
  bool after_key = after_key_;
  Value();
  if (AppendJsonUtf8String(s, out_)) return true;
  out_->resize(mark);  // the comma too
  if (!stack_.empty()) stack_.back().first = had_member;
  after_key_ = after_key;
  return false;
}

void JsonWriter::Raw(std::string_view json) {
  Value();
  out_->append(json);
}

void JsonWriter::Bool(bool v) {
  Value();
  out_->append(v ? "true" : "false");
}

}  // namespace tapkit
