#include "sidecar/live_capture.h"

#include <pcap/pcap.h>
#include <poll.h>

#include <cerrno>
#include <cstring>
#include <deque>

#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"

namespace tapkit {

struct LiveCapture::Iface {
  std::string name;
  pcap_t* p = nullptr;
  int fd = -1;
  int link_type = 0;
  bool nano = false;  // the interface gives nanosecond time stamps
  ~Iface() {
    if (p) pcap_close(p);
  }
};

absl::StatusOr<std::unique_ptr<LiveCapture>> LiveCapture::Open(
    const std::vector<std::string>& interfaces, const std::string& bpf, LiveOptions options) {
  if (interfaces.empty()) return absl::InvalidArgumentError("no interface to capture on");
  std::unique_ptr<LiveCapture> c(new LiveCapture(options));
  for (const std::string& name : interfaces) {
    auto i = std::make_unique<Iface>();
    i->name = name;
    char err[PCAP_ERRBUF_SIZE] = {};
    i->p = pcap_create(name.c_str(), err);
    if (!i->p) return absl::NotFoundError(absl::StrCat("interface ", name, ": ", err));
    pcap_set_snaplen(i->p, options.snaplen);
    pcap_set_promisc(i->p, 0);  // passive: only what reaches the pod's own interface
    pcap_set_immediate_mode(i->p, options.immediate ? 1 : 0);
    pcap_set_timeout(i->p, options.block_timeout_ms);
    pcap_set_buffer_size(i->p, options.buffer_bytes);
    pcap_set_tstamp_precision(i->p, PCAP_TSTAMP_PRECISION_NANO);
    int rc = pcap_activate(i->p);
    if (rc < 0) {
      std::string why = pcap_geterr(i->p);
      if (rc == PCAP_ERROR_PERM_DENIED) {
        return absl::PermissionDeniedError(
            absl::StrCat("interface ", name, ": ", why, " (capturing needs root or CAP_NET_RAW)"));
      }
      if (rc == PCAP_ERROR_NO_SUCH_DEVICE) {
        return absl::NotFoundError(absl::StrCat("interface ", name, ": no such interface"));
      }
      return absl::UnavailableError(absl::StrCat("interface ", name, ": ", why));
    }
    if (!bpf.empty()) {
      bpf_program prog{};
      if (pcap_compile(i->p, &prog, bpf.c_str(), 1, PCAP_NETMASK_UNKNOWN) != 0) {
        return absl::InvalidArgumentError(absl::StrCat("interface ", name, ": BPF expression \"",
                                                       bpf, "\": ", pcap_geterr(i->p)));
      }
      rc = pcap_setfilter(i->p, &prog);
      pcap_freecode(&prog);
      if (rc != 0) {
        return absl::InvalidArgumentError(absl::StrCat("interface ", name, ": BPF expression \"",
                                                       bpf, "\": ", pcap_geterr(i->p)));
      }
    }
    if (pcap_setnonblock(i->p, 1, err) != 0) {
      return absl::UnavailableError(absl::StrCat("interface ", name, ": ", err));
    }
    i->fd = pcap_get_selectable_fd(i->p);
    if (i->fd < 0) {
      return absl::UnavailableError(absl::StrCat("interface ", name, ": no selectable descriptor"));
    }
    i->link_type = pcap_datalink(i->p);
    i->nano = pcap_get_tstamp_precision(i->p) == PCAP_TSTAMP_PRECISION_NANO;
    c->ifaces_.push_back(std::move(i));
  }
  return c;
}

LiveCapture::LiveCapture(LiveOptions options) : options_(options) {}
LiveCapture::~LiveCapture() = default;

absl::StatusOr<size_t> LiveCapture::Poll(int timeout_ms,
                                         const std::function<void(const Frame&)>& on_frame) {
  std::vector<pollfd> fds(ifaces_.size());
  for (size_t k = 0; k < ifaces_.size(); ++k) fds[k] = {ifaces_[k]->fd, POLLIN, 0};
  int rc = ::poll(fds.data(), fds.size(), timeout_ms);
  if (rc < 0 && errno != EINTR) {
    return absl::InternalError(absl::StrCat("poll: ", std::strerror(errno)));
  }
  size_t n = 0;
  for (size_t k = 0; k < ifaces_.size(); ++k) {
    Iface& i = *ifaces_[k];
    if (fds[k].revents & (POLLERR | POLLHUP | POLLNVAL)) {
      return absl::UnavailableError(absl::StrCat("interface ", i.name, ": capture failed"));
    }
    // Non-blocking: read what the kernel has handed over.
    for (int m = 0; m < options_.max_frames_per_poll; ++m) {
      pcap_pkthdr* h = nullptr;
      const u_char* data = nullptr;
      int r = pcap_next_ex(i.p, &h, &data);
      if (r == 0) break;  // nothing more now
      // libpcap's netfilter (nflog:N) reader reports a non-blocking receive that finds nothing
      // as an error, "Can't receive packet: " and strerror(EAGAIN) (pcap-netfilter-linux.c, up
      // to 1.10.6 at least): for it that is "nothing more now" too.
      if (r == PCAP_ERROR && i.link_type == DLT_NFLOG &&
          absl::EndsWith(pcap_geterr(i.p), std::strerror(EAGAIN))) {
        break;
      }
      if (r < 0) {
        return absl::UnavailableError(absl::StrCat("interface ", i.name, ": ", pcap_geterr(i.p)));
      }
      Frame f;
      f.link_type = i.link_type;
      f.ts_ns = static_cast<uint64_t>(h->ts.tv_sec) * 1'000'000'000ull +
                static_cast<uint64_t>(h->ts.tv_usec) * (i.nano ? 1 : 1000);
      f.wire_length = std::max(h->len, h->caplen);
      f.data = std::span<const uint8_t>(data, h->caplen);
      ++frames_;
      ++n;
      on_frame(f);
    }
  }
  return n;
}

KernelStats LiveCapture::Stats() const {
  KernelStats k;
  for (const auto& i : ifaces_) {
    pcap_stat s{};
    if (pcap_stats(i->p, &s) == 0) {
      k.received += s.ps_recv;
      k.dropped += s.ps_drop;
      k.interface_dropped += s.ps_ifdrop;
    }
  }
  return k;
}

namespace {

class LiveSource final : public PacketSource {
 public:
  LiveSource(std::unique_ptr<LiveCapture> c, const std::atomic<bool>* stop)
      : c_(std::move(c)), stop_(stop) {}
  bool Next(Frame* f) override {
    while (queue_.empty()) {
      if (*stop_ || !status_.ok()) return false;
      absl::StatusOr<size_t> n = c_->Poll(50, [&](const Frame& fr) {
        queue_.push_back(
            {fr.link_type, fr.ts_ns, fr.wire_length,
             std::string(reinterpret_cast<const char*>(fr.data.data()), fr.data.size())});
      });
      if (!n.ok()) status_ = n.status();
    }
    current_ = std::move(queue_.front());
    queue_.pop_front();
    f->link_type = current_.link_type;
    f->ts_ns = current_.ts_ns;
    f->wire_length = current_.wire_length;
    f->data = std::span<const uint8_t>(reinterpret_cast<const uint8_t*>(current_.bytes.data()),
                                       current_.bytes.size());
    ++frames_;
    return true;
  }
  absl::Status status() const override { return status_; }
  int link_type() const override { return 0; }
  uint64_t frames() const override { return frames_; }
  std::optional<KernelStats> kernel_stats() const override { return c_->Stats(); }

 private:
  struct Held {
    int link_type;
    uint64_t ts_ns;
    uint32_t wire_length;
    std::string bytes;
  };
  std::unique_ptr<LiveCapture> c_;
  const std::atomic<bool>* stop_;
  std::deque<Held> queue_;
  Held current_;
  absl::Status status_;
  uint64_t frames_ = 0;
};

}  // namespace

std::unique_ptr<PacketSource> NewLivePacketSource(std::unique_ptr<LiveCapture> capture,
                                                  const std::atomic<bool>* stop) {
  return std::make_unique<LiveSource>(std::move(capture), stop);
}

std::string PodFilter(const std::vector<std::string>& addresses) {
  if (addresses.empty()) return "";
  std::string hosts;
  for (const std::string& a : addresses) {
    if (!hosts.empty()) hosts += " or ";
    hosts += "host " + a;
  }
  return absl::StrCat("tcp and (", hosts, ")");
}

}  // namespace tapkit
