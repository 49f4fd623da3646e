// json_writer.h: a fast streaming JSON writer, for the outputs that print one JSON document per
// exchange at reading speed (tapcat -o json and -o har; issue 11 asks them to keep up with the
// reader: an nlohmann::json tree per exchange ran at 0.06x the reader's rate).
//
// The writer appends to a std::string through a raw pointer, grown ahead so that no single write
// checks capacity, and escapes strings 16 bytes at a time. Its escapes are nlohmann-json's dump()
// (\" \\ \b \f \n \r \t, other control bytes as \u00xx, UTF-8 passed through): a caller that
// emits members in std::map (byte) order gets byte for byte what nlohmann prints for the same
// document (render_test checks AppendJson so). It does not check UTF-8: strings given to Str must
// be UTF-8 (IsUtf8, render.h); TextMember writes base64 otherwise.
//
// Usage: Open('{'), Key("a"), Uint(1), Key("b"), Str("x"), Close('}'), Newline(). The writer places
// the commas; balancing Open and Close is the caller's.
//
// Thread-safety: one writer per string, used by one thread; the string must not be touched while
// a writer on it lives (the destructor trims it to what was written).
#ifndef TAPKIT_FORMAT_JSON_WRITER_H_
#define TAPKIT_FORMAT_JSON_WRITER_H_

#include <algorithm>
#include <array>
#include <cstdint>
#include <cstring>
#include <string>
#include <string_view>

#if defined(__SSE2__)
#include <emmintrin.h>
#endif

#include "absl/strings/escaping.h"
#include "format/render.h"

namespace tapkit {

class JsonWriter {
 public:
  explicit JsonWriter(std::string* out) : out_(out), at_(out->size()) {
    out_->resize(at_ + 2048);
    Rebase(at_);
  }
  ~JsonWriter() { out_->resize(static_cast<size_t>(w_ - out_->data())); }
  JsonWriter(const JsonWriter&) = delete;
  JsonWriter& operator=(const JsonWriter&) = delete;

  void Open(char c) {
    Reserve(2);
    Comma();
    *w_++ = c;
    first_ = true;
  }
  void Close(char c) {
    Reserve(1);
    *w_++ = c;
    first_ = false;
  }
  // "key": (the value follows). Keys are docs/json.md's member names: ASCII letters only (a kind
  // name is checked by IsKindName), so they need no escaping.
  // A literal key: its length is known, so the copy is a fixed-size move.
  template <size_t N>
  void Key(const char (&k)[N]) {
    Reserve(N + 4);
    Comma();
    *w_++ = '"';
    std::memcpy(w_, k, N - 1);
    w_ += N - 1;
    *w_++ = '"';
    *w_++ = ':';
    first_ = true;
  }
  void Key(std::string_view k) {
    Reserve(k.size() + 4);
    Comma();
    *w_++ = '"';
    std::memcpy(w_, k.data(), k.size());
    w_ += k.size();
    *w_++ = '"';
    *w_++ = ':';
    first_ = true;  // no comma before the value
  }
  void Str(std::string_view s) {
    Reserve(1);
    Comma();
    String(s);
  }
  // Writes `s` as a string when it is UTF-8 and returns true; otherwise writes nothing and returns
  // false. The UTF-8 check runs only when the escape pass met a byte >= 0x80, so ASCII (nearly all
  // of HTTP) is scanned once.
  bool StrIfUtf8(std::string_view s) {
    Mark m = Here();
    Reserve(1);
    Comma();
    if (String(s) && !IsUtf8(s)) {
      Rewind(m);
      return false;
    }
    return true;
  }
  // A position to come back to (the output since then is dropped).
  struct Mark {
    size_t offset;
    bool first;
  };
  Mark Here() const { return {static_cast<size_t>(w_ - out_->data()), first_}; }
  void Rewind(const Mark& m) {
    w_ = out_->data() + m.offset;
    first_ = m.first;
  }
  void Uint(uint64_t v) {
    Reserve(22);
    Comma();
    // Two digits at a time (a division per pair).
    static constexpr char kPairs[] =
        "00010203040506070809101112131415161718192021222324252627282930313233343536373839"
        "40414243444546474849505152535455565758596061626364656667686970717273747576777879"
        "8081828384858687888990919293949596979899";
    char buf[24];
    char* e = buf + sizeof buf;
    char* p = e;
    while (v >= 100) {
      unsigned pair = static_cast<unsigned>(v % 100);
      v /= 100;
      p -= 2;
      std::memcpy(p, kPairs + 2 * pair, 2);
    }
    if (v >= 10) {
      p -= 2;
      std::memcpy(p, kPairs + 2 * v, 2);
    } else {
      *--p = static_cast<char>('0' + v);
    }
    std::memcpy(w_, p, static_cast<size_t>(e - p));
    w_ += e - p;
  }
  void Int(int64_t v) {
    if (v < 0) {
      Reserve(2);
      Comma();
      *w_++ = '-';
      first_ = true;
      Uint(static_cast<uint64_t>(-(v + 1)) + 1);
    } else {
      Uint(static_cast<uint64_t>(v));
    }
  }
  // Nanoseconds as an exact number of milliseconds ("2", "1.5", "0.000001"), as HAR's times.
  void Milliseconds(uint64_t ns) {
    Uint(ns / 1'000'000);
    uint64_t frac = ns % 1'000'000;
    if (frac == 0) return;
    char digits[7] = {'.'};
    int last = 0;
    for (int k = 6; k >= 1; --k) {
      digits[k] = static_cast<char>('0' + frac % 10);
      if (!last && frac % 10) last = k;
      frac /= 10;
    }
    Reserve(7);
    std::memcpy(w_, digits, static_cast<size_t>(last + 1));
    w_ += last + 1;
  }
  void Newline() {
    Reserve(1);
    *w_++ = '\n';
  }
  void Bool(bool b) { Raw(b ? std::string_view("true") : std::string_view("false")); }
  void Null() { Raw("null"); }
  // A member under docs/json.md's text-or-base64 rule: "key": text, or "key": base64 followed by
  // "keyEncoding": "base64" (no member name sorts between the two).
  void TextMember(std::string_view key, std::string_view s) {
    Key(key);
    if (!StrIfUtf8(s)) {
      Str(absl::Base64Escape(absl::string_view(s.data(), s.size())));
      Key(std::string(key) + "Encoding");
      Str("base64");
    }
  }

 private:
  void Rebase(size_t at) {
    w_ = out_->data() + at;
    limit_ = out_->data() + out_->size();
  }
  // Makes room for `n` more bytes at the write position.
  void Reserve(size_t n) {
    if (static_cast<size_t>(limit_ - w_) >= n) return;
    size_t at = static_cast<size_t>(w_ - out_->data());
    // std::string grows its capacity geometrically itself; only the bytes asked for are zeroed.
    out_->resize(at + n + 2048);
    Rebase(at);
  }
  void Raw(std::string_view s) {
    Reserve(s.size() + 1);
    Comma();
    std::memcpy(w_, s.data(), s.size());
    w_ += s.size();
  }
  void Comma() {
    if (!first_) *w_++ = ',';
    first_ = false;
  }
  // Escapes `s` quoted (json_writer.cc). Returns true when `s` holds a byte >= 0x80.
  bool String(std::string_view s);

  std::string* out_;
  size_t at_;
  char* w_ = nullptr;
  char* limit_ = nullptr;
  bool first_ = true;
};

}  // namespace tapkit

#endif  // TAPKIT_FORMAT_JSON_WRITER_H_
