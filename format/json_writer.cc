#include "format/json_writer.h"

#if defined(__x86_64__) || defined(__i386__)
#include <immintrin.h>
#endif

namespace tapkit {
namespace {

// 1: escape as \u00xx; other non-zero: the letter after the backslash.
constexpr auto kEscape = [] {
  std::array<char, 256> t{};
  for (int c = 0; c < 0x20; ++c) t[c] = 1;
  t['"'] = '"';
  t['\\'] = '\\';
  t['\b'] = 'b';
  t['\f'] = 'f';
  t['\n'] = 'n';
  t['\r'] = 'r';
  t['\t'] = 't';
  return t;
}();
constexpr char kHex[] = "0123456789abcdef";

// Writes the escape of `c` at `w` and returns the position after it. `c` needs one (kEscape).
inline char* Escape(unsigned char c, char* w) {
  char e = kEscape[c];
  if (e != 1) {
    w[0] = '\\';
    w[1] = e;
    return w + 2;
  }
  std::memcpy(w, "\\u00", 4);
  w[4] = kHex[c >> 4];
  w[5] = kHex[c & 15];
  return w + 6;
}

#if !defined(__SSE2__)
// The bytes of `s` escaped, from `p` on, one at a time (a tail shorter than a block, or every
// byte where there are no vector registers). Needs room for six bytes per input byte.
inline char* EscapeBytes(const char* p, const char* end, char* w, unsigned* high) {
  for (; p != end; ++p) {
    unsigned char c = static_cast<unsigned char>(*p);
    *high |= c & 0x80;
    if (kEscape[c] == 0) {
      *w++ = static_cast<char>(c);
    } else {
      w = Escape(c, w);
    }
  }
  return w;
}
#endif

#if defined(__SSE2__)
// Bytes of the 16 in `v` that need an escape: control bytes, '"' and '\\'; and of those the
// control bytes alone.
inline unsigned NeedsEscape(__m128i v, unsigned* control) {
  __m128i ctl = _mm_cmpeq_epi8(_mm_and_si128(v, _mm_set1_epi8(static_cast<char>(0xe0))),
                               _mm_setzero_si128());
  __m128i q = _mm_cmpeq_epi8(v, _mm_set1_epi8('"'));
  __m128i b = _mm_cmpeq_epi8(v, _mm_set1_epi8('\\'));
  *control = static_cast<unsigned>(_mm_movemask_epi8(ctl));
  return static_cast<unsigned>(_mm_movemask_epi8(_mm_or_si128(ctl, _mm_or_si128(q, b))));
}

// The room a stretch with control bytes may need from `p` on: six bytes per input byte (\u00xx),
// 16 of over-copy and the closing quote. Without a control byte, each input byte takes at most
// two (String reserves that at the start), so only control bytes send the loops back to String
// for more.
inline bool RoomForControl(const char* p, const char* end, const char* w, const char* limit) {
  return limit - w >= (end - p) * 6 + 32;
}

// One block of 16 bytes (`v`, read at `p`) with the escapes in `mask`, escape by escape. Copies
// go through a zero-padded copy of the block, so that the fixed-size over-copies never read past
// the input. Needs room for 16 * 6 bytes plus 16 of over-copy at `w`.
inline char* EscapeBlock(__m128i v, unsigned mask, char* w) {
  alignas(16) char block[32];
  _mm_store_si128(reinterpret_cast<__m128i*>(block), v);
  _mm_store_si128(reinterpret_cast<__m128i*>(block + 16), _mm_setzero_si128());
  unsigned i = 0;
  while (mask != 0) {
    unsigned n = static_cast<unsigned>(__builtin_ctz(mask));
    mask &= mask - 1;
    std::memcpy(w, block + i, 16);  // a fixed-size move; only n - i bytes count
    w += n - i;
    w = Escape(static_cast<unsigned char>(block[n]), w);
    i = n + 1;
  }
  std::memcpy(w, block + i, 16);
  return w + (16 - i);
}

// The bytes from `*pp` to `end` one at a time: a string shorter than a block, or a tail with a
// control byte. Stops at a control byte that would not fit (RoomForControl), leaving `*pp` there.
inline char* ScalarTail(const char** pp, const char* end, char* w, const char* limit,
                        unsigned* high) {
  const char* p = *pp;
  for (; p != end; ++p) {
    unsigned char c = static_cast<unsigned char>(*p);
    *high |= c & 0x80;
    if (kEscape[c] == 0) {
      *w++ = static_cast<char>(c);
    } else if (kEscape[c] != 1 || RoomForControl(p, end, w, limit)) {
      w = Escape(c, w);
    } else {
      break;
    }
  }
  *pp = p;
  return w;
}

// pshufb controls that put a backslash before each byte of 8 whose bit is set in the index:
// source bytes 0..7 are the input, 8..15 backslashes; 0x80 writes a zero (past the end).
constexpr auto kExpand = [] {
  std::array<std::array<uint8_t, 16>, 256> t{};
  for (int m = 0; m < 256; ++m) {
    int j = 0;
    for (int i = 0; i < 8; ++i) {
      if (m & (1 << i)) t[m][j++] = 8;
      t[m][j++] = static_cast<uint8_t>(i);
    }
    while (j < 16) t[m][j++] = 0x80;
  }
  return t;
}();

// pshufb controls that move bytes k..15 down to 0..15-k (zeros above): index k.
constexpr auto kShiftDown = [] {
  std::array<std::array<uint8_t, 16>, 17> t{};
  for (int k = 0; k <= 16; ++k) {
    for (int i = 0; i < 16; ++i) t[k][i] = i + k < 16 ? static_cast<uint8_t>(i + k) : 0x80;
  }
  return t;
}();

// JSON bodies put a quote every few bytes; escaping them one by one was most of tapcat -o json's
// time. With SSSE3, a block whose escapes are all '"' or '\\' (a backslash before the byte) is
// expanded 8 bytes at a time by a byte shuffle instead; control bytes take EscapeBlock.
__attribute__((target("ssse3,popcnt"))) char* EscapeSsse3(const char* begin, const char** pp,
                                                           const char* end, char* w,
                                                           const char* limit, unsigned* high_out) {
  const char* p = *pp;
  __m128i high = _mm_setzero_si128();
  const __m128i backslashes = _mm_set1_epi8('\\');
  while (end - p >= 16) {
    __m128i v = _mm_loadu_si128(reinterpret_cast<const __m128i*>(p));
    high = _mm_or_si128(high, v);
    unsigned control;
    unsigned mask = NeedsEscape(v, &control);
    if (mask == 0) {
      _mm_storeu_si128(reinterpret_cast<__m128i*>(w), v);
      w += 16;
    } else if (control != 0) {
      if (!RoomForControl(p, end, w, limit)) break;
      w = EscapeBlock(v, mask, w);
    } else {
      unsigned lo = mask & 0xff, hi = mask >> 8;
      __m128i src_lo = _mm_unpacklo_epi64(v, backslashes);
      __m128i src_hi = _mm_unpackhi_epi64(v, backslashes);
      src_hi = _mm_unpacklo_epi64(src_hi, backslashes);
      _mm_storeu_si128(reinterpret_cast<__m128i*>(w),
                       _mm_shuffle_epi8(src_lo, _mm_loadu_si128(reinterpret_cast<const __m128i*>(
                                                    kExpand[lo].data()))));
      w += 8 + __builtin_popcount(lo);
      _mm_storeu_si128(reinterpret_cast<__m128i*>(w),
                       _mm_shuffle_epi8(src_hi, _mm_loadu_si128(reinterpret_cast<const __m128i*>(
                                                    kExpand[hi].data()))));
      w += 8 + __builtin_popcount(hi);
    }
    p += 16;
  }
  *high_out |= static_cast<unsigned>(_mm_movemask_epi8(high));
  *pp = p;
  if (p == end || end - p >= 16) return w;  // done, or stopped for room
  if (end - begin < 16) return ScalarTail(pp, end, w, limit, high_out);
  // The tail of a string of a block or more: its last 16 bytes, read where they are (no copy,
  // so no store-forwarding stall) and shifted down so that the tail starts at byte 0.
  unsigned len = static_cast<unsigned>(end - p);
  __m128i v = _mm_shuffle_epi8(
      _mm_loadu_si128(reinterpret_cast<const __m128i*>(end - 16)),
      _mm_loadu_si128(reinterpret_cast<const __m128i*>(kShiftDown[16 - len].data())));
  unsigned valid = (1u << len) - 1;  // the zeros shifted in are control bytes: masked off
  unsigned control;
  unsigned mask = NeedsEscape(v, &control) & valid;
  if ((control & valid) != 0) return ScalarTail(pp, end, w, limit, high_out);
  *high_out |= static_cast<unsigned>(_mm_movemask_epi8(v)) & valid;
  unsigned lo = mask & 0xff, hi = mask >> 8;
  _mm_storeu_si128(reinterpret_cast<__m128i*>(w),
                   _mm_shuffle_epi8(_mm_unpacklo_epi64(v, backslashes),
                                    _mm_loadu_si128(reinterpret_cast<const __m128i*>(
                                        kExpand[lo].data()))));
  w += std::min(len, 8u) + __builtin_popcount(lo);
  if (len > 8) {
    __m128i src_hi = _mm_unpacklo_epi64(_mm_unpackhi_epi64(v, backslashes), backslashes);
    _mm_storeu_si128(reinterpret_cast<__m128i*>(w),
                     _mm_shuffle_epi8(src_hi, _mm_loadu_si128(reinterpret_cast<const __m128i*>(
                                                  kExpand[hi].data()))));
    w += (len - 8) + __builtin_popcount(hi);
  }
  *pp = end;
  return w;
}

char* EscapeSse2(const char** pp, const char* end, char* w, const char* limit,
                 unsigned* high_out) {
  const char* p = *pp;
  __m128i high = _mm_setzero_si128();
  while (end - p >= 16) {
    __m128i v = _mm_loadu_si128(reinterpret_cast<const __m128i*>(p));
    high = _mm_or_si128(high, v);
    unsigned control;
    unsigned mask = NeedsEscape(v, &control);
    if (mask == 0) {
      _mm_storeu_si128(reinterpret_cast<__m128i*>(w), v);
      w += 16;
    } else {
      if (control != 0 && !RoomForControl(p, end, w, limit)) break;
      w = EscapeBlock(v, mask, w);
    }
    p += 16;
  }
  *high_out |= static_cast<unsigned>(_mm_movemask_epi8(high));
  *pp = p;
  if (p == end || end - p >= 16) return w;  // done, or stopped for room
  return ScalarTail(pp, end, w, limit, high_out);
}

const bool kHaveSsse3 = (__builtin_cpu_init(), __builtin_cpu_supports("ssse3") && __builtin_cpu_supports("popcnt"));
#endif

}  // namespace

bool JsonWriter::String(std::string_view s) {
  const char* p = s.data();
  const char* end = p + s.size();
  // Room for every byte escaped in two bytes ('"', '\\'), the quotes and 16 bytes of over-copy,
  // reserved once; the loops stop where a control byte (six bytes as \u00xx) would not fit, and
  // are given room for six bytes per byte left.
  Reserve(s.size() * 2 + 2 + 16);
  char* w = w_;
  *w++ = '"';
  unsigned high = 0;
#if defined(__SSE2__)
  for (;;) {
    w = kHaveSsse3 ? EscapeSsse3(s.data(), &p, end, w, limit_, &high)
                   : EscapeSse2(&p, end, w, limit_, &high);
    if (p == end) break;
    w_ = w;
    Reserve(static_cast<size_t>(end - p) * 6 + 32);
    w = w_;
  }
#else
  w_ = w;
  Reserve(s.size() * 6 + 2);
  w = EscapeBytes(p, end, w_, &high);
#endif
  *w++ = '"';
  w_ = w;
  return high != 0;
}

}  // namespace tapkit
