#include "sidecar/packet_source.h"

#include <fcntl.h>
#include <pcap/pcap.h>
#include <pthread.h>
#include <signal.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <bit>
#include <cerrno>
#include <condition_variable>
#include <cstdio>
#include <cstring>
#include <deque>
#include <functional>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

#include "absl/strings/str_cat.h"

namespace tapkit {
namespace {

std::unique_ptr<PacketSource> NewPcapngSource(const std::string& path, const std::string& name,
                                              const std::string& bpf);
bool IsPcapngFile(const std::string& path);
// PcapngSource::SkipPackets on a source NewPcapngSource made.
void SkipPcapngPackets(PacketSource* pcapng, uint64_t n);

// Turns the host-order fields of an NFLOG or PFLOG frame read from a savefile written in the other
// byte order into this host's order, as libpcap 1.10 does before it hands such a frame over
// (pcap-util.c, pcap_post_process): NFLOG's TLV lengths and types (up to the first TLV that does
// not fit the frame), PFLOG's uid, pid, rule_uid and rule_pid (those the header length covers).
// `caplen` bytes at `data`, `wire` the length on the wire.
void SwapHostOrderFields(int link_type, uint8_t* data, uint32_t caplen, uint32_t wire) {
  auto swap16 = [](uint8_t* p) { std::swap(p[0], p[1]); };
  uint32_t len = std::min(caplen, wire);
  if (link_type == DLT_NFLOG) {
    if (len < 4 || data[1] != 0) return;  // no TLVs, or a version whose layout is unknown
    for (uint32_t at = 4; len - at >= 4;) {
      swap16(data + at);
      swap16(data + at + 2);
      uint16_t length;  // now in this host's order
      std::memcpy(&length, data + at, 2);
      uint32_t size = (uint32_t{length} + 3) & ~3u;
      if (size < 4 || size > len - at) return;
      at += size;
    }
  } else if (link_type == DLT_PFLOG) {
    if (len < 1) return;
    for (uint32_t at : {44u, 48u, 52u, 56u}) {  // uid, pid, rule_uid, rule_pid
      if (at + 4 > len || at + 4 > data[0]) return;
      std::reverse(data + at, data + at + 4);
    }
  }
}

// Compiles `bpf` the way libpcap compiles it for a savefile of `linktype` (a LINKTYPE_ value)
// written in the other byte order than this host's when `swapped`: through a 24-byte savefile
// header that libpcap opens, not pcap_open_dead, whose code differs (for DLT_NULL a savefile
// matches every BSD's AF_INET6 value, and its AF values are swapped with the file's order;
// LINKTYPE_RAW becomes DLT_RAW). False with `*why` when it does not compile.
bool CompileForSavefile(uint32_t linktype, uint32_t snaplen, bool swapped, const std::string& bpf,
                        bpf_program* out, std::string* why) {
  uint32_t fields[6] = {0xa1b2c3d4, 2 | (4u << 16), 0, 0, snaplen ? snaplen : 262144, linktype};
  uint8_t header[24];
  for (int k = 0; k < 6; ++k) {
    uint32_t v = fields[k];
    if (k == 1) {  // two 16-bit version fields, each in the file's order
      uint16_t major = 2, minor = 4;
      if (swapped) {
        major = static_cast<uint16_t>(major << 8);
        minor = static_cast<uint16_t>(minor << 8);
      }
      std::memcpy(header + 4, &major, 2);
      std::memcpy(header + 6, &minor, 2);
      continue;
    }
    if (swapped) v = __builtin_bswap32(v);
    std::memcpy(header + 4 * k, &v, 4);
  }
  FILE* hf = fmemopen(header, sizeof header, "rb");
  char err[PCAP_ERRBUF_SIZE] = {};
  pcap_t* sf =
      hf ? pcap_fopen_offline_with_tstamp_precision(hf, PCAP_TSTAMP_PRECISION_NANO, err) : nullptr;
  if (!sf) {
    if (hf) std::fclose(hf);
    *why = absl::StrCat("link type ", linktype, ": ", err);
    return false;
  }
  bool ok = pcap_compile(sf, out, bpf.c_str(), 1, PCAP_NETMASK_UNKNOWN) == 0;
  if (!ok) *why = pcap_geterr(sf);
  pcap_close(sf);
  return ok;
}

class PcapFileSource final : public PacketSource {
 public:
  PcapFileSource(pcap_t* p, std::string path, std::string name, std::string bpf,
                 std::unique_ptr<char[]> stdio_buffer = nullptr)
      : p_(p),
        path_(std::move(path)),
        name_(std::move(name)),
        bpf_(std::move(bpf)),
        stdio_buffer_(std::move(stdio_buffer)) {}
  ~PcapFileSource() override {
    if (filtered_) pcap_freecode(&filter_);
    pcap_close(p_);  // closes the stream before its buffer goes
  }

  // PacketSource
  bool Next(Frame* f) override {
    if (fallback_) {
      bool ok = fallback_->Next(f);
      if (ok) ++frames_;
      status_ = fallback_->status();
      return ok;
    }
    if (!status_.ok()) return false;
    pcap_pkthdr* h = nullptr;
    const u_char* data = nullptr;
    int rc;
    // The filter runs here rather than in libpcap (pcap_setfilter) so that packets read are
    // counted whether kept or not: the pcapng fallback below resumes after exactly those.
    while ((rc = pcap_next_ex(p_, &h, &data)) == 1) {
      ++read_;
      if (!filtered_ || pcap_offline_filter(&filter_, h, data)) break;
    }
    if (rc == 1) {
      ++frames_;
      f->link_type = pcap_datalink(p_);
      // Opened with nanosecond precision: tv_usec holds nanoseconds. Out-of-range sub-second
      // values (tcpdump's timestamp_invalid_nano) are taken as they are.
      f->ts_ns = static_cast<uint64_t>(h->ts.tv_sec) * 1'000'000'000ull +
                 static_cast<uint64_t>(h->ts.tv_usec);
      f->wire_length = std::max(h->len, h->caplen);
      f->data = std::span<const uint8_t>(data, h->caplen);
      return true;
    }
    if (rc == PCAP_ERROR) {
      std::string why = pcap_geterr(p_);
      // libpcap 1.10 stops at a pcapng interface whose link type differs from the first one's.
      // Such files are read by our own pcapng reader from here on: skip what was delivered.
      if (why.find("different from the type of the first interface") != std::string::npos &&
          path_ != "-" && IsPcapngFile(path_)) {
        auto ng = NewPcapngSource(path_, name_, bpf_);
        SkipPcapngPackets(ng.get(), read_);
        fallback_ = std::move(ng);
        return Next(f);
      }
      status_ = absl::DataLossError(absl::StrCat(name_, ": after ", frames_, " frames: ", why));
    }
    return false;
  }
  absl::Status status() const override { return status_; }
  int link_type() const override { return pcap_datalink(p_); }
  uint64_t frames() const override { return frames_; }

 private:
  pcap_t* p_;
  std::string path_, name_, bpf_;
  std::unique_ptr<char[]> stdio_buffer_;  // the stream's buffer (a file opened by path)

 public:
  bpf_program filter_{};  // compiled by libpcap for this savefile (OpenLibpcapFile)
  bool filtered_ = false;

 private:
  uint64_t read_ = 0;  // packets read from libpcap, kept or not
  absl::Status status_;
  uint64_t frames_ = 0;
  std::unique_ptr<PacketSource> fallback_;
};

// A file mapped for reading can be truncated by someone else while it is read; touching a page
// past the new end raises SIGBUS. The guard maps zero pages over the lost part instead (the read
// goes on, seeing zeros) and marks the mapping truncated, which its reader checks before every
// record: the capture ends with a torn-file error, not a crash. Up to kSlots mappings at once.
struct MapSlot {
  std::atomic<uintptr_t> begin{0}, end{0};
  std::atomic<bool> truncated{false};
};
MapSlot g_map_slots[8];
struct sigaction g_old_sigbus {};

class MapGuard {
 public:
  static constexpr int kSlots = 8;
  // Registers [begin, end); returns the slot, or -1 when all are taken (then do not map).
  static int Add(const uint8_t* begin, size_t size) {
    Install();
    for (int i = 0; i < kSlots; ++i) {
      uintptr_t expected = 0;
      if (g_map_slots[i].begin.compare_exchange_strong(expected,
                                                       reinterpret_cast<uintptr_t>(begin))) {
        g_map_slots[i].truncated.store(false);
        g_map_slots[i].end.store(reinterpret_cast<uintptr_t>(begin) + size);
        return i;
      }
    }
    return -1;
  }
  static void Remove(int slot) {
    g_map_slots[slot].end.store(0);
    g_map_slots[slot].begin.store(0);
  }
  static bool Truncated(int slot) { return g_map_slots[slot].truncated.load(); }

 private:
  static void Install() {
    static std::once_flag once;
    std::call_once(once, [] {
      struct sigaction sa {};
      sa.sa_sigaction = OnBus;
      sa.sa_flags = SA_SIGINFO;
      sigemptyset(&sa.sa_mask);
      ::sigaction(SIGBUS, &sa, &g_old_sigbus);
    });
  }
  static void OnBus(int sig, siginfo_t* info, void* ctx) {
    uintptr_t a = reinterpret_cast<uintptr_t>(info->si_addr);
    for (MapSlot& s : g_map_slots) {
      uintptr_t b = s.begin.load(), e = s.end.load();
      if (b != 0 && a >= b && a < e) {
        uintptr_t page = a & ~uintptr_t{4095};
        void* r = ::mmap(reinterpret_cast<void*>(page), e - page, PROT_READ,
                         MAP_PRIVATE | MAP_FIXED | MAP_ANONYMOUS, -1, 0);
        if (r != MAP_FAILED) {
          s.truncated.store(true);
          return;  // the faulting read runs again, on zeros
        }
      }
    }
    // Not one of ours: what would have happened without the guard.
    if (g_old_sigbus.sa_flags & SA_SIGINFO) {
      if (g_old_sigbus.sa_sigaction) return g_old_sigbus.sa_sigaction(sig, info, ctx);
    } else if (g_old_sigbus.sa_handler != SIG_DFL && g_old_sigbus.sa_handler != SIG_IGN) {
      return g_old_sigbus.sa_handler(sig);
    }
    ::signal(SIGBUS, SIG_DFL);
    ::raise(SIGBUS);
  }
};

// A classic pcap file mapped into memory (MapGuard keeps a truncation from becoming a crash; a
// frame's bytes are the mapping's, no copy), else read in 4 MiB chunks, or bytes in memory, for
// the link types that carry IP. The rules
// are libpcap 1.10's savefile reader's (sf-pcap.c), so that the frames are the ones libpcap
// delivers: the four magic numbers (micro- or nanosecond, either byte order), LINKTYPE_RAW
// delivered as DLT_RAW, a record over 262144 bytes is an error, a record longer than the file's
// snaplen is cut to it, a torn record at the end is an error, and so is a file truncated while
// it is read. Tests hold it frame by frame against libpcap.
class PcapMemorySource final : public PacketSource {
 public:
  // nullptr (and *status untouched) when `bytes` is not a classic pcap of a link type read here;
  // the caller then gives the file to libpcap. A BPF expression that does not compile is an error.
  static std::unique_ptr<PcapMemorySource> Open(std::span<const uint8_t> bytes,
                                                std::function<void()> release, std::string name,
                                                const std::string& bpf, absl::Status* status) {
    if (bytes.size() < 24) return nullptr;
    uint32_t magic = Le32(bytes.data());
    bool swapped = false, nano = false;
    if (magic == 0xa1b2c3d4) {
    } else if (magic == 0xd4c3b2a1) {
      swapped = true;
    } else if (magic == 0xa1b23c4d) {
      nano = true;
    } else if (magic == 0x4d3cb2a1) {
      swapped = nano = true;
    } else {
      return nullptr;
    }
    auto u16 = [&](size_t at) {
      uint16_t v = static_cast<uint16_t>(bytes[at] | (bytes[at + 1] << 8));
      return swapped ? static_cast<uint16_t>((v >> 8) | (v << 8)) : v;
    };
    auto u32 = [&](size_t at) {
      uint32_t v = Le32(bytes.data() + at);
      return swapped ? __builtin_bswap32(v) : v;
    };
    if (u16(4) != 2 || u16(6) != 4) return nullptr;  // other versions: libpcap's rules
    uint32_t linktype = u32(20) & 0x03FFFFFF;        // LT_LINKTYPE: FCS bits above
    int dlt = -1;
    switch (linktype) {
      case 0:
      case 1:
      case 108:
      case 113:
      case 228:
      case 229:
      case 276:
        dlt = static_cast<int>(linktype);
        break;
      case 101:
        dlt = DLT_RAW;  // libpcap's linktype_to_dlt
        break;
      // Not PFLOG (117) and NFLOG (239): libpcap rewrites their host-order fields in a file of
      // the other byte order, and a frame read in place cannot be rewritten. libpcap reads them.
      default:
        return nullptr;
    }
    uint32_t snaplen = u32(16);
    if (snaplen == 0 || snaplen > kMaxSnaplen) snaplen = kMaxSnaplen;
    auto src = std::unique_ptr<PcapMemorySource>(new PcapMemorySource(
        bytes, std::move(release), std::move(name), swapped, nano, dlt, snaplen));
    if (!bpf.empty()) {
      // Compiled by libpcap for a savefile with this header (not pcap_open_dead): its code
      // differs for savefiles, e.g. DLT_NULL matches every BSD's AF_INET6 value, not the host's.
      char header[24];
      std::memcpy(header, bytes.data(), sizeof header);
      FILE* hf = fmemopen(header, sizeof header, "rb");
      char err[PCAP_ERRBUF_SIZE] = {};
      pcap_t* sf =
          hf ? pcap_fopen_offline_with_tstamp_precision(hf, PCAP_TSTAMP_PRECISION_NANO, err)
             : nullptr;
      if (!sf) {
        if (hf) std::fclose(hf);
        return nullptr;  // libpcap's own reading will say what is wrong
      }
      if (pcap_compile(sf, &src->filter_, bpf.c_str(), 1, PCAP_NETMASK_UNKNOWN) != 0) {
        *status = absl::InvalidArgumentError(
            absl::StrCat("BPF expression \"", bpf, "\": ", pcap_geterr(sf)));
        pcap_close(sf);
        return nullptr;
      }
      pcap_close(sf);
      src->filtered_ = true;
    }
    return src;
  }
  // The same over an open file descriptor, which it takes over (closes), read from its start.
  static std::unique_ptr<PcapMemorySource> OpenFd(int fd, std::string name, const std::string& bpf,
                                                  absl::Status* status) {
    auto buf = std::make_unique<std::string>(kChunk, '\0');
    size_t have = 0;
    while (have < 24) {
      ssize_t r = ::read(fd, buf->data() + have, kChunk - have);
      if (r < 0 && errno == EINTR) continue;
      if (r <= 0) break;
      have += static_cast<size_t>(r);
    }
    std::span<const uint8_t> first(reinterpret_cast<const uint8_t*>(buf->data()), have);
    std::unique_ptr<PcapMemorySource> src = Open(first, nullptr, std::move(name), bpf, status);
    if (!src) {
      ::close(fd);
      return nullptr;
    }
    src->fd_ = fd;
    src->buf_ = std::move(buf);
    src->bytes_ = first;
    return src;
  }
  ~PcapMemorySource() override {
    if (filtered_) pcap_freecode(&filter_);
    if (release_) release_();
    if (guard_slot_ >= 0) MapGuard::Remove(guard_slot_);
    if (fd_ >= 0) ::close(fd_);
  }
  // A mapping of a whole regular file: the source unmaps it, and MapGuard watches it.
  static std::unique_ptr<PcapMemorySource> OpenMapped(const uint8_t* map, size_t size, int slot,
                                                      std::string name, const std::string& bpf,
                                                      absl::Status* status) {
    std::unique_ptr<PcapMemorySource> src = Open(
        std::span<const uint8_t>(map, size),
        [map, size] { ::munmap(const_cast<uint8_t*>(map), size); }, std::move(name), bpf, status);
    if (src) src->guard_slot_ = slot;
    return src;
  }

  bool Next(Frame* f) override {
    while (status_.ok()) {
      if (guard_slot_ >= 0) {
        if (MapGuard::Truncated(guard_slot_)) {
          return Fail("the file was truncated while it was read");
        }
        if (at_ - released_ >= kReleaseBytes) {
          // Pages behind the read position go back (they stay in the page cache): resident
          // memory stays flat however long the file is.
          size_t upto = at_ & ~(size_t{4095});
          ::madvise(const_cast<uint8_t*>(bytes_.data()) + released_, upto - released_,
                    MADV_DONTNEED);
          released_ = upto;
        }
      }
      if (!Ensure(16)) {
        size_t left = bytes_.size() - at_;
        if (left == 0 || !status_.ok()) return false;  // the end, between records
        return Fail(
            absl::StrCat("truncated dump file; tried to read 16 header bytes, only got ", left));
      }
      const uint8_t* h = bytes_.data() + at_;
      // libpcap 1.10 reads the time as two signed 32-bit fields (struct pcap_timeval), but its
      // SWAPLONG of a byte-swapped file yields them unsigned: the same here, for equal frames.
      int64_t sec = swapped_ ? int64_t{U32(h)} : int64_t{static_cast<int32_t>(U32(h))};
      int64_t frac = swapped_ ? int64_t{U32(h + 4)} : int64_t{static_cast<int32_t>(U32(h + 4))};
      uint32_t caplen = U32(h + 8), len = U32(h + 12);
      if (caplen > kMaxSnaplen) {
        return Fail(absl::StrCat("invalid packet capture length ", caplen,
                                 ", bigger than maximum of ", kMaxSnaplen));
      }
      if (!Ensure(16 + size_t{caplen})) {
        if (!status_.ok()) return false;
        return Fail(absl::StrCat("truncated dump file; tried to read ", caplen,
                                 " captured bytes, only got ", bytes_.size() - at_ - 16));
      }
      h = bytes_.data() + at_;  // the buffer may have moved
      at_ += 16 + size_t{caplen};
      // A truncation seen while this record was read: its bytes may be the guard's zeros. Its
      // last byte is touched first, so that a cut inside the record shows now, not later in
      // the engine's hands (the file is cut at its end: if the last byte is there, all are).
      if (guard_slot_ >= 0 && caplen > 0) {
        [[maybe_unused]] volatile uint8_t last = h[16 + caplen - 1];
      }
      if (guard_slot_ >= 0 && MapGuard::Truncated(guard_slot_)) {
        return Fail("the file was truncated while it was read");
      }
      uint32_t keep = std::min(caplen, snaplen_);  // libpcap cuts a record to the snaplen
      pcap_pkthdr ph{};
      ph.caplen = keep;
      ph.len = len;
      if (filtered_ && pcap_offline_filter(&filter_, &ph, h + 16) == 0) continue;
      ++frames_;
      f->link_type = dlt_;
      f->ts_ns = static_cast<uint64_t>(sec) * 1'000'000'000ull +
                 static_cast<uint64_t>(nano_ ? frac : frac * 1000);
      f->wire_length = std::max(len, keep);
      f->data = std::span<const uint8_t>(h + 16, keep);
      return true;
    }
    return false;
  }
  absl::Status status() const override { return status_; }
  int link_type() const override { return dlt_; }
  uint64_t frames() const override { return frames_; }

 private:
  static constexpr uint32_t kMaxSnaplen = 262144;  // libpcap's MAXIMUM_SNAPLEN
  static constexpr size_t kChunk = 4 << 20;        // bytes read at a time
  static constexpr size_t kReleaseBytes = 8 << 20;

  // Makes `n` bytes from at_ available in bytes_, reading more of the file when there is one.
  // False when the input ends (or fails: status_ then says so) first.
  bool Ensure(size_t n) {
    if (bytes_.size() - at_ >= n) return true;
    if (fd_ < 0 || eof_) return false;
    size_t have = bytes_.size() - at_;
    std::memmove(buf_->data(), bytes_.data() + at_, have);
    if (buf_->size() < n) buf_->resize(n);
    while (have < buf_->size()) {
      ssize_t r = ::read(fd_, buf_->data() + have, buf_->size() - have);
      if (r < 0 && errno == EINTR) continue;
      if (r < 0) {
        Fail(absl::StrCat("read error: ", std::strerror(errno)));
        eof_ = true;
        break;
      }
      if (r == 0) {
        eof_ = true;
        break;
      }
      have += static_cast<size_t>(r);
    }
    bytes_ = std::span<const uint8_t>(reinterpret_cast<const uint8_t*>(buf_->data()), have);
    at_ = 0;
    return have >= n;
  }
  static uint32_t Le32(const uint8_t* p) {
    return uint32_t{p[0]} | (uint32_t{p[1]} << 8) | (uint32_t{p[2]} << 16) | (uint32_t{p[3]} << 24);
  }
  uint32_t U32(const uint8_t* p) const {
    uint32_t v = Le32(p);
    return swapped_ ? __builtin_bswap32(v) : v;
  }
  bool Fail(const std::string& why) {
    status_ = absl::DataLossError(absl::StrCat(name_, ": after ", frames_, " frames: ", why));
    return false;
  }
  PcapMemorySource(std::span<const uint8_t> bytes, std::function<void()> release, std::string name,
                   bool swapped, bool nano, int dlt, uint32_t snaplen)
      : bytes_(bytes),
        release_(std::move(release)),
        name_(std::move(name)),
        swapped_(swapped),
        nano_(nano),
        dlt_(dlt),
        snaplen_(snaplen) {}

  std::span<const uint8_t> bytes_;
  std::function<void()> release_;
  std::string name_;
  bool swapped_, nano_;
  int dlt_;
  uint32_t snaplen_;
  size_t at_ = 24;
  int guard_slot_ = -1;               // MapGuard's slot, when mapped
  size_t released_ = 0;               // mapped bytes before this were given back
  int fd_ = -1;                       // the file, when reading one
  std::unique_ptr<std::string> buf_;  // its buffer, which bytes_ views
  bool eof_ = false;
  bpf_program filter_{};
  bool filtered_ = false;
  absl::Status status_;
  uint64_t frames_ = 0;
};

// A pcapng reader (draft-ietf-opsawg-pcapng) for what libpcap 1.10 refuses: sections whose
// interfaces have different link types. Each packet keeps its own interface's link type and
// timestamp resolution. Blocks other than SHB, IDB, EPB, SPB and the obsolete PB are skipped;
// every length is checked against the block before use.
class PcapngSource final : public PacketSource {
 public:
  PcapngSource(FILE* f, std::string name, std::string bpf)
      : f_(f), name_(std::move(name)), bpf_(std::move(bpf)) {}
  ~PcapngSource() override {
    for (auto& i : ifaces_) {
      if (i.filter_ok) pcap_freecode(&i.filter);
    }
    std::fclose(f_);
  }

  bool Next(Frame* out) override {
    while (status_.ok()) {
      uint32_t type = 0, len = 0;
      if (!ReadBlock(&type, &len)) return false;
      const uint8_t* b = block_.data();
      size_t n = block_.size();
      if (type == 0x0A0D0D0A) continue;  // handled in ReadBlock
      if (type == 1) {                   // Interface Description Block
        if (n < 8) return Fail("interface description block too short");
        Iface i;
        i.link_type = U16(b);
        i.snaplen = U32(b + 4);
        ParseIfaceOptions(b + 8, n - 8, &i);
        if (!bpf_.empty()) {
          // As libpcap compiles it for this section (byte order included), so that both
          // readers keep the same frames.
          bool host_little = std::endian::native == std::endian::little;
          std::string why;
          i.filter_ok = CompileForSavefile(i.link_type, i.snaplen, swap_ == host_little, bpf_,
                                           &i.filter, &why);
          if (!i.filter_ok) return Fail("BPF expression \"" + bpf_ + "\": " + why);
        }
        ifaces_.push_back(i);
        continue;
      }
      uint32_t iface = 0, caplen = 0, wire = 0;
      uint64_t ts = 0;
      const uint8_t* data = nullptr;
      if (type == 6 || type == 2) {  // Enhanced Packet Block, obsolete Packet Block
        if (n < 20) return Fail("packet block too short");
        iface = type == 6 ? U32(b) : U16(b);
        ts = uint64_t{U32(b + 4)} << 32 | U32(b + 8);
        caplen = U32(b + 12);
        wire = U32(b + 16);
        if (caplen > n - 20) return Fail("packet block: captured length past the block");
        data = b + 20;
      } else if (type == 3) {  // Simple Packet Block: interface 0, no timestamp
        if (n < 4) return Fail("simple packet block too short");
        wire = U32(b);
        caplen = static_cast<uint32_t>(std::min<size_t>(wire, n - 4));
        data = b + 4;
      } else {
        continue;  // statistics, name resolution, custom blocks: not needed
      }
      if (iface >= ifaces_.size()) return Fail("packet refers to an undefined interface");
      const Iface& i = ifaces_[iface];
      if (skip_raw_ > 0) {  // already delivered by libpcap before it gave up on the file
        --skip_raw_;
        continue;
      }
      if (swap_ == (std::endian::native == std::endian::little)) {  // the other byte order
        SwapHostOrderFields(i.link_type, block_.data() + (data - b), caplen, wire);
      }
      if (i.filter_ok) {
        pcap_pkthdr h{};
        h.caplen = caplen;
        h.len = wire;
        if (!pcap_offline_filter(&i.filter, &h, data)) continue;
      }
      ++frames_;
      out->link_type = i.link_type;
      out->ts_ns = ToNs(ts, i);
      out->wire_length = std::max(wire, caplen);
      out->data = std::span<const uint8_t>(data, caplen);
      return true;
    }
    return false;
  }
  absl::Status status() const override { return status_; }
  int link_type() const override { return ifaces_.empty() ? 0 : ifaces_[0].link_type; }
  uint64_t frames() const override { return frames_; }

 private:
  struct Iface {
    int link_type = 0;
    uint32_t snaplen = 0;
    bool tsresol_pow2 = false;
    uint8_t tsresol = 6;   // 10^-6 s by default
    int64_t tsoffset = 0;  // seconds
    bpf_program filter{};
    bool filter_ok = false;
  };

  uint16_t U16(const uint8_t* p) const {
    return swap_ ? static_cast<uint16_t>(p[0] << 8 | p[1])
                 : static_cast<uint16_t>(p[1] << 8 | p[0]);
  }
  uint32_t U32(const uint8_t* p) const {
    return swap_ ? (uint32_t{p[0]} << 24 | uint32_t{p[1]} << 16 | uint32_t{p[2]} << 8 | p[3])
                 : (uint32_t{p[3]} << 24 | uint32_t{p[2]} << 16 | uint32_t{p[1]} << 8 | p[0]);
  }

  bool Fail(const std::string& why) {
    status_ = absl::DataLossError(absl::StrCat(name_, ": block at offset ", offset_, ": ", why));
    return false;
  }

  // Reads the next block's body into block_. Section headers set the byte order.
  bool ReadBlock(uint32_t* type, uint32_t* len) {
    uint8_t head[8];
    offset_ = next_offset_;  // counted, not asked of the stream: pipes have no position
    size_t got = std::fread(head, 1, 8, f_);
    if (got == 0) return false;  // end of file
    if (got < 8) return Fail("block header cut short");
    if (head[0] == 0x0A && head[1] == 0x0D && head[2] == 0x0D && head[3] == 0x0A) {
      uint8_t bom[4];
      if (std::fread(bom, 1, 4, f_) != 4) return Fail("section header cut short");
      if (bom[0] == 0x4D && bom[1] == 0x3C) {
        swap_ = false;  // little-endian section
      } else if (bom[0] == 0x1A && bom[1] == 0x2B) {
        swap_ = true;
      } else {
        return Fail("bad byte-order magic");
      }
      *type = 0x0A0D0D0A;
      *len = U32(head + 4);
      ifaces_.clear();  // interface numbers restart in each section
      if (*len < 28 || *len % 4 || *len > kMaxBlock) return Fail("bad section header length");
      block_.resize(*len - 12);
      if (std::fread(block_.data(), 1, block_.size(), f_) != block_.size()) {
        return Fail("section header cut short");
      }
      next_offset_ += *len;
      return true;
    }
    *type = U32(head);
    *len = U32(head + 4);
    if (*len < 12 || *len % 4 || *len > kMaxBlock)
      return Fail(absl::StrCat("bad block length ", *len));
    block_.resize(*len - 8);
    if (std::fread(block_.data(), 1, block_.size(), f_) != block_.size()) {
      return Fail("block cut short");
    }
    if (U32(block_.data() + block_.size() - 4) != *len)
      return Fail("trailing block length differs");
    block_.resize(block_.size() - 4);
    return true;
  }

  void ParseIfaceOptions(const uint8_t* p, size_t n, Iface* i) const {
    size_t at = 0;
    while (at + 4 <= n) {
      uint16_t code = U16(p + at), len = U16(p + at + 2);
      at += 4;
      if (code == 0 || at + len > n) break;
      if (code == 9 && len >= 1) {  // if_tsresol
        i->tsresol_pow2 = p[at] & 0x80;
        i->tsresol = p[at] & 0x7f;
      } else if (code == 14 && len >= 8) {  // if_tsoffset
        i->tsoffset = static_cast<int64_t>(uint64_t{U32(p + at)} << 32 | U32(p + at + 4));
        if (!swap_)
          i->tsoffset = static_cast<int64_t>(uint64_t{U32(p + at + 4)} << 32 | U32(p + at));
      }
      at += (len + 3u) & ~3u;
    }
  }

  // Timestamp units to nanoseconds, exactly and saturating (hostile files carry any value).
  static uint64_t ToNs(uint64_t ts, const Iface& i) {
    using u128 = unsigned __int128;
    u128 ns;
    if (i.tsresol_pow2) {
      ns = (u128{ts} * 1'000'000'000u) >> std::min<int>(i.tsresol, 127);
    } else if (i.tsresol <= 9) {
      u128 mul = 1;
      for (int k = i.tsresol; k < 9; ++k) mul *= 10;
      ns = u128{ts} * mul;
    } else {
      u128 div = 1;
      for (int k = 9; k < i.tsresol && k < 38; ++k) div *= 10;
      ns = u128{ts} / div;
    }
    __int128 with_offset =
        static_cast<__int128>(ns) + static_cast<__int128>(i.tsoffset) * 1'000'000'000;
    if (with_offset <= 0) return 0;
    if (with_offset > static_cast<__int128>(UINT64_MAX)) return UINT64_MAX;
    return static_cast<uint64_t>(with_offset);
  }

  static constexpr uint32_t kMaxBlock = 16u << 20;
  FILE* f_;
  std::string name_, bpf_;
  bool swap_ = false;

 public:
  // The next `n` packets are passed over unfiltered and uncounted (the fallback from libpcap
  // resumes where libpcap stopped, counted in packets read, not packets kept).
  void SkipPackets(uint64_t n) { skip_raw_ = n; }

 private:
  uint64_t skip_raw_ = 0;
  std::vector<Iface> ifaces_;
  std::vector<uint8_t> block_;
  uint64_t offset_ = 0;       // of the block being read
  uint64_t next_offset_ = 0;  // of the next block
  uint64_t frames_ = 0;
  absl::Status status_;
};

void SkipPcapngPackets(PacketSource* pcapng, uint64_t n) {
  static_cast<PcapngSource*>(pcapng)->SkipPackets(n);
}

std::unique_ptr<PacketSource> NewPcapngSource(const std::string& path, const std::string& name,
                                              const std::string& bpf) {
  FILE* f = std::fopen(path.c_str(), "rb");
  if (!f) return nullptr;
  return std::unique_ptr<PacketSource>(new PcapngSource(f, name, bpf));
}

bool IsPcapngFile(const std::string& path) {
  // Only a regular file can be opened a second time: a FIFO or a device would block or differ.
  struct stat st {};
  if (::stat(path.c_str(), &st) != 0 || !S_ISREG(st.st_mode)) return false;
  FILE* f = std::fopen(path.c_str(), "rb");
  if (!f) return false;
  uint8_t m[4] = {};
  bool yes =
      std::fread(m, 1, 4, f) == 4 && m[0] == 0x0A && m[1] == 0x0D && m[2] == 0x0D && m[3] == 0x0A;
  std::fclose(f);
  return yes;
}

// Standard input with its first bytes read ahead and replayed (glibc's fopencookie).
struct Replay {
  unsigned char head[4];
  size_t n = 0, pos = 0;
};

ssize_t ReplayRead(void* cookie, char* buf, size_t size) {
  auto* r = static_cast<Replay*>(cookie);
  size_t k = 0;
  while (r->pos < r->n && k < size) buf[k++] = static_cast<char>(r->head[r->pos++]);
  if (k == size) return static_cast<ssize_t>(k);
  ssize_t more = ::read(STDIN_FILENO, buf + k, size - k);
  if (more < 0) return k ? static_cast<ssize_t>(k) : -1;
  return static_cast<ssize_t>(k) + more;
}

int ReplayClose(void* cookie) {
  delete static_cast<Replay*>(cookie);
  return 0;
}

struct Peeked {
  FILE* stream = nullptr;
  bool pcapng = false;  // the first 4 bytes are a pcapng section header's type
};

Peeked StdinWithPeek() {
  auto* r = new Replay;
  while (r->n < 4) {
    ssize_t k = ::read(STDIN_FILENO, r->head + r->n, 4 - r->n);
    if (k <= 0) break;
    r->n += static_cast<size_t>(k);
  }
  Peeked out;
  out.pcapng = r->n == 4 && r->head[0] == 0x0A && r->head[1] == 0x0D && r->head[2] == 0x0D &&
               r->head[3] == 0x0A;
  cookie_io_functions_t io{ReplayRead, nullptr, nullptr, ReplayClose};
  out.stream = fopencookie(r, "rb", io);
  if (!out.stream) delete r;
  return out;
}

}  // namespace

std::unique_ptr<PacketSource> OpenPcapngStream(FILE* stream, const std::string& name,
                                               const std::string& bpf) {
  return std::unique_ptr<PacketSource>(new PcapngSource(stream, name, bpf));
}

absl::StatusOr<std::unique_ptr<PacketSource>> OpenPcapngFile(const std::string& path,
                                                             const std::string& bpf) {
  std::unique_ptr<PacketSource> s = NewPcapngSource(path, path, bpf);
  if (!s) return absl::NotFoundError(absl::StrCat(path, ": cannot open"));
  return s;
}

absl::StatusOr<std::unique_ptr<PacketSource>> OpenLibpcapFile(const std::string& path,
                                                              const std::string& bpf) {
  std::string name = path == "-" ? "<stdin>" : path;
  if (path != "-") {
    struct stat st {};
    if (::stat(path.c_str(), &st) != 0) {
      return absl::NotFoundError(absl::StrCat(path, ": no such file"));
    }
    if (S_ISDIR(st.st_mode))
      return absl::InvalidArgumentError(absl::StrCat(path, ": is a directory"));
  }
  char err[PCAP_ERRBUF_SIZE] = {};
  pcap_t* p = nullptr;
  constexpr size_t kStdioBuffer = 1 << 20;
  std::unique_ptr<char[]> stdio_buffer;
  if (path == "-") {
    // Standard input cannot be reopened, so the pcapng fallback of a file cannot apply: look at
    // the first 4 bytes and give a pcapng stream to our own reader (it reads every pcapng,
    // mixed link types included), anything else to libpcap, the 4 bytes replayed in front.
    Peeked in = StdinWithPeek();
    if (!in.stream) return absl::InternalError("<stdin>: cannot read");
    if (in.pcapng) {
      // Its interfaces come later; a filter that is not even valid on Ethernet fails now, before
      // anything is written.
      bpf_program check{};
      std::string why;
      if (!bpf.empty() && !CompileForSavefile(1, 262144, false, bpf, &check, &why)) {
        std::fclose(in.stream);
        return absl::InvalidArgumentError(absl::StrCat("BPF expression \"", bpf, "\": ", why));
      }
      if (!bpf.empty()) pcap_freecode(&check);
      return OpenPcapngStream(in.stream, name, bpf);
    }
    p = pcap_fopen_offline_with_tstamp_precision(in.stream, PCAP_TSTAMP_PRECISION_NANO, err);
  } else {
    // libpcap reads a savefile record by record through stdio; a 1 MiB stream buffer instead of
    // the default 4 KiB makes that one read(2) per MiB.
    FILE* f = std::fopen(path.c_str(), "rb");
    if (!f) return absl::NotFoundError(absl::StrCat(path, ": ", std::strerror(errno)));
    stdio_buffer = std::make_unique<char[]>(kStdioBuffer);
    std::setvbuf(f, stdio_buffer.get(), _IOFBF, kStdioBuffer);
    p = pcap_fopen_offline_with_tstamp_precision(f, PCAP_TSTAMP_PRECISION_NANO, err);
    if (!p) std::fclose(f);
  }
  if (!p) {
    return absl::InvalidArgumentError(
        absl::StrCat(name, ": not a pcap or pcapng capture (libpcap: ", err, ")"));
  }
  bpf_program prog{};
  if (!bpf.empty() && pcap_compile(p, &prog, bpf.c_str(), 1, PCAP_NETMASK_UNKNOWN) != 0) {
    std::string why = pcap_geterr(p);
    pcap_close(p);
    return absl::InvalidArgumentError(absl::StrCat("BPF expression \"", bpf, "\": ", why));
  }
  auto src = std::make_unique<PcapFileSource>(p, path, name, bpf, std::move(stdio_buffer));
  if (!bpf.empty()) {
    src->filter_ = prog;
    src->filtered_ = true;
  }
  return std::unique_ptr<PacketSource>(std::move(src));
}

}  // namespace tapkit

namespace tapkit {
namespace {

class ReadAheadSource final : public PacketSource {
 public:
  explicit ReadAheadSource(std::unique_ptr<PacketSource> inner)
      : inner_(std::move(inner)), link_type_(inner_->link_type()) {
    thread_ = std::thread([this] {
      pthread_setname_np(pthread_self(), "tap-readahead");
      Run();
    });
  }
  ~ReadAheadSource() override {
    {
      std::lock_guard<std::mutex> l(mu_);
      stopping_ = true;
    }
    space_.notify_all();
    thread_.join();
  }

  bool Next(Frame* frame) override {
    while (!current_ || next_ >= current_->frames.size()) {
      std::unique_lock<std::mutex> l(mu_);
      if (current_) {  // back to the reader, with its capacity, to be filled again
        free_.push_back(std::move(current_));
        space_.notify_one();
      }
      ready_cv_.wait(l, [&] { return !ready_.empty() || ended_; });
      if (ready_.empty()) {
        status_ = end_status_;
        return false;
      }
      current_ = std::move(ready_.front());
      ready_.pop_front();
      next_ = 0;
    }
    const Rec& r = current_->frames[next_++];
    frame->link_type = r.link_type;
    frame->ts_ns = r.ts_ns;
    frame->wire_length = r.wire_length;
    frame->data = std::span<const uint8_t>(
        reinterpret_cast<const uint8_t*>(current_->bytes.data()) + r.offset, r.length);
    ++frames_;
    return true;
  }
  absl::Status status() const override { return status_; }
  int link_type() const override { return link_type_; }
  uint64_t frames() const override { return frames_; }

 private:
  static constexpr size_t kBatchBytes = 256 << 10;
  static constexpr size_t kMaxBatches = 8;
  struct Rec {
    int link_type;
    uint32_t wire_length;
    uint64_t ts_ns;
    size_t offset, length;
  };
  struct Batch {
    std::string bytes;
    std::vector<Rec> frames;
  };

  void Run() {
    size_t batches = 0;  // allocated so far; bounded by kMaxBatches
    for (;;) {
      std::unique_ptr<Batch> b;
      {
        std::unique_lock<std::mutex> l(mu_);
        space_.wait(l, [&] { return stopping_ || !free_.empty() || batches < kMaxBatches; });
        if (stopping_) return;
        if (!free_.empty()) {
          b = std::move(free_.back());
          free_.pop_back();
        }
      }
      if (!b) {
        b = std::make_unique<Batch>();
        b->bytes.reserve(kBatchBytes + (64 << 10));
        ++batches;
      }
      b->bytes.clear();
      b->frames.clear();
      bool more = true;
      Frame f;
      while (b->bytes.size() < kBatchBytes && (more = inner_->Next(&f))) {
        b->frames.push_back({f.link_type, f.wire_length, f.ts_ns, b->bytes.size(), f.data.size()});
        b->bytes.append(reinterpret_cast<const char*>(f.data.data()), f.data.size());
      }
      std::lock_guard<std::mutex> l(mu_);
      if (!b->frames.empty()) ready_.push_back(std::move(b));
      if (!more) {
        ended_ = true;
        end_status_ = inner_->status();
      }
      ready_cv_.notify_one();
      if (!more) return;
    }
  }

  std::unique_ptr<PacketSource> inner_;  // the reader thread's only
  const int link_type_;
  std::mutex mu_;
  std::condition_variable ready_cv_, space_;
  std::deque<std::unique_ptr<Batch>> ready_;
  std::vector<std::unique_ptr<Batch>> free_;
  bool stopping_ = false, ended_ = false;
  absl::Status end_status_;
  std::thread thread_;
  // The consumer's.
  std::unique_ptr<Batch> current_;
  size_t next_ = 0;
  uint64_t frames_ = 0;
  absl::Status status_;
};

}  // namespace

std::unique_ptr<PacketSource> ReadAhead(std::unique_ptr<PacketSource> inner) {
  return std::make_unique<ReadAheadSource>(std::move(inner));
}

}  // namespace tapkit

namespace tapkit {

// pcapng and the rest: libpcap (or the pcapng reader), read ahead on a thread of its own.
absl::StatusOr<std::unique_ptr<PacketSource>> OpenLibpcapFileReadAhead(const std::string& path,
                                                                       const std::string& bpf) {
  absl::StatusOr<std::unique_ptr<PacketSource>> lib = OpenLibpcapFile(path, bpf);
  if (!lib.ok()) return lib;
  return ReadAhead(*std::move(lib));
}

std::unique_ptr<PacketSource> OpenPcapBytes(std::span<const uint8_t> bytes, const std::string& name,
                                            const std::string& bpf) {
  absl::Status status;
  return PcapMemorySource::Open(bytes, nullptr, name, bpf, &status);
}

absl::StatusOr<std::unique_ptr<PacketSource>> OpenCaptureFile(const std::string& path,
                                                              const std::string& bpf) {
  if (path == "-") return OpenLibpcapFile(path, bpf);
  // A regular classic-pcap file is read by the project's reader; anything else goes to libpcap.
  // stat first: opening a FIFO here would consume what its writer sent before libpcap saw it.
  struct stat st {};
  if (::stat(path.c_str(), &st) != 0) {
    if (errno == ENOENT) return absl::NotFoundError(absl::StrCat(path, ": no such file"));
    return absl::InvalidArgumentError(absl::StrCat(path, ": ", std::strerror(errno)));
  }
  if (!S_ISREG(st.st_mode) || st.st_size < 24) return OpenLibpcapFile(path, bpf);
  int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC);
  if (fd < 0) return absl::InvalidArgumentError(absl::StrCat(path, ": ", std::strerror(errno)));
  absl::Status status;
  // Mapped, read in place: one copy fewer per frame than reading.
  size_t size = static_cast<size_t>(st.st_size);
  void* map = ::mmap(nullptr, size, PROT_READ, MAP_PRIVATE, fd, 0);
  if (map != MAP_FAILED) {
    int slot = MapGuard::Add(static_cast<const uint8_t*>(map), size);
    if (slot >= 0) {
      ::close(fd);
      ::madvise(map, size, MADV_SEQUENTIAL);
      auto src = PcapMemorySource::OpenMapped(static_cast<const uint8_t*>(map), size, slot, path,
                                              bpf, &status);
      if (src) return std::unique_ptr<PacketSource>(std::move(src));
      MapGuard::Remove(slot);
      ::munmap(map, size);
      if (!status.ok()) return status;
      return OpenLibpcapFileReadAhead(path, bpf);
    }
    ::munmap(map, size);
  }
  ::posix_fadvise(fd, 0, 0, POSIX_FADV_SEQUENTIAL);
  auto src = PcapMemorySource::OpenFd(fd, path, bpf, &status);
  if (src) return std::unique_ptr<PacketSource>(std::move(src));
  if (!status.ok()) return status;
  return OpenLibpcapFileReadAhead(path, bpf);
}

}  // namespace tapkit
