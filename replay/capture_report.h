// capture_report.h (private to replay/): live exchanges written as a capture, the part tapreplay
// -w (MakeCaptureReport, report.h) and tapreplay --serve -w (the exchanges passed through to the
// upstream, serve_run.h) share, so both write and redact alike:
//   - the body limit is the caller's: format::kDefaultBodyLimit (64 KiB, taprec's default) for
//     tapreplay -w, the mock server's own caps for --serve -w (the whole body it received); a
//     longer body is stored cut, `truncated`, with its full length; the header records the limit;
//   - with a Redactor (the tools' default, BuildRedactor(RedactionOnByDefault()), unless
//     --no-redact) each exchange is redacted (Redactor::Apply) before its bodies are cut, and the
//     header records the policy; the trailer counts "redaction_bodies_dropped";
//   - stream ids are 1, 2, 3, ... in the order of Add, so they are unique within the file
//     (format/SPEC.md section 4.5) whatever the caller numbered;
//   - an exchange over the format's caps is left out and counted (drop
//     "replay_oversized_exchanges"); Close then says so as an error naming the file.
//
// Thread-safety: one thread at a time (the caller serialises Add and Close).
#ifndef TAPKIT_REPLAY_CAPTURE_REPORT_H_
#define TAPKIT_REPLAY_CAPTURE_REPORT_H_

#include <cstdint>
#include <map>
#include <memory>
#include <optional>
#include <string>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "format/exchange.h"
#include "format/format.h"
#include "format/metadata.h"
#include "format/redact.h"

namespace tapkit {
class Writer;
}

namespace tapkit::replay {

// The -w capture's Redactor, tapreplay's in both modes: nullopt with `no_redact` (--no-redact);
// otherwise taprec's default policy (format/redact.h, RedactionOnByDefault), keyed with the key in
// `key_file` (--redact-key-file) when it is not empty. Errors: BuildRedactor's (a key file that
// cannot be read, naming it).
absl::StatusOr<std::optional<Redactor>> CaptureRedactor(bool no_redact,
                                                        const std::string& key_file);

class ExchangeCapture {
 public:
  // Creates `path` ("-" is standard output; mode 0600 as every capture) with `header` (its
  // body_limit, bytes per body, and redaction are set here). Errors name the file.
  static absl::StatusOr<std::unique_ptr<ExchangeCapture>> Open(
      const std::string& path, CaptureMetadata header, std::optional<Redactor> redactor,
      uint64_t body_limit = format::kDefaultBodyLimit);
  ~ExchangeCapture();
  ExchangeCapture(const ExchangeCapture&) = delete;
  ExchangeCapture& operator=(const ExchangeCapture&) = delete;

  // Redacts, cuts, numbers and appends `e`. A write error is kept and returned by Close; nothing
  // more is written after it.
  void Add(Exchange e);
  // Writes the trailer with `counters` (plus the redaction's) and closes the file. Errors name
  // the file: the first write error, or exchanges left out over the format's caps. Once only.
  absl::Status Close(std::map<std::string, uint64_t> counters);

  const std::string& name() const;  // the file's name as the Writer gives it

 private:
  ExchangeCapture(std::unique_ptr<Writer> writer, std::optional<Redactor> redactor,
                  uint64_t body_limit);
  std::unique_ptr<Writer> writer_;
  uint64_t body_limit_;
  std::optional<Redactor> redactor_;
  RedactionStats redaction_stats_;
  absl::Status status_;
  bool finished_ = false;
  uint64_t next_stream_ = 1;
  uint64_t oversized_ = 0;
  std::string first_oversized_;
};

}  // namespace tapkit::replay

#endif  // TAPKIT_REPLAY_CAPTURE_REPORT_H_
