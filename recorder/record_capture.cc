#include "recorder/record_capture.h"

#include <signal.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <chrono>
#include <cstring>
#include <map>
#include <memory>

#include "absl/strings/str_cat.h"
#include "controlplane/inventory.h"
#include "format/codec.h"
#include "format/exchange_view.h"
#include "format/redact.h"
#include "format/render.h"
#include "recorder/metadata.h"
#include "recorder/stop_signals.h"
#include "sidecar/decode.h"
#include "sidecar/engine.h"
#include "sidecar/live_capture.h"
#include "sidecar/packet_source.h"
#include "sidecar/privileges.h"

namespace tapkit {
namespace {

uint64_t Sum(const std::map<std::string, uint64_t>& m) {
  uint64_t n = 0;
  for (const auto& [k, v] : m) n += v;
  return n;
}

}  // namespace

absl::Status RecordCapture(const CaptureRecording& o) {
  const bool live = !o.interface_name.empty();
  if (live == !o.read_path.empty()) {
    return absl::InvalidArgumentError(live ? "-r and -i: one source at a time"
                                           : "give -r FILE or -i IFACE");
  }

  // Writing over the capture being read (by name, or as standard input) would destroy it: every
  // -w file, the first and those -C and -G open later, is checked as it opens (RotatingWriter).
  std::optional<FileId> input_file;
  if (!o.write_path.empty() && o.write_path != "-" && !live) {
    struct stat in {};
    int in_ok = o.read_path == "-" ? ::fstat(STDIN_FILENO, &in) : ::stat(o.read_path.c_str(), &in);
    if (in_ok == 0 && S_ISREG(in.st_mode)) {
      input_file = FileId{static_cast<uint64_t>(in.st_dev), static_cast<uint64_t>(in.st_ino)};
    }
  }
  // -Z, before any thread starts (the source's, the writer's): no_new_privs and the capability
  // bounding set are per thread (sidecar/privileges.h).
  std::optional<PrivilegeDrop> drop;
  if (o.relinquish_user) {
    absl::StatusOr<PrivilegeDrop> d = PrivilegeDrop::Prepare(*o.relinquish_user, "-Z");
    if (!d.ok()) return d.status();
    drop = *std::move(d);
  }
  std::optional<Inventory> inventory;
  if (!o.inventory_path.empty()) {
    absl::StatusOr<Inventory> inv = Inventory::Load(o.inventory_path);
    if (!inv.ok()) return absl::Status(inv.status().code(), absl::StrCat("--inventory ", inv.status().message()));
    inventory = *std::move(inv);
  }
  absl::StatusOr<std::optional<Redactor>> built = BuildRedactor(o.redaction);
  if (!built.ok()) return built.status();
  const std::optional<Redactor> redactor = *std::move(built);
  RedactionStats redacted;

  // The selection's labels are checked now, before anything opens; its start is the first frame's.
  Selection selection = o.selection;
  const std::string source_name = live                 ? o.interface_name
                                  : o.read_path == "-" ? "<stdin>"
                                                       : o.read_path;
  const bool labelled = inventory.has_value();
  if (absl::Status s = selection.Bind({{source_name, 0, labelled}}); !s.ok()) return s;
  bool bound = false;
  absl::Status bind_error;

  // -i runs until Ctrl+C or SIGTERM (or -c), like tcpdump; -r until the file ends, and Ctrl+C
  // stops reading: what was read is written, with index and trailer.
  std::optional<StopSignals> signals;
  if (!o.stop) signals.emplace(/*restart=*/live, /*ignore_sigpipe=*/false);
  std::atomic<bool>* stop_flag = o.stop ? o.stop : &StopSignals::stopped();
  absl::StatusOr<std::unique_ptr<PacketSource>> opened;
  if (live) {
    LiveOptions lo;
    if (o.buffer_bytes > 0) lo.buffer_bytes = o.buffer_bytes;
    absl::StatusOr<std::unique_ptr<LiveCapture>> c =
        LiveCapture::Open({o.interface_name}, o.bpf, lo);
    if (!c.ok()) return c.status();
    opened = NewLivePacketSource(*std::move(c), stop_flag);
  } else {
    opened = OpenCaptureFile(o.read_path, o.bpf);
  }
  if (!opened.ok()) return opened.status();
  PacketSource& source = **opened;

  RecordingSetup setup;
  setup.command_line = o.command_line;
  setup.filters = {{"bpf", o.bpf}, {"inventory", o.inventory_path}};
  for (auto& f : selection.Describe()) setup.filters.push_back(std::move(f));
  setup.body_limit = o.body_limit;
  setup.redaction = redactor ? redactor->policy() : RedactionPolicy{};
  setup.capture_points = {live ? CapturePointInfo{0, "interface", o.interface_name, {}, {}}
                               : CapturePointInfo{0, "file", source_name, {}, {}}};
  const CaptureMetadata meta = BuildMetadata(setup);

  // Encoding and compression run on the writer's own thread, off the packet path. Each file's
  // trailer has the counters as they stood.
  CaptureEngine* engine_ptr = nullptr;
  absl::Status source_status;
  // -i: the kernel's counts as they stood when the capture ended, so that the last trailer and
  // the summary give the same numbers; until then each trailer asks anew.
  std::optional<KernelStats> final_kernel;
  auto trailer = [&]() {
    TrailerInput t;
    if (!engine_ptr) return t;
    t.drops = engine_ptr->Drops();
    // The capture file was damaged: say so in the .tap too (tapcat --info shows it).
    if (!source_status.ok()) t.drops["input_read_error"] = 1;
    t.counters = engine_ptr->Counters();
    if (redacted.bodies_dropped) t.counters["redaction_bodies_dropped"] = redacted.bodies_dropped;
    // -i: what the kernel dropped never reached the engine; it is named here, as the live tap's
    // recorder names its sidecars' (the same thread as Next(): this runs in Tick, Append, Close).
    std::optional<KernelStats> k = final_kernel ? final_kernel : source.kernel_stats();
    if (k) AddKernelDrops(*k, &t.drops);
    CapturePointInfo cp = meta.capture_points[0];
    cp.link_types = engine_ptr->link_types();
    t.capture_points = {cp};
    return t;
  };
  RotationOptions rotation = o.rotation;
  rotation.live = live;
  rotation.capture_clock = !live;  // -G of a capture file follows its timestamps
  if (!rotation.notice) {
    rotation.notice = [err = o.err](const std::string& m) {
      std::fprintf(err, "taprec: %s\n", m.c_str());
    };
  }
  // Rotated files are created after the privilege drop, as the -Z user: a directory that user
  // cannot write is refused now, before the -w file is opened (an existing capture there is left
  // as it was).
  const bool rotating = !o.write_path.empty() && o.write_path != "-" &&
                        (rotation.max_bytes || rotation.seconds);
  std::string out_dir;
  if (rotating) {
    size_t slash = o.write_path.find_last_of('/');
    out_dir = slash == std::string::npos ? "."
              : slash == 0               ? "/"
                                         : o.write_path.substr(0, slash);
  }
  if (rotating && drop && drop->will_drop()) {
    if (absl::Status s = drop->CanWriteDirectory(out_dir); !s.ok()) {
      return absl::PermissionDeniedError(absl::StrCat(
          "-w ", o.write_path, ": -C and -G create the next files as user ", drop->user(),
          " (-Z), who cannot write in ", out_dir, " (", s.message(), "): use a directory ",
          drop->user(), " can write, or -Z root"));
    }
  }
  // The -Z user can write that directory: it must not be able to point a file's name at
  // another file for root to truncate and hand over.
  rotation.no_follow = rotating && drop && drop->will_drop();
  rotation.never_overwrite = input_file;
  std::unique_ptr<RotatingWriter> writer;
  if (!o.write_path.empty()) {
    writer = std::make_unique<RotatingWriter>(o.write_path, meta, rotation, trailer);
    if (absl::Status s = writer->Open(); !s.ok()) return s;
  }
  if (drop) {
    // The input and the first file are open: nothing after this needs root. Rotated files are
    // the -Z user's, the first one too (a -W ring reopens it), as with tcpdump.
    if (rotating && drop->will_drop() &&
        ::lchown(writer->current().c_str(), drop->uid(), drop->gid()) != 0) {
      return absl::PermissionDeniedError(absl::StrCat("-w ", writer->current(), ": chown to ",
                                                      drop->user(), ": ", std::strerror(errno)));
    }
    if (absl::Status s = drop->Apply(); !s.ok()) return s;
    if (rotating && drop->will_drop() && ::access(out_dir.c_str(), W_OK | X_OK) != 0) {
      // What the mode bits allowed, an ACL or a read-only mount may still refuse.
      return absl::PermissionDeniedError(absl::StrCat(
          "-w ", o.write_path, ": -C and -G create the next files as user ", drop->user(),
          " (-Z), who cannot write in ", out_dir, " (", std::strerror(errno), "): use a directory ",
          drop->user(), " can write, or -Z root"));
    }
  }

  int64_t written = 0;
  absl::Status write_error;
  bool done = o.count == 0;  // -c 0: read nothing, write an empty capture
  bool print_error = false;
  std::string text;
  flatbuffers::FlatBufferBuilder builder;
  std::string bodies;
  EngineOptions eo;
  eo.http.body_limit = o.body_limit;
  CaptureEngine engine(eo, [&](Exchange&& x) {
    if (done || !write_error.ok()) return;
    if (inventory) {
      // Offline there is no tapped workload, so no direction; the labels come by address.
      x.source.labels = inventory->LabelsFor(x.source.ip.ToString());
      x.destination.labels = inventory->LabelsFor(x.destination.ip.ToString());
    }
    // Selected on what was sent (a --header on a cookie sees its value), then redacted.
    if (!selection.Matches(x)) return;
    if (redactor) redactor->Apply(&x, &redacted);
    if (writer) {
      write_error = writer->Append(std::move(x));
      // Not written: -G with -W had written its files (OutOfRange), or the writer failed.
      if (!write_error.ok()) return;
    } else {
      // Printed by the code tapcat prints stored exchanges with, from a view of the encoding.
      absl::StatusOr<ExchangeView> v = ViewOfExchange(x, &builder, &bodies);
      if (v.ok()) {
        if (o.output == OutputFormat::kJson) {
          AppendJson(*v, &text);
        } else {
          AppendText(*v, o.output == OutputFormat::kWide, &text);
        }
        if (std::fwrite(text.data(), 1, text.size(), o.out) != text.size()) print_error = true;
        if (live) std::fflush(o.out);  // live: each exchange as it ends
        text.clear();
      }
    }
    ++written;
    if (o.count >= 0 && written >= o.count) done = true;
  });
  engine_ptr = &engine;

  const bool tty = isatty(fileno(o.err));
  auto started = std::chrono::steady_clock::now();
  auto last = started;
  Frame frame;
  uint64_t last_ts = 0;
  while (!done && !*stop_flag && !print_error && write_error.ok() && source.Next(&frame)) {
    if (!bound) {
      // The capture's start, for --since/--until +D: the first frame's time.
      bound = true;
      bind_error = selection.Bind({{source_name, frame.ts_ns, labelled}});
      if (!bind_error.ok()) break;
    }
    engine.OnPacket(frame.link_type, frame.ts_ns, frame.data, frame.wire_length);
    last_ts = std::max(last_ts, frame.ts_ns);
    // The flush timer needs a clock read; once per 256 frames is often enough for a 1 s interval.
    if (writer && (live || (source.frames() & 0xff) == 0)) write_error = writer->Tick();
    if (tty && (source.frames() & 0xfff) == 0) {
      auto now = std::chrono::steady_clock::now();
      if (now - last > std::chrono::seconds(1)) {
        last = now;
        double secs = std::chrono::duration<double>(now - started).count();
        std::string kernel;
        if (std::optional<KernelStats> k = source.kernel_stats(); k && k->dropped) {
          kernel = absl::StrCat(", ", k->dropped, " dropped by kernel");
        }
        std::fprintf(o.err, "\rtaprec: %llu frames, %lld exchanges (%.0f/s)%s   ",
                     static_cast<unsigned long long>(source.frames()),
                     static_cast<long long>(written), written / std::max(secs, 1e-9),
                     kernel.c_str());
      }
    }
  }
  if (!done) engine.Finish(last_ts);
  if (tty) std::fprintf(o.err, "\r%60s\r", "");
  final_kernel = source.kernel_stats();

  absl::Status src = source.status();
  if (*stop_flag && !src.ok()) src = absl::OkStatus();  // the read a stop interrupted: not damage
  source_status = src;
  absl::Status result = bind_error.ok() ? src : bind_error;
  if (!writer && (print_error || std::fflush(o.out) != 0 || std::ferror(o.out))) {
    result = absl::UnavailableError(
        absl::StrCat("write error on standard output: ", std::strerror(errno ? errno : EIO)));
  }
  TrailerInput totals = trailer();
  // Frames of a link type the engine cannot decode are a named drop; say so, naming the input
  // and the link types. When no frame at all could be decoded the capture is of no use to
  // taprec: an error (exit 2), the file still written with its trailer.
  if (auto u = totals.drops.find("unknown_link_type"); u != totals.drops.end() && u->second) {
    const std::string& source_name = meta.capture_points[0].name;
    std::string types;
    for (uint16_t lt : engine.link_types()) {
      if (!IsSupportedLinkType(lt)) absl::StrAppend(&types, types.empty() ? "" : ", ", lt);
    }
    std::string what = absl::StrCat(
        source_name, ": ", u->second, " of ", source.frames(), " frames have a link type taprec "
        "does not decode (", types, "; https://www.tcpdump.org/linktypes.html), counted as "
        "unknown_link_type");
    if (u->second == source.frames() && result.ok()) {
      result = absl::InvalidArgumentError(what);
    } else {
      std::fprintf(o.err, "taprec: warning: %s\n", what.c_str());
    }
  }
  if (writer) {
    absl::Status s = writer->Close();
    if (!write_error.ok() && !absl::IsOutOfRange(write_error)) s = write_error;
    if (absl::IsOutOfRange(write_error)) {
      std::fprintf(o.err, "taprec: %s\n", std::string(write_error.message()).c_str());
    }
    if (!s.ok()) result = s;
  }
  if (final_kernel) {
    // tcpdump's summary: frames handed to the engine, packets that passed the filter
    // (pcap_stats ps_recv), packets the capture buffer had no room for (ps_drop).
    std::string line = absl::StrCat("taprec: ", source.frames(), " packets captured, ",
                                    final_kernel->received, " packets received by filter, ",
                                    final_kernel->dropped, " packets dropped by kernel");
    if (final_kernel->interface_dropped) {
      absl::StrAppend(&line, ", ", final_kernel->interface_dropped,
                      " packets dropped by interface");
    }
    std::fprintf(o.err, "%s\n", line.c_str());
  }
  // The live tap's summary (tap_client.h), always, terminal or not.
  std::fputs(SummaryLine(static_cast<uint64_t>(written), Sum(totals.drops), 0, writer != nullptr)
                 .c_str(),
             o.err);
  std::fflush(o.out);
  return result;
}

}  // namespace tapkit
