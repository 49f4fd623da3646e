// record_capture.h: taprec -r and taprec -i: HTTP exchanges from a packet source (a pcap or
// pcapng file, or an interface; sidecar/packet_source.h, live_capture.h) through the capture
// engine (sidecar/engine.h), redacted (format/redact.h: bodies that redaction drops are counted
// in the trailer as redaction_bodies_dropped), labelled by address from an inventory
// (Inventory::LabelsFor: namespace, pod, workload, service), then written to .tap files
// (rotating_writer.h, header from metadata.h) or printed as tapcat prints (format/render.h). On a
// terminal it shows progress; at the end it says "taprec: N exchanges recorded, M dropped" on
// `err` (and, with -i, tcpdump's packet counts).
//
// Order of things: the inventory and redaction key are read, the source opened, then the output
// (so that a capture that cannot open leaves no file behind), then, with `relinquish_user`, root
// is given up (sidecar/privileges.h), then packets are read.
//
// Thread-safety: RecordCapture runs on the calling thread (the writer has its own); without
// `stop` it owns SIGINT and SIGTERM for its duration. One call at a time per process.
#ifndef TAPKIT_RECORDER_RECORD_CAPTURE_H_
#define TAPKIT_RECORDER_RECORD_CAPTURE_H_

#include <atomic>
#include <cstdint>
#include <cstdio>
#include <optional>
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "format/format.h"
#include "format/redact.h"
#include "format/render.h"
#include "format/select.h"
#include "recorder/rotating_writer.h"

namespace tapkit {

struct CaptureRecording {
  // The source: exactly one of them.
  std::string read_path;       // -r: a pcap or pcapng file, "-" = standard input
  std::string interface_name;  // -i: an interface (needs CAP_NET_RAW)
  int buffer_bytes = 0;        // -i: the kernel's capture buffer, bytes; 0 = LiveOptions' default
  std::string bpf;             // BPF expression; empty = every packet

  std::string write_path;       // -w: a .tap file ("-" = standard output); empty = print
  OutputFormat output = OutputFormat::kText;  // printing (tapcat's -o; ParseOutputFormat)
  // Only the exchanges this selects are recorded or printed (format/select.h), matched before
  // redaction, after the inventory's labels; the file's header lists it in its filters. Its
  // +30s offsets count from the first frame's time; a workload in --to/--from, or -n, without
  // `inventory_path` is FailedPrecondition before the source opens.
  Selection selection;
  int64_t count = -1;  // -c: stop after this many selected exchanges; -1 = no limit
  uint64_t body_limit = format::kDefaultBodyLimit;  // bytes of each body kept
  // --no-redact, --redact-header, --redact-query-param, --redact-json-field, --redact-key-file
  // (format/redact.h BuildRedactor); on unless --no-redact.
  RedactionFlags redaction = RedactionOnByDefault();
  std::string inventory_path;   // label endpoints by address; empty = no labels
  RotationOptions rotation;     // -C, -G (capture time with -r), -W; `notice` goes to `err`
  std::vector<std::string> command_line;  // for the file's header

  // -Z: nullopt leaves the process's user alone (in-process tests); otherwise PrivilegeDrop's
  // rules (sidecar/privileges.h; "" = the default: nobody when root), prepared before any thread
  // starts and applied once the source and the first -w file are open. With -C or -G the first
  // file is given to the user, and its directory must be writable by the user (else
  // PermissionDenied naming it, before any packet is read).
  std::optional<std::string> relinquish_user;
  // Set (from another thread or a signal handler) to stop reading; what was read is written.
  // Null: SIGINT and SIGTERM set an internal flag instead.
  std::atomic<bool>* stop = nullptr;
  std::FILE* out = stdout;  // printed exchanges
  std::FILE* err = stderr;  // progress (when a terminal), notices and the summary
};

// Records until the source ends, `count` exchanges, or a stop. Errors (the messages name the
// file, flag or input; the caller prints them as "taprec: MESSAGE" and exits 2): InvalidArgument
// for a bad option (two sources or none, an unknown output); FailedPrecondition for a -w file
// (the first or a rotated one) that is the capture being read;
// the inventory's, the redaction flags' (BuildRedactor), the source's opening errors (NotFound, InvalidArgument for a
// BPF expression); DataLoss or the reader's error for a capture damaged midway (what came before
// it is written, and the trailer counts input_read_error); the writer's; "write error on
// standard output". A stop by signal is not an error.
absl::Status RecordCapture(const CaptureRecording& options);

}  // namespace tapkit

#endif  // TAPKIT_RECORDER_RECORD_CAPTURE_H_
