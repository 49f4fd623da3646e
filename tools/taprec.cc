// taprec: records HTTP exchanges into a .tap file.
//
//   taprec TARGET [-n NS] [-l SELECTOR] [-w FILE|-] [--to R] [--to-namespace NS] [--from R]
//          [--from-namespace NS] [--method M] [--authority A] [--path P] [--max-requests N]
//          [--max-rps R] [-o json|wide] [--controlplane ADDR] [--snaplen-body N] [--no-redact]
//   taprec -r FILE|- [-w FILE|-] [-c N] [--snaplen-body N] [--no-redact] [BPF expression ...]
//   taprec -i IFACE [-B KiB] [-w FILE|-] [-c N] [-Z USER] [...] [BPF expression ...]
//
// With a TARGET (deploy/backend, pod/x, svc/y, ns/z, ...) it taps live traffic through the
// control plane (tools/taprec_live.h). With -r it reads a pcap or pcapng file (tcpdump's -r)
// through the capture engine of sidecar/. Without -w it prints the exchanges as tapcat does
// (live: req and rsp lines as they happen, end when the exchange completes). Secret header
// values are redacted unless --no-redact (docs/architecture.md section 6). Exit: 0 success, 2 usage
// or input error (a damaged capture included: what was read before the damage is still
// written), or a live tap whose control plane was unreachable or lost (the file is finished).
// With -i, the packets the kernel dropped are named drops in each file's trailer
// (kernel_dropped_packets, interface_dropped_packets: the names the live tap's recorder uses),
// and the end prints pcap_stats' counts on stderr as tcpdump does.
// With -r or -i, run as root, taprec becomes an unprivileged user once the capture and the -w
// file are open, as tcpdump's -Z does (default nobody; -Z root keeps root; sidecar/privileges.h).
#include <sys/stat.h>
#include <unistd.h>

#include <atomic>
#include <boost/program_options.hpp>
#include <cerrno>
#include <chrono>
#include <csignal>
#include <cstdio>
#include <cstring>
#include <iostream>
#include <optional>
#include <string>
#include <vector>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "absl/time/clock.h"
#include "controlplane/inventory.h"
#include "format/async_writer.h"
#include "format/codec.h"
#include "format/program.h"
#include "format/writer.h"
#include "recorder/rotating_writer.h"
#include "sidecar/engine.h"
#include "sidecar/live_capture.h"
#include "sidecar/packet_source.h"
#include "sidecar/privileges.h"
#include "format/redact.h"
#include "format/render.h"
#ifdef TAPREC_LIVE
#include "tools/taprec_live.h"
#endif

namespace po = boost::program_options;

namespace {

using tapkit::kExitError;
using tapkit::kExitOk;
// -B, KiB: from 1 KiB (libpcap rounds a ring up to one block) to 1 GiB, past which the ring is
// memory the host is unlikely to want pinned for one capture.
constexpr int64_t kMaxBufferKiB = int64_t{1} << 20;

std::atomic<bool> g_stop{false};
void OnStopSignal(int) { g_stop = true; }

std::string Host() {
  char buf[256] = {};
  if (gethostname(buf, sizeof buf - 1) != 0) return {};
  return buf;
}

}  // namespace

int main(int argc, char** argv) {
  std::string read_path, write_path, output = "text";
  int64_t count = -1;
  int64_t body_limit = 64 << 10;
  int64_t buffer_kib = 0;
  std::vector<std::string> bpf_words;
  std::string redact_key_file, interface_name, rotate_size, inventory_path, user;
  tapkit::RotationOptions rotation;
#ifdef TAPREC_LIVE
  tapkit::LiveArgs live;
  int64_t max_requests = 0;
#endif
  po::options_description opts(
      "Usage: taprec TARGET [options]          tap a workload through the control plane\n"
      "       taprec -r FILE|- [options] [BPF]  read a pcap or pcapng capture\n"
      "       taprec -i IFACE [options] [BPF]   capture an interface directly, as tcpdump\n"
      "Records HTTP exchanges into a .tap file, or prints them.\n\nOptions");
  opts.add_options()("help,h", "show this help")(
      "read,r", po::value(&read_path), "read packets from a pcap or pcapng file (- for stdin)")(
      "write,w", po::value(&write_path), "write a .tap file (- for stdout); without it, print")(
      "output,o", po::value(&output)->default_value("text"),
      "without -w: text, wide or json (as tapcat)")(
      "count,c", po::value(&count), "stop after N exchanges (-c 0: an empty capture)")(
      "snaplen-body", po::value(&body_limit)->default_value(64 << 10),
      "bytes of each body to keep (the rest is counted)")(
      "no-redact", "keep secret header values (authorization, cookie, ...) as they are")(
      "redact-key-file", po::value(&redact_key_file),
      "HMAC key for redaction markers (default: random, never stored)")(
      "inventory", po::value(&inventory_path),
      "with -r or -i: label endpoints with namespace, pod and workload from this inventory "
      "(the local runtime's, controlplane/inventory.h)")(
      "interface,i", po::value(&interface_name),
      "capture this interface directly, like tcpdump -i (needs root or CAP_NET_RAW)")(
      "buffer-size,B", po::value(&buffer_kib),
      "with -i: the operating system's capture buffer, in KiB, like tcpdump -B (default 32768; "
      "packets that find it full are dropped by the kernel and counted)")(
      "file-size,C", po::value(&rotate_size),
      "with -w: a new file every SIZE million bytes (suffix k, m, g: KiB, MiB, GiB)")(
      "rotate-seconds,G", po::value(&rotation.seconds), "with -w: a new file every N seconds")(
      "file-count,W", po::value(&rotation.count), "with -C: a ring of N files; with -G: N files")(
      "relinquish-privileges,Z", po::value(&user),
      "with -r or -i, run as root: once the input and the -w file are open, become USER (its "
      "uid, gid and groups, no capabilities), as tcpdump -Z. Default nobody; -Z root keeps "
      "root. Files -C and -G open later are created as USER, in a directory USER can write");
#ifdef TAPREC_LIVE
  po::options_description live_opts("Live taps (TARGET)");
  live_opts.add_options()("namespace,n", po::value(&live.ns), "the target's namespace")(
      "selector,l", po::value(&live.selector), "label selector narrowing the pods (kubectl -l)")(
      "to", po::value(&live.to), "keep requests to this resource (deploy/x, svc/y, pod/z, ns/w)")(
      "to-namespace", po::value(&live.to_namespace), "namespace of --to (default -n)")(
      "from", po::value(&live.from), "keep requests from this resource")(
      "from-namespace", po::value(&live.from_namespace), "namespace of --from (default -n)")(
      "method", po::value(&live.method), "keep requests with this method")(
      "authority", po::value(&live.authority), "keep requests to this authority")(
      "path", po::value(&live.path), "keep requests whose path starts with this")(
      "max-requests", po::value(&max_requests), "stop after exactly N exchanges (0: no limit)")(
      "max-rps", po::value(&live.max_rps),
      "at most R exchanges per second, all pods together, in bursts of up to R (0: no limit); "
      "the rest are counted as held back")(
      "controlplane", po::value(&live.controlplane),
      "the control plane (default unix:$TAPKIT_RUNTIME_DIR/controlplane.sock)")(
      "token-file", po::value(&live.token_file), "bearer token for a control plane on TCP")(
      "delay-report", po::bool_switch(&live.delay_report),
      "at the end, the delay from each exchange's last packet to its arrival (p50, p99)");
  opts.add(live_opts);
#endif
  po::options_description hidden;
  hidden.add_options()("bpf", po::value(&bpf_words));
  po::options_description all;
  all.add(opts).add(hidden);
  po::positional_options_description pos;
  pos.add("bpf", -1);
  po::variables_map vm;
  try {
    po::store(po::command_line_parser(argc, argv).options(all).positional(pos).run(), vm);
    po::notify(vm);
  } catch (const po::error& e) {
    std::fprintf(stderr, "taprec: %s (try --help)\n", e.what());
    return kExitError;
  }
  if (vm.count("help")) {
    std::cout << opts << "\nA trailing BPF expression narrows the packets, as with tcpdump.\n";
    return kExitOk;
  }
  if (!rotate_size.empty()) {
    // tcpdump's -C: millions of bytes, or a number with k, m or g (1024-based).
    char* end = nullptr;
    double v = std::strtod(rotate_size.c_str(), &end);
    uint64_t unit = 1000000;
    if (end && *end) {
      std::string suffix(end);
      unit = suffix == "k" || suffix == "K"   ? 1024
             : suffix == "m" || suffix == "M" ? 1048576
             : suffix == "g" || suffix == "G" ? 1073741824
                                              : 0;
    }
    if (!(v > 0) || unit == 0) {
      std::fprintf(stderr, "taprec: -C %s: not a size (N million bytes, or Nk, Nm, Ng)\n",
                   rotate_size.c_str());
      return kExitError;
    }
    rotation.max_bytes = static_cast<uint64_t>(v * unit);
  }
  if ((rotation.max_bytes || rotation.seconds || rotation.count) &&
      (write_path.empty() || write_path == "-")) {
    std::fprintf(stderr, "taprec: -C, -G and -W rotate a -w FILE (not standard output)\n");
    return kExitError;
  }
  if (rotation.count && !rotation.max_bytes && !rotation.seconds) {
    std::fprintf(stderr, "taprec: -W goes with -C or -G\n");
    return kExitError;
  }
  std::optional<tapkit::Inventory> inventory;
  if (vm.count("inventory") && inventory_path.empty()) {
    std::fprintf(stderr, "taprec: --inventory: give the inventory file\n");
    return kExitError;
  }
  if (!inventory_path.empty() && read_path.empty() && interface_name.empty()) {
    std::fprintf(stderr,
                 "taprec: --inventory goes with -r or -i; a live tap's labels come from the "
                 "control plane's inventory\n");
    return kExitError;
  }
  if (!inventory_path.empty()) {
    absl::StatusOr<tapkit::Inventory> inv = tapkit::Inventory::Load(inventory_path);
    if (!inv.ok()) {
      std::fprintf(stderr, "taprec: --inventory %s\n", std::string(inv.status().message()).c_str());
      return kExitError;
    }
    inventory = *std::move(inv);
  }
  bool redact = !vm.count("no-redact");
  std::optional<tapkit::Redactor> redactor;
  if (redact) {
    std::string key;
    if (!redact_key_file.empty()) {
      absl::StatusOr<std::string> k = tapkit::ReadRedactionKey(redact_key_file);
      if (!k.ok()) {
        std::fprintf(stderr, "taprec: --redact-key-file %s\n",
                     std::string(k.status().message()).c_str());
        return kExitError;
      }
      key = *k;
    }
    redactor.emplace(std::vector<std::string>{}, key);
  }
  if (!read_path.empty() && !interface_name.empty()) {
    std::fprintf(stderr, "taprec: -r and -i: one source at a time\n");
    return kExitError;
  }
  tapkit::LiveOptions live_options;
  if (vm.count("buffer-size")) {
    if (interface_name.empty()) {
      std::fprintf(stderr, "taprec: -B goes with -i (the capture buffer of an interface)\n");
      return kExitError;
    }
    if (buffer_kib < 1 || buffer_kib > kMaxBufferKiB) {
      std::fprintf(stderr, "taprec: -B %lld: the capture buffer size is in KiB, from 1 to %lld\n",
                   static_cast<long long>(buffer_kib), static_cast<long long>(kMaxBufferKiB));
      return kExitError;
    }
    live_options.buffer_bytes = static_cast<int>(buffer_kib * 1024);
  }
  if (vm.count("relinquish-privileges") && read_path.empty() && interface_name.empty()) {
    std::fprintf(stderr,
                 "taprec: -Z goes with -r or -i (a live tap needs no root: its sidecars take "
                 "tap-controlplane --sidecar-user)\n");
    return kExitError;
  }
  if (!read_path.empty() || !interface_name.empty()) {
    // "taprec deploy/x -i lo": the words after the options are a BPF filter there, and a
    // workload is tapped through the control plane, without -r or -i.
    // TYPE/NAME in the inventory's own syntax (ParseTarget); no BPF primitive has a '/' there.
    if (!bpf_words.empty() && bpf_words[0].find('/') != std::string::npos &&
        tapkit::ParseTarget(bpf_words[0]).ok()) {
      std::fprintf(stderr,
                   "taprec: %s is a TARGET: a workload is tapped through the control plane, "
                   "without %s (with it, the words after the options are a BPF filter)\n",
                   bpf_words[0].c_str(), read_path.empty() ? "-i" : "-r");
      return kExitError;
    }
  }
  if (read_path.empty() && interface_name.empty()) {
#ifdef TAPREC_LIVE
    if (bpf_words.size() != 1) {
      std::fprintf(stderr,
                   bpf_words.empty()
                       ? "taprec: give a TARGET to tap (deploy/NAME, pod/NAME, ...), -r FILE or "
                         "-i IFACE\n"
                       : "taprec: one TARGET only (a BPF expression goes with -r)\n");
      return kExitError;
    }
    if (output != "text" && output != "wide" && output != "json") {
      std::fprintf(stderr, "taprec: -o %s: unknown output (text, wide, json)\n", output.c_str());
      return kExitError;
    }
    if (body_limit < 0) {
      std::fprintf(stderr, "taprec: --snaplen-body %lld: must be 0 or more\n",
                   static_cast<long long>(body_limit));
      return kExitError;
    }
    if (max_requests < 0 || (vm.count("count") && count < 0)) {
      std::fprintf(stderr, "taprec: --max-requests %lld: must be 0 (no limit) or more\n",
                   static_cast<long long>(std::min(max_requests, count)));
      return kExitError;
    }
    live.max_requests = static_cast<uint64_t>(max_requests);
    live.target = bpf_words[0];
    live.write_path = write_path;
    live.output = output;
    live.body_limit = static_cast<uint64_t>(std::max<int64_t>(body_limit, 0));
    live.redact = redact;
    live.redact_key_file = redact_key_file;
    live.command_line.assign(argv, argv + argc);
    live.rotation = rotation;
    if (vm.count("count")) live.max_requests = static_cast<uint64_t>(std::max<int64_t>(count, 0));
    return tapkit::RunLive(live);
#else
    std::fprintf(stderr, "taprec: give -r FILE (this build has no live taps: no gRPC)\n");
    return kExitError;
#endif
  }
  if (vm.count("count") && count < 0) {
    std::fprintf(stderr, "taprec: -c %lld: must be 0 or more\n", static_cast<long long>(count));
    return kExitError;
  }
  if (body_limit < 0) {
    std::fprintf(stderr, "taprec: --snaplen-body %lld: must be 0 or more\n",
                 static_cast<long long>(body_limit));
    return kExitError;
  }
  if (!write_path.empty() && write_path != "-" && !read_path.empty()) {
    // Writing over the capture being read (by name, or as standard input) would destroy it.
    struct stat in {
    }, out{};
    int in_ok = read_path == "-" ? ::fstat(STDIN_FILENO, &in) : ::stat(read_path.c_str(), &in);
    if (in_ok == 0 && ::stat(write_path.c_str(), &out) == 0 && S_ISREG(in.st_mode) &&
        in.st_dev == out.st_dev && in.st_ino == out.st_ino) {
      std::fprintf(stderr,
                   "taprec: -w %s: is the capture being read (-r); refusing to overwrite it\n",
                   write_path.c_str());
      return kExitError;
    }
  }
  if (output != "text" && output != "wide" && output != "json") {
    std::fprintf(stderr, "taprec: -o %s: unknown output (text, wide, json)\n", output.c_str());
    return kExitError;
  }
  // Before any thread starts (the writer's): no_new_privs and the bounding set are per thread.
  absl::StatusOr<tapkit::PrivilegeDrop> drop = tapkit::PrivilegeDrop::Prepare(user, "-Z");
  if (!drop.ok()) {
    std::fprintf(stderr, "taprec: %s\n", std::string(drop.status().message()).c_str());
    return kExitError;
  }
  std::string bpf = absl::StrJoin(bpf_words, " ");
  bool live_capture = !interface_name.empty();
  absl::StatusOr<std::unique_ptr<tapkit::PacketSource>> source;
  if (live_capture) {
    // -i: until Ctrl+C or SIGTERM (or -c), like tcpdump.
    absl::StatusOr<std::unique_ptr<tapkit::LiveCapture>> c =
        tapkit::LiveCapture::Open({interface_name}, bpf, live_options);
    if (!c.ok()) {
      std::fprintf(stderr, "taprec: %s\n", std::string(c.status().message()).c_str());
      return kExitError;
    }
    std::signal(SIGINT, OnStopSignal);
    std::signal(SIGTERM, OnStopSignal);
    source = tapkit::NewLivePacketSource(*std::move(c), &g_stop);
  } else {
    // Ctrl+C stops reading; what was read is written, with index and trailer. Without
    // SA_RESTART, so that a read (or open) blocked on a pipe or FIFO is interrupted too.
    struct sigaction sa {};
    sa.sa_handler = OnStopSignal;
    sigemptyset(&sa.sa_mask);
    ::sigaction(SIGINT, &sa, nullptr);
    ::sigaction(SIGTERM, &sa, nullptr);
    source = tapkit::OpenCaptureFile(read_path, bpf);
  }
  if (!source.ok()) {
    std::fprintf(stderr, "taprec: %s\n", std::string(source.status().message()).c_str());
    return kExitError;
  }

  tapkit::CaptureMetadata meta;
  meta.start_time_ns = static_cast<uint64_t>(absl::GetCurrentTimeNanos());
  meta.writer_name = "taprec";
  meta.writer_version = std::string(tapkit::kVersion);
  meta.host = Host();
  meta.command_line.assign(argv, argv + argc);
  meta.body_limit = static_cast<uint64_t>(body_limit);
  if (!bpf.empty()) meta.filters.emplace_back("bpf", bpf);
  if (!inventory_path.empty()) meta.filters.emplace_back("inventory", inventory_path);
  meta.redaction.enabled = redact;
  if (redact) meta.redaction.headers = tapkit::DefaultRedactedHeaders();
  meta.redaction.keyed = !redact_key_file.empty();
  meta.capture_points = {
      live_capture
          ? tapkit::CapturePointInfo{0, "interface", interface_name, {}, {}}
          : tapkit::CapturePointInfo{0, "file", read_path == "-" ? "<stdin>" : read_path, {}, {}}};

  // Encoding and compression run on the writer's own thread, off the packet path; -C, -G and
  // -W rotate the file as tcpdump does. Each file's trailer has the counters as they stood.
  tapkit::CaptureEngine* engine_ptr = nullptr;
  absl::Status source_status;
  // -i: the kernel's counts as they stood when the capture ended, so that the last trailer and
  // the summary line on stderr give the same numbers; until then each trailer asks anew.
  std::optional<tapkit::KernelStats> final_kernel;
  rotation.live = live_capture;
  std::unique_ptr<tapkit::RotatingWriter> writer;
  if (!write_path.empty()) {
    writer = std::make_unique<tapkit::RotatingWriter>(write_path, meta, rotation, [&]() {
      tapkit::TrailerInput t;
      if (!engine_ptr) return t;
      t.drops = engine_ptr->Drops();
      // The capture file was damaged: say so in the .tap too (tapcat --info shows it).
      if (!source_status.ok()) t.drops["input_read_error"] = 1;
      t.counters = engine_ptr->Counters();
      // -i: what the kernel dropped never reached the engine; it is named here, as the live
      // tap's recorder names its sidecars' (the same thread as Next(): this runs in Tick,
      // Append and Close).
      std::optional<tapkit::KernelStats> k =
          final_kernel ? final_kernel : (*source)->kernel_stats();
      if (k) tapkit::AddKernelDrops(*k, &t.drops);
      tapkit::CapturePointInfo cp = meta.capture_points[0];
      cp.link_types = engine_ptr->link_types();
      t.capture_points = {cp};
      return t;
    });
    if (absl::Status s = writer->Open(); !s.ok()) {
      std::fprintf(stderr, "taprec: %s\n", std::string(s.message()).c_str());
      return kExitError;
    }
  }
  // The input and the first file are open: nothing after this needs root. Rotated files are
  // the -Z user's, the first one too (a -W ring reopens it), as with tcpdump.
  bool rotating = rotation.max_bytes || rotation.seconds;
  if (writer && rotating && drop->will_drop() &&
      ::chown(writer->current().c_str(), drop->uid(), drop->gid()) != 0) {
    std::fprintf(stderr, "taprec: -w %s: chown to %s: %s\n", writer->current().c_str(),
                 drop->user().c_str(), std::strerror(errno));
    return kExitError;
  }
  if (absl::Status s = drop->Apply(); !s.ok()) {
    std::fprintf(stderr, "taprec: %s\n", std::string(s.message()).c_str());
    return kExitError;
  }
  if (writer && rotating && drop->will_drop()) {
    size_t slash = write_path.find_last_of('/');
    std::string dir = slash == std::string::npos ? "."
                      : slash == 0               ? "/"
                                                 : write_path.substr(0, slash);
    if (::access(dir.c_str(), W_OK | X_OK) != 0) {
      std::fprintf(stderr,
                   "taprec: -w %s: -C and -G create the next files as user %s (-Z), who cannot "
                   "write in %s (%s): use a directory %s can write, or -Z root\n",
                   write_path.c_str(), drop->user().c_str(), dir.c_str(), std::strerror(errno),
                   drop->user().c_str());
      return kExitError;
    }
  }

  int64_t written = 0;
  absl::Status write_error;
  bool stop = count == 0;  // -c 0: read nothing, write an empty capture
  bool print_error = false;
  std::string out;
  flatbuffers::FlatBufferBuilder builder;
  std::string bodies;
  tapkit::EngineOptions eo;
  eo.http.body_limit = static_cast<uint64_t>(body_limit);
  tapkit::CaptureEngine engine(eo, [&](tapkit::Exchange&& x) {
    if (stop || !write_error.ok()) return;
    if (redactor) redactor->Apply(&x);
    if (inventory) {
      // Offline there is no tapped workload, so no direction; the labels come by address.
      for (tapkit::Endpoint* e : {&x.source, &x.destination}) {
        if (const tapkit::PodInfo* p = inventory->PodByIp(e->ip.ToString())) {
          e->labels.ns = p->namespace_;
          e->labels.pod = p->name;
          e->labels.workload_kind = p->workload_kind;
          e->labels.workload_name = p->workload_name;
        }
      }
    }
    if (writer) {
      write_error = writer->Append(std::move(x));
    } else {
      // Printed by the code tapcat prints stored exchanges with, from a view of the encoding.
      absl::StatusOr<tapkit::ExchangeView> v = tapkit::ViewOfExchange(x, &builder, &bodies);
      if (v.ok()) {
        if (output == "json") {
          tapkit::AppendJson(*v, &out);
        } else {
          tapkit::AppendText(*v, output == "wide", &out);
        }
        if (std::fwrite(out.data(), 1, out.size(), stdout) != out.size()) print_error = true;
        if (live_capture) std::fflush(stdout);  // live: each exchange as it ends
        out.clear();
      }
    }
    ++written;
    if (count >= 0 && written >= count) stop = true;
  });

  engine_ptr = &engine;
  bool tty = isatty(STDERR_FILENO);
  auto started = std::chrono::steady_clock::now();
  auto last = started;
  tapkit::Frame frame;
  uint64_t last_ts = 0;
  while (!stop && !g_stop && !print_error && write_error.ok() && (*source)->Next(&frame)) {
    engine.OnPacket(frame.link_type, frame.ts_ns, frame.data, frame.wire_length);
    last_ts = std::max(last_ts, frame.ts_ns);
    // The flush timer needs a clock read; once per 256 frames is often enough for a 1 s interval.
    if (writer && (live_capture || ((*source)->frames() & 0xff) == 0)) {
      write_error = writer->Tick();
    }
    if (tty && ((*source)->frames() & 0xfff) == 0) {
      auto now = std::chrono::steady_clock::now();
      if (now - last > std::chrono::seconds(1)) {
        last = now;
        double secs = std::chrono::duration<double>(now - started).count();
        std::string kernel;
        if (std::optional<tapkit::KernelStats> k = (*source)->kernel_stats(); k && k->dropped) {
          kernel = absl::StrCat(", ", k->dropped, " dropped by kernel");
        }
        std::fprintf(stderr, "\rtaprec: %llu frames, %lld exchanges (%.0f/s)%s   ",
                     static_cast<unsigned long long>((*source)->frames()),
                     static_cast<long long>(written), written / std::max(secs, 1e-9),
                     kernel.c_str());
      }
    }
  }
  if (!stop) engine.Finish(last_ts);
  if (tty) std::fprintf(stderr, "\r%60s\r", "");
  final_kernel = (*source)->kernel_stats();
  if (final_kernel) {
    // tcpdump's summary: frames handed to the engine, packets that passed the filter
    // (pcap_stats ps_recv), packets the capture buffer had no room for (ps_drop).
    std::string line = absl::StrCat("taprec: ", (*source)->frames(), " packets captured, ",
                                    final_kernel->received, " packets received by filter, ",
                                    final_kernel->dropped, " packets dropped by kernel");
    if (final_kernel->interface_dropped) {
      absl::StrAppend(&line, ", ", final_kernel->interface_dropped,
                      " packets dropped by interface");
    }
    std::fprintf(stderr, "%s\n", line.c_str());
  }

  int rc = kExitOk;
  absl::Status src = (*source)->status();
  if (g_stop && !src.ok()) src = absl::OkStatus();  // the read Ctrl+C interrupted: not damage
  source_status = src;
  if (!src.ok()) {
    std::fprintf(stderr, "taprec: %s\n", std::string(src.message()).c_str());
    rc = kExitError;
  }
  if (!writer && (print_error || std::fflush(stdout) != 0 || std::ferror(stdout))) {
    std::fprintf(stderr, "taprec: write error on standard output: %s\n", std::strerror(errno));
    return kExitError;
  }
  if (writer) {
    absl::Status s = writer->Close();
    if (!write_error.ok() && !absl::IsOutOfRange(write_error)) s = write_error;
    if (!s.ok()) {
      std::fprintf(stderr, "taprec: %s\n", std::string(s.message()).c_str());
      return kExitError;
    }
  }
  std::fflush(stdout);
  return rc;
}
