#include "sidecar/packet_source.h"

#include <pcap/pcap.h>
#include <sys/stat.h>

#include "absl/strings/str_cat.h"

namespace tapkit {
namespace {

class PcapFileSource final : public PacketSource {
 public:
  PcapFileSource(pcap_t* p, std::string name) : p_(p), name_(std::move(name)) {}
  ~PcapFileSource() override { pcap_close(p_); }

  // PacketSource
  bool Next(Frame* f) override {
    if (!status_.ok()) return false;
    pcap_pkthdr* h = nullptr;
    const u_char* data = nullptr;
    int rc = pcap_next_ex(p_, &h, &data);
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
      status_ = absl::DataLossError(absl::StrCat(name_, ": after ", frames_, " frames: ",
                                                 pcap_geterr(p_)));
    }
    return false;
  }
  absl::Status status() const override { return status_; }
  int link_type() const override { return pcap_datalink(p_); }
  uint64_t frames() const override { return frames_; }

 private:
  pcap_t* p_;
  std::string name_;
  absl::Status status_;
  uint64_t frames_ = 0;
};

}  // namespace

absl::StatusOr<std::unique_ptr<PacketSource>> OpenCaptureFile(const std::string& path,
                                                              const std::string& bpf) {
  std::string name = path == "-" ? "<stdin>" : path;
  if (path != "-") {
    struct stat st {};
    if (::stat(path.c_str(), &st) != 0) {
      return absl::NotFoundError(absl::StrCat(path, ": no such file"));
    }
    if (S_ISDIR(st.st_mode)) return absl::InvalidArgumentError(absl::StrCat(path, ": is a directory"));
  }
  char err[PCAP_ERRBUF_SIZE] = {};
  pcap_t* p = pcap_open_offline_with_tstamp_precision(path.c_str(), PCAP_TSTAMP_PRECISION_NANO, err);
  if (!p) {
    return absl::InvalidArgumentError(
        absl::StrCat(name, ": not a pcap or pcapng capture (libpcap: ", err, ")"));
  }
  if (!bpf.empty()) {
    bpf_program prog{};
    if (pcap_compile(p, &prog, bpf.c_str(), 1, PCAP_NETMASK_UNKNOWN) != 0) {
      std::string why = pcap_geterr(p);
      pcap_close(p);
      return absl::InvalidArgumentError(absl::StrCat("BPF expression \"", bpf, "\": ", why));
    }
    int rc = pcap_setfilter(p, &prog);
    pcap_freecode(&prog);
    if (rc != 0) {
      std::string why = pcap_geterr(p);
      pcap_close(p);
      return absl::InvalidArgumentError(absl::StrCat("BPF expression \"", bpf, "\": ", why));
    }
  }
  return std::unique_ptr<PacketSource>(new PcapFileSource(p, name));
}

}  // namespace tapkit
