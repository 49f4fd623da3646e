// taprec: records HTTP exchanges into .tap files, or prints them.
//
//   taprec TARGET [-n NS] [-l SELECTOR] [-w FILE|-] [--to R] [--to-namespace NS] [--from R]
//          [--from-namespace NS] [--method M] [--authority A] [--path P] [--max-requests N]
//          [--max-rps R] [-o json|wide] [--controlplane ADDR] [--snaplen-body N] [redaction]
//   taprec -r FILE|- [-w FILE|-] [-c N] [selection] [--snaplen-body N] [redaction] [BPF ...]
//   taprec -i IFACE [-B KiB] [-w FILE|-] [-c N] [selection] [-Z USER] [...] [BPF expression ...]
// redaction: --no-redact, or --redact-header NAME, --redact-query-param NAME,
// --redact-json-field POINTER, --redact-key-file FILE (format/redact_options.h).
//
// The selection flags (format/select.h) work with -r and -i; -n there selects a namespace (with
// --inventory), with a TARGET it names the target's.
//
// Option parsing only: a TARGET is tapped by RunTap (recorder/tap_client.h), -r and -i are
// recorded by RecordCapture (recorder/record_capture.h); what each does, and when, is said there.
// Exit status: 0 success (a live tap the user or a limit ended), 2 a usage error, an input,
// output or capture error, or a live tap the control plane refused or ended on its own.
#include <algorithm>
#include <boost/program_options.hpp>
#include <cmath>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <iostream>
#include <optional>
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "absl/strings/ascii.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "absl/strings/str_split.h"
#include "controlplane/inventory.h"
#include "format/format.h"
#include "format/program.h"
#include "format/program_options.h"
#include "format/redact_options.h"
#include "format/select.h"
#include "recorder/record_capture.h"
#include "recorder/rotating_writer.h"
#ifdef TAPREC_LIVE
#include "recorder/tap_client.h"
#endif

namespace po = boost::program_options;

namespace {

using tapkit::kExitError;
using tapkit::kExitOk;
// -B, KiB: from 1 KiB (libpcap rounds a ring up to one block) to 1 GiB, past which the ring is
// memory the host is unlikely to want pinned for one capture.
constexpr int64_t kMaxBufferKiB = int64_t{1} << 20;

int Usage(const std::string& message) {
  std::fprintf(stderr, "taprec: %s\n", message.c_str());
  return kExitError;
}

int Exit(const absl::Status& s) {
  if (s.ok()) return kExitOk;
  std::fprintf(stderr, "taprec: %s\n", std::string(s.message()).c_str());
  return kExitError;
}

}  // namespace

int main(int argc, char** argv) {
  std::string read_path, write_path, output = "text";
  int64_t body_limit = tapkit::format::kDefaultBodyLimit;
  int64_t buffer_kib = 0, rotate_seconds = 0, file_count = 0, max_requests = 0;
  std::vector<std::string> bpf_words;
  std::string interface_name, rotate_size, inventory_path;
  tapkit::RedactionFlags redaction = tapkit::RedactionOnByDefault();
  std::string ns, selector;
  tapkit::SelectionFlags selection_flags;
  std::string controlplane, token_file, user;
  double max_rps = 0;
  bool delay_report = false;
  const char* usage =
      "Usage: taprec TARGET [options]          tap a workload through the control plane\n"
      "       taprec -r FILE|- [options] [BPF]  read a pcap or pcapng capture\n"
      "       taprec -i IFACE [options] [BPF]   capture an interface directly, as tcpdump\n"
      "Records HTTP exchanges into a .tap file, or prints them.\n\nOptions";
  po::options_description opts(usage);
  opts.add_options()("help,h", "show this help")("version", "print the version and exit")(
      "read,r", po::value(&read_path), "read packets from a pcap or pcapng file (- for stdin)")(
      "write,w", po::value(&write_path), "write a .tap file (- for stdout); without it, print")(
      "output,o", po::value(&output)->default_value("text"),
      "without -w: text, wide or json (as tapcat)")(
      "snaplen-body", po::value(&body_limit)->default_value(body_limit),
      "bytes of each body to keep (the rest is counted)")(
      "inventory", po::value(&inventory_path),
      "with -r or -i: label endpoints with namespace, pod, workload and service from this "
      "inventory (the local runtime's, controlplane/inventory.h)")(
      "interface,i", po::value(&interface_name),
      "capture this interface directly, like tcpdump -i (needs root or CAP_NET_RAW)")(
      "buffer-size,B", po::value(&buffer_kib),
      "with -i: the operating system's capture buffer, in KiB, like tcpdump -B (default 32768; "
      "packets that find it full are dropped by the kernel and counted)")(
      "file-size,C", po::value(&rotate_size),
      "with -w: a new file every SIZE million bytes (suffix k, m, g: KiB, MiB, GiB): out.tap, "
      "out1.tap, out2.tap, ...")(
      "rotate-seconds,G", po::value(&rotate_seconds),
      "with -w: a new file every N seconds (of capture time with -r)")(
      "file-count,W", po::value(&file_count),
      "with -C: a ring of N files (out0.tap ..), overwritten in turn; with -G: stop after N "
      "files")(
      "relinquish-privileges,Z", po::value(&user),
      "with -r or -i, run as root: once the input and the -w file are open, become USER (its "
      "uid, gid and groups, no capabilities), as tcpdump -Z. Default nobody; -Z root keeps "
      "root. Files -C and -G open later are created as USER, in a directory USER can write");
  po::options_description live_opts("Live taps (TARGET)");
  po::options_description select_opts(
      "Selection (ANDed; a repeated flag or a comma list ORs; -c counts selected exchanges)");
  tapkit::AddSelectionOptions(&select_opts, &selection_flags, /*with_namespace=*/false);
  opts.add(select_opts);
  live_opts.add_options()(
      "namespace,n", po::value(&ns),
      "the target's namespace; with -r or -i (and --inventory), keep exchanges with an "
      "endpoint in it")(
      "selector,l", po::value(&selector), "label selector narrowing the pods (kubectl -l)")(
      "max-requests", po::value(&max_requests), "stop after exactly N exchanges (0: no limit)")(
      "max-rps", po::value(&max_rps),
      "at most R exchanges per second, all pods together, in bursts of up to R (0: no limit); "
      "the rest are counted as held back")(
      "controlplane", po::value(&controlplane),
      "the control plane (default unix:RUNTIME_DIR/controlplane.sock, RUNTIME_DIR being "
      "$TAPKIT_RUNTIME_DIR, else $XDG_RUNTIME_DIR/tapkit, else /run/tapkit for root, else "
      "/tmp/tapkit-UID; it must be this user's own)")(
      "token-file", po::value(&token_file), "bearer token for a control plane on TCP")(
      "delay-report", po::bool_switch(&delay_report),
      "at the end, the delay from each exchange's last packet to its arrival (p50, p99)");
  po::options_description redaction_opts(
      "Redaction (on unless --no-redact; -r, -i and live taps alike; docs/security.md)");
  tapkit::AddRedactionOptions(&redaction_opts, &redaction);
  opts.add(redaction_opts);
  opts.add(live_opts);
  po::options_description hidden;
  hidden.add_options()("bpf", po::value(&bpf_words));
  po::variables_map vm;
  if (std::optional<int> done = tapkit::ParseCommandLine(
          {.program = "taprec",
           .visible = &opts,
           .hidden = &hidden,
           .positional = "bpf",
           .extra_parser = tapkit::SelectionExtraParser,
           .help_epilogue = "A trailing BPF expression narrows the packets, as with tcpdump.\n"},
          argc, argv, &vm, std::cout, std::cerr)) {
    return *done;
  }
  auto given = [&](const char* name) { return vm.count(name) && !vm[name].defaulted(); };
  const bool offline = !read_path.empty() || !interface_name.empty();

  // Flags that do nothing in this mode are refused, never silently ignored.
  if (given("output") && !write_path.empty()) {
    return Usage("-o chooses how exchanges are printed; with -w they go to the file (tapcat -o "
                 "prints it)");
  }
  if (vm.count("write") && write_path.empty()) {
    return Usage("-w: give a file name (or - for standard output)");
  }
  if (absl::Status s = tapkit::CheckRedactionFlags(redaction); !s.ok()) {
    return Usage(std::string(s.message()));
  }
  absl::StatusOr<tapkit::OutputFormat> format = tapkit::ParseOutputFormat(output);
  if (!format.ok()) return Usage(std::string(format.status().message()));
  if (*format != tapkit::OutputFormat::kText && *format != tapkit::OutputFormat::kWide &&
      *format != tapkit::OutputFormat::kJson) {
    // Exports wrap the whole capture (a HAR log, a pcap file): they are tapcat's, from a file.
    return Usage("-o " + output + ": taprec prints text, wide or json; record with -w FILE and " +
                 "export it with tapcat -o " + output);
  }
  if (offline) {
    for (const char* flag :
         {"selector", "max-requests", "max-rps", "controlplane", "token-file", "delay-report"}) {
      if (given(flag)) {
        std::string name = flag == std::string("selector") ? "-l" : std::string("--") + flag;
        return Usage(name + " goes with a live tap (TARGET), not with " +
                     (read_path.empty() ? "-i" : "-r") +
                     ": a capture file stores no pod labels to select pods by, and -c counts "
                     "the exchanges recorded");
      }
    }
    if (!ns.empty()) selection_flags.ns.push_back(ns);
  }
  absl::StatusOr<tapkit::Selection> selection = tapkit::Selection::Parse(selection_flags);
  if (!selection.ok()) return Usage(std::string(selection.status().message()));
  // A live tap warns itself (RunTap); -r and -i here.
  if (offline) {
    for (const std::string& w : selection->Warnings()) {
      std::fprintf(stderr, "taprec: warning: %s\n", w.c_str());
    }
  }
  const int64_t count = selection_flags.count;
  tapkit::RotationOptions rotation;
  if (vm.count("file-size")) {
    rotation.max_bytes = tapkit::ParseRotationSize(rotate_size);
    if (rotation.max_bytes == 0) {
      return Usage("-C " + rotate_size +
                   ": not a size above 0 and below 2^63 bytes (N million bytes, or Nk, Nm, Ng)");
    }
  }
  if (vm.count("rotate-seconds")) {
    // Up to about 31 years: a period in nanoseconds must fit the 64-bit clocks it is added to.
    constexpr int64_t kMaxRotateSeconds = 1'000'000'000;
    if (rotate_seconds < 1 || rotate_seconds > kMaxRotateSeconds) {
      return Usage("-G " + std::to_string(rotate_seconds) +
                   ": the period is from 1 second to " + std::to_string(kMaxRotateSeconds));
    }
    rotation.seconds = static_cast<uint64_t>(rotate_seconds);
  }
  if (vm.count("file-count")) {
    if (file_count < 1) return Usage("-W " + std::to_string(file_count) + ": 1 file or more");
    rotation.count = static_cast<uint64_t>(file_count);
  }
  if ((rotation.max_bytes || rotation.seconds || rotation.count) &&
      (write_path.empty() || write_path == "-")) {
    return Usage("-C, -G and -W rotate a -w FILE (not standard output)");
  }
  if (rotation.count && !rotation.max_bytes && !rotation.seconds) {
    return Usage("-W goes with -C or -G");
  }
  if (vm.count("inventory") && inventory_path.empty()) {
    return Usage("--inventory: give the inventory file");
  }
  if (!inventory_path.empty() && !offline) {
    return Usage("--inventory goes with -r or -i; a live tap's labels come from the control "
                 "plane's inventory");
  }
  if (!read_path.empty() && !interface_name.empty()) {
    return Usage("-r and -i: one source at a time");
  }
  if (vm.count("relinquish-privileges") && !offline) {
    return Usage("-Z goes with -r or -i (a live tap needs no root: its sidecars take "
                 "tap-controlplane --sidecar-user)");
  }
  if (vm.count("buffer-size")) {
    if (interface_name.empty()) {
      return Usage("-B goes with -i (the capture buffer of an interface)");
    }
    if (buffer_kib < 1 || buffer_kib > kMaxBufferKiB) {
      return Usage("-B " + std::to_string(buffer_kib) +
                   ": the capture buffer size is in KiB, from 1 to " +
                   std::to_string(kMaxBufferKiB));
    }
  }
  if (body_limit < 0) {
    return Usage("--snaplen-body " + std::to_string(body_limit) + ": must be 0 or more");
  }
  if (offline) {
    // "taprec deploy/x -i lo": the words after the options are a BPF filter there, and a
    // workload is tapped through the control plane, without -r or -i.
    // TYPE/NAME in the inventory's own syntax (ParseTarget); no BPF primitive has a '/' there.
    if (!bpf_words.empty() && bpf_words[0].find('/') != std::string::npos &&
        tapkit::ParseTarget(bpf_words[0]).ok()) {
      return Usage(bpf_words[0] + " is a TARGET: a workload is tapped through the control "
                   "plane, without " + (read_path.empty() ? "-i" : "-r") +
                   " (with it, the words after the options are a BPF filter)");
    }
    tapkit::CaptureRecording o;
    o.read_path = read_path;
    o.interface_name = interface_name;
    o.buffer_bytes = static_cast<int>(buffer_kib * 1024);
    o.bpf = absl::StrJoin(bpf_words, " ");
    o.write_path = write_path;
    o.output = *format;
    o.count = count;
    o.selection = *selection;
    o.body_limit = static_cast<uint64_t>(body_limit);
    o.redaction = redaction;
    o.inventory_path = inventory_path;
    o.rotation = rotation;
    o.command_line.assign(argv, argv + argc);
    o.relinquish_user = user;  // "" without -Z: root becomes nobody all the same
    return Exit(tapkit::RecordCapture(o));
  }
#ifdef TAPREC_LIVE
  // A live tap's sidecars redact before the tap matches what they send (-r and -i match first):
  // --header on a redacted field would compare with the marker and select nothing.
  if (tapkit::RedactionEnabled(redaction)) {
    std::vector<std::string> redacted = tapkit::DefaultRedactedHeaders();
    for (const std::string& h : redaction.headers) {
      for (absl::string_view part : absl::StrSplit(h, ',')) {
        redacted.push_back(absl::AsciiStrToLower(part));
      }
    }
    for (const std::string& name : selection->HeaderNames()) {
      if (std::find(redacted.begin(), redacted.end(), name) != redacted.end()) {
        return Usage("--header " + name + ": a live tap's sidecars redact " + name +
                     " before the tap sees it, so it would match the marker only; add "
                     "--no-redact, or select on another field");
      }
    }
  }
  if (bpf_words.size() != 1) {
    return Usage(bpf_words.empty()
                     ? "give a TARGET to tap (deploy/NAME, pod/NAME, ...), -r FILE or -i IFACE"
                     : "one TARGET only (a BPF expression goes with -r)");
  }
  // A word that names no resource type is a mistake here, not something to ask the control
  // plane about (which first needs its runtime directory and socket).
  if (absl::StatusOr<tapkit::TargetRef> ref = tapkit::ParseTarget(bpf_words[0]); !ref.ok()) {
    return Usage(absl::StrCat("TARGET ", bpf_words[0], ": ", ref.status().message()));
  }
  if (max_requests < 0) {
    return Usage("--max-requests " + std::to_string(max_requests) +
                 ": must be 0 (no limit) or more");
  }
  tapkit::TapOptions t;
  t.target = bpf_words[0];
  t.ns = ns;
  t.selector = selector;
  // The sidecars evaluate what they can; the rest is matched on ended exchanges.
  tapkit::TapPushdown pushed = selection->ForTap();
  t.to = pushed.to;
  t.to_namespace = pushed.to_namespace;
  t.from = pushed.from;
  t.from_namespace = pushed.from_namespace;
  t.method = pushed.method;
  t.authority = pushed.authority;
  t.path = pushed.path;
  t.selection = pushed.rest;
  if (count == 0) {
    // --max-requests 0 means no limit: -c 0 cannot be passed on as it, and a tap of nothing
    // would only start sidecars to stop them.
    return Usage("-c 0 with a TARGET: a live tap records at least one exchange (-c N, N >= 1)");
  }
  if (t.selection.empty()) {
    t.max_requests = static_cast<uint64_t>(count > 0 ? count : max_requests);
  } else {
    // Selected exchanges are counted here; --max-requests still bounds the tap as a whole.
    t.max_requests = static_cast<uint64_t>(max_requests);
    t.count = static_cast<uint64_t>(std::max<int64_t>(count, 0));
  }
  t.max_rps = max_rps;
  t.write_path = write_path;
  t.output = *format;
  t.controlplane = controlplane;
  t.token_file = token_file;
  t.body_limit = static_cast<uint64_t>(body_limit);
  t.redaction = redaction;
  t.command_line.assign(argv, argv + argc);
  t.rotation = rotation;
  t.delay_report = delay_report;
  return Exit(tapkit::RunTap(t));
#else
  return Usage("give -r FILE or -i IFACE (this build has no live taps: no gRPC)");
#endif
}
