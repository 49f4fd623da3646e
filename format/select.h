// select.h: the selection flags every tool that reads or records exchanges shares (tapcat, taprec
// -r/-i and the live tap, tapfilter and tapreplay to come): one parser of the flags, one
// predicate over an exchange (docs/architecture.md section 4, issue 11).
//
// Flags are ANDed. A flag given twice ORs its values, and so does a comma list for the flags whose
// values cannot hold a comma (--to, --from, --direction, --method, --authority, --status,
// --grpc-status, --incomplete, -n); --path, --path-regex and --header are repeated instead.
//
//   --to/--from R        R is TYPE/NAME in kubectl's words (deploy/x, sts/x, ds/x, rs/x, job/x,
//                        cj/x, po/x, svc/x, ns/x; ParseTarget, controlplane/inventory.h) matched
//                        on the destination's/source's endpoint labels, in --to-namespace/
//                        --from-namespace (else -n, else any namespace); or an address: an IP,
//                        a CIDR (no host bits), IP:PORT, [IPv6]:PORT.
//   --direction in|out   the exchange's direction (unknown offline: then nothing matches).
//   --method M           exact and case-sensitive (RFC 9110 section 9.1).
//   --authority A        the request's authority, host compared without case (RFC 3986
//                        section 6.2.2.1), the port as written.
//   --path P             a prefix of the path with query; --path-regex RE: RE2, a partial match
//                        (as grep) on the path with query.
//   --status S           500, 5xx (1xx..5xx) or 400-499; the final response's status.
//   --min-latency/--max-latency D   250ms, 1.5s, 2m, 800us, 10ns, 1h: latency as
//                        docs/architecture.md section 2 defines it (response first byte -
//                        request first byte); an exchange without both never matches a bound.
//   --since/--until T    RFC 3339 (2026-12-04T10:00:00.5Z, +01:00 offsets) or +D after the
//                        capture's start; on the sort key (request start), [since, until).
//   --header 'NAME: RE'  a request or final-response field NAME (any case) whose value RE2
//                        partially matches; 'req:NAME: RE' or 'rsp:NAME: RE' picks one side.
//   --grpc-status C      0..16 or a code name (UNAVAILABLE, any case); none never matches.
//   --incomplete[=LIST]  completion other than complete (=any, the bare flag), or one of LIST
//                        (CompletionName's names: gap, reset, no-response, ...).
//   -n NS                either endpoint's namespace label is NS.
//   -c N                 at most N selected exchanges (the caller counts: count()).
//
// Matching never reads body bytes: it works on a headers-only Reader's views.
//
// Thread-safety: a Selection is immutable once bound; Matches may run on several threads at once.
// Parse and Bind are not for concurrent use on one object.
#ifndef TAPKIT_FORMAT_SELECT_H_
#define TAPKIT_FORMAT_SELECT_H_

#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <utility>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "format/exchange.h"
#include "format/exchange_view.h"
#include "format/metadata.h"
#include "format/reader.h"

namespace boost::program_options {
class options_description;
}

namespace tapkit {

// The flags' raw values as given on the command line.
struct SelectionFlags {
  std::vector<std::string> to, from;
  std::string to_namespace, from_namespace;
  std::vector<std::string> direction, method, authority, path, path_regex, status;
  std::string min_latency, max_latency, since, until;
  std::vector<std::string> header, grpc_status;
  // --incomplete: each occurrence's value, "any" for the bare flag (SelectionExtraParser).
  std::vector<std::string> incomplete;
  std::vector<std::string> ns;  // -n/--namespace
  int64_t count = -1;           // -c N; -1 when not given
  bool count_given = false;     // -c was given (so -c -1 is refused, not "no limit")
};

// Registers the selection flags on `opts`, storing into `*flags` (which must outlive parsing):
// the flags above, -c/--count, and -n/--namespace unless `with_namespace` is false (a live
// taprec names its target's namespace with -n and registers it itself).
void AddSelectionOptions(boost::program_options::options_description* opts, SelectionFlags* flags,
                         bool with_namespace = true);
// Give this to command_line_parser::extra_parser wherever AddSelectionOptions is used: it reads a
// bare "--incomplete" as the flag without a list, so that the word after it stays a positional
// argument (Boost 1.74 would take `--incomplete FILE` as the list FILE): it is --incomplete=any.
// A list is given as --incomplete=gap,reset. Other tokens: {"", ""} (not handled here).
std::pair<std::string, std::string> SelectionExtraParser(const std::string& token);

// What Bind needs to know of one input.
struct SelectionInput {
  std::string name;       // the file (or capture) as error messages name it
  uint64_t start_ns = 0;  // the capture's start, nanoseconds since the Unix epoch
  bool labelled = false;  // its endpoints carry resource labels (a live tap, or --inventory)
};

// Whether a file's endpoints carry resource labels, from its header: it was recorded from a
// target (a live tap) or with an inventory ("inventory" filter), a capture point is labelled (a
// pod), or a tool that copied labelled files said so (extra "endpoint-labels" = "yes", which
// tapfilter writes when every input was labelled).
bool EndpointsLabelled(const CaptureMetadata& metadata);

// The input a .tap file is: start is the trailer's smallest sort key when the file has a trailer
// with exchanges, else the header's start time; labelled as EndpointsLabelled says.
SelectionInput SelectionInputOf(std::string name, const CaptureMetadata& metadata,
                                const std::optional<FileSummary>& summary);

struct TapPushdown;

class Selection {
 public:
  Selection();  // selects everything
  ~Selection();
  Selection(const Selection&);
  Selection& operator=(const Selection&);
  Selection(Selection&&);  // leaves `other` selecting everything
  Selection& operator=(Selection&&);

  // Parses and checks every flag. Errors: InvalidArgument with one line naming the flag and the
  // value, e.g. "--status 7xx: unknown status class (1xx..5xx)": an unknown status class or a
  // status outside 100..599, a malformed or negative duration, an invalid regex, a CIDR with host
  // bits, an unknown resource type or address, --since after --until, --min-latency above
  // --max-latency, a bad --direction, --grpc-status or --incomplete name, -c below 0.
  static absl::StatusOr<Selection> Parse(const SelectionFlags& flags);

  bool empty() const;     // selects every exchange (-c aside)
  int64_t count() const;  // -c N, or -1

  // Whether Bind has anything to do: a relative --since/--until, a workload in --to/--from, -n.
  bool needs_inputs() const;
  // Binds what depends on the inputs: +D offsets count from the earliest start over `inputs`. A
  // workload in --to/--from, or -n, on an input without endpoint labels is FailedPrecondition
  // naming the flag and the input ("--to deploy/web: FILE has no endpoint labels (record with
  // --inventory)"). Until bound, relative times count from 0. Call again to rebind.
  absl::Status Bind(const std::vector<SelectionInput>& inputs);
  // Bind over open .tap readers (SelectionInputOf each; null ones are skipped).
  absl::Status Bind(const std::vector<const Reader*>& readers);

  // The predicate; never touches body bytes.
  bool Matches(const ExchangeView& x) const;
  bool Matches(const Exchange& x) const;  // the same predicate for owned exchanges

  // Splits the selection for a live tap: what its sidecars evaluate themselves (TapRequest's to,
  // from, method, authority and path in controlplane/api/tap.proto: one value each, --to/--from
  // as TYPE/NAME), and the rest for the tap client to match on ended exchanges.
  TapPushdown ForTap() const;

  // The flags as given, one (name, value) pair per value ("status", "5xx"), for
  // CaptureMetadata::filters of a file written through this selection. -c is left out.
  std::vector<std::pair<std::string, std::string>> Describe() const;

  struct Rules;  // the parsed flags (select.cc)

 private:
  template <typename Access>
  bool MatchesImpl(const Access& a) const;

  std::unique_ptr<Rules> rules_;
};

// Selection::ForTap's answer. The pushed values are as given ("" = not pushed); `rest` holds
// every other flag (-c aside: the caller counts) and is empty() when the sidecars decide alone.
struct TapPushdown {
  std::string to, to_namespace, from, from_namespace, method, authority, path;
  Selection rest;
};

}  // namespace tapkit

#endif  // TAPKIT_FORMAT_SELECT_H_
