// stats.h: per-route statistics of a set of exchanges, as `linkerd viz routes` and `linkerd viz
// stat` show a live mesh: for each workload and route (or each value of one pivot key), the
// count, the success rate, the requests per second and the latency percentiles p50, p95 and p99.
// tapcat --stat prints them; tapreplay is meant to summarise its runs with the same table.
//
// Definitions (docs/json.md, "tapcat --stat -o json", says the same for users):
// - route: the request's method and path pattern, "GET /users/{id}" (RoutePattern); "-" when the
//   exchange has no request.
// - workload: the destination's workload labels, "deployment/web", else its pod, "pod/web-0",
//   else its address, "10.0.0.2:8080"; with the destination's namespace beside it when known.
// - success: linkerd's response classification: the exchange completed (completion `complete`),
//   has a final response whose status is not 5xx, and carries no gRPC status other than OK (0).
//   The success rate is successes over all exchanges of the row, those without a response
//   included.
// - requests per second: the row's count over the span of the table, the same span for every row
//   so that rates add up: from the earliest request first byte (sort key) to the latest last byte
//   seen (sort key + the largest of the request-end, response-start and response-end offsets) over
//   all exchanges added. No rate when that span is 0.
// - latency: docs/architecture.md section 2 (response first byte - request first byte), over
//   the exchanges that have both a request and a response; percentiles by the nearest-rank
//   method (the smallest value with at least p% of the values at or below it: the
//   ceil(p/100 * n)-th smallest), computed exactly from every value.
//
// Thread-safety: a StatsTable is used by one thread at a time; the free functions use only their
// arguments.
#ifndef TAPKIT_FORMAT_STATS_H_
#define TAPKIT_FORMAT_STATS_H_

#include <cstdint>
#include <map>
#include <optional>
#include <string>
#include <string_view>
#include <tuple>
#include <vector>

#include "absl/status/statusor.h"
#include "format/exchange.h"
#include "format/exchange_view.h"

namespace tapkit {

// True when one path segment looks like an identifier rather than a name: all decimal digits; a
// UUID (8-4-4-4-12 hex digits, RFC 9562 section 4); 16 or more hex digits with at least one
// decimal digit (object ids, digests); or 20 or more characters of the base64 and base64url
// alphabets (RFC 4648 sections 4 and 5: letters, digits, '+', '-', '_', '=') with at least one
// letter and one digit (tokens). Segments with other bytes ('.', '%', ':', ...) are names.
bool IsIdSegment(std::string_view segment);

// The route pattern of a request target: the query ('?' on) and fragment ('#' on) removed, and
// each id-like segment between '/' replaced by "{id}": "/users/42/orders?page=2" ->
// "/users/{id}/orders". Other bytes are kept as they are. "" stays "".
std::string RoutePattern(std::string_view path);

// What the table is grouped by: workload and route (the default), or one pivot key.
enum class StatKey {
  kRoute,      // destination workload + method and path pattern
  kAuthority,  // the request's :authority (Host), as sent
  kPath,       // the path pattern alone (RoutePattern), every method together
  kStatus,     // the final response's status code
  kDirection,  // inbound, outbound or unknown (docs/architecture.md section 2)
};

// The --by word: "authority", "path", "status" or "direction" ("route" is the default table).
// Errors: InvalidArgument "--by WORD: unknown key (authority, path, status, direction)".
absl::StatusOr<StatKey> ParseStatKey(std::string_view word);

// The nearest-rank percentile `p` (0 < p <= 100) of `sorted` (ascending, not empty): the
// ceil(p/100 * n)-th smallest value, computed in integers for the p given with at most two
// decimals (p = 99.9 is the ceil(999 * n / 1000)-th).
uint64_t NearestRank(const std::vector<uint64_t>& sorted, double p);

// One row of the table, after Rows().
struct StatRow {
  // The grouping key, as raw bytes (printers escape them). For kRoute: `ns` (empty when
  // unknown), `workload`, `method` and `route` (both empty without a request). For kAuthority
  // and kPath: `key` (empty without a request). For kStatus: `status` (absent without a
  // response). For kDirection: `direction`.
  std::string ns, workload, method, route, key;
  std::optional<uint16_t> status;
  Direction direction = Direction::kUnknown;

  uint64_t count = 0;
  uint64_t successes = 0;
  uint64_t latency_count = 0;  // exchanges with a latency (request and response)
  std::optional<uint64_t> p50_ns, p95_ns, p99_ns;
};

class StatsTable {
 public:
  explicit StatsTable(StatKey by = StatKey::kRoute);

  StatKey by() const { return by_; }
  void Add(const ExchangeView& x);
  void Add(const Exchange& x);

  uint64_t exchanges() const { return exchanges_; }
  // The span the rates use (see the top of this file), nanoseconds; 0 without exchanges.
  uint64_t span_ns() const { return exchanges_ ? last_ns_ - first_ns_ : 0; }
  // Requests per second of `count` exchanges over span_ns(); absent when the span is 0.
  std::optional<double> Rate(uint64_t count) const;

  // The rows, sorted: for kRoute by namespace and workload, then by count (most first), then by
  // route; for kStatus by status code (no response last); for kDirection inbound, outbound,
  // unknown; for kAuthority and kPath by count (most first), then by key.
  std::vector<StatRow> Rows() const;

  // The table as text: a header line and one line per row, columns aligned as kubectl and
  // linkerd print them (NAMESPACE only when some row has one), e.g. (latency columns cut here):
  //   WORKLOAD         ROUTE             COUNT   SUCCESS        RPS   LATENCY_P50   ...
  //   deployment/web   GET /users/{id}     120    99.17%   12.00rps       1.203ms   ...
  // Success with two decimals; rates with two decimals; latencies in milliseconds with
  // microsecond digits (cut, as text lines print whole microseconds); "-" where there is none.
  std::string FormatText() const;
  // One JSON object per row and '\n' (JSON Lines), in Rows() order; schema in docs/json.md,
  // section "tapcat --stat -o json".
  std::string FormatJson() const;

 private:
  struct Sample;
  void AddSample(const Sample& s);
  using GroupKey = std::tuple<std::string, std::string, std::string, std::string, int, int>;
  struct Group {
    StatRow row;
    mutable std::vector<uint64_t> latencies_ns;  // sorted in place by Rows()
  };

  StatKey by_;
  uint64_t exchanges_ = 0;
  uint64_t first_ns_ = 0, last_ns_ = 0;
  std::map<GroupKey, Group> groups_;
};

}  // namespace tapkit

#endif  // TAPKIT_FORMAT_STATS_H_
