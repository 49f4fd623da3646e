// The selection flags on hand-built exchanges: each flag's matches and misses, each error's one
// line, and the same answer from the stored view (a headers-only Reader) as from the owned form.
#include "format/select.h"

#include <gtest/gtest.h>

#include <boost/program_options.hpp>

#include "absl/time/time.h"
#include "format/file.h"
#include "format/reader.h"
#include "format/testutil.h"

namespace tapkit {
namespace {

namespace po = boost::program_options;

// 2026-12-04T10:00:00Z, checked with `date -u -d 2026-12-04T10:00:00Z +%s` (1796378400).
constexpr uint64_t kT0 = 1796378400ull * 1000000000ull;

Exchange Base() {
  Exchange x;
  x.sort_key_ns = kT0 + 5'000'000'000;  // 10:00:05
  x.request_end_ns = 1'000'000;
  x.response_start_ns = 300'000'000;  // latency 300 ms
  x.response_end_ns = 310'000'000;
  x.stream_id = 1;
  x.source = {*IpAddress::Parse("10.0.0.1"), 5555, {"shop", "web-1", "deployment", "web", "web"}};
  x.destination = {
      *IpAddress::Parse("10.0.1.7"), 8080, {"shop", "api-0", "statefulset", "api", "api"}};
  x.direction = Direction::kOutbound;
  Request q;
  q.version = HttpVersion::kHttp11;
  q.method = "POST";
  q.authority = "Api.Example:8080";
  q.path = "/v1/users/42?verbose=1";
  q.headers = {{"Host", "Api.Example:8080"}, {"User-Agent", "curl/7.88.1"}, {"X-Trace", "abc-123"}};
  q.body.data = "{\"secret\":1}";
  q.body.length = q.body.data.size();
  x.request = q;
  Response s;
  s.version = HttpVersion::kHttp11;
  s.status = 503;
  s.reason = "Service Unavailable";
  s.headers = {{"Content-Type", "application/json"}, {"Retry-After", "5"}};
  x.response = s;
  x.completion = Completion::kComplete;
  return x;
}

SelectionFlags FlagsOf(std::vector<std::string> args, bool with_namespace = true) {
  SelectionFlags f;
  po::options_description opts;
  AddSelectionOptions(&opts, &f, with_namespace);
  args.insert(args.begin(), "test");
  std::vector<const char*> argv;
  for (const std::string& a : args) argv.push_back(a.c_str());
  po::variables_map vm;
  po::store(po::command_line_parser(static_cast<int>(argv.size()), argv.data())
                .options(opts)
                .extra_parser(SelectionExtraParser)
                .run(),
            vm);
  po::notify(vm);
  return f;
}

absl::StatusOr<Selection> ParseArgs(std::vector<std::string> args) {
  return Selection::Parse(FlagsOf(std::move(args)));
}

// The owned form's answer, after checking the stored view (headers only) gives the same.
bool Sel(std::vector<std::string> args, const Exchange& x) {
  absl::StatusOr<Selection> s = ParseArgs(args);
  EXPECT_TRUE(s.ok()) << s.status();
  if (!s.ok()) return false;
  EXPECT_TRUE(s->Bind({{"test.tap", kT0, true}}).ok());
  std::string file = testing::WriteToString({x});
  ReaderOptions ro;
  ro.headers_only = true;
  auto reader = Reader::Open(NewStringReadableFile(file), ro);
  EXPECT_TRUE(reader.ok());
  ExchangeView v;
  EXPECT_TRUE((*reader)->Next(&v));
  bool owned = s->Matches(x);
  EXPECT_EQ(s->Matches(v), owned) << "view and owned forms disagree";
  return owned;
}

std::string Error(std::vector<std::string> args) {
  absl::StatusOr<Selection> s = ParseArgs(args);
  EXPECT_FALSE(s.ok());
  EXPECT_TRUE(s.ok() || absl::IsInvalidArgument(s.status())) << s.status();
  return s.ok() ? "" : std::string(s.status().message());
}

TEST(Select, EmptySelectsAll) {
  absl::StatusOr<Selection> s = ParseArgs({});
  ASSERT_TRUE(s.ok());
  EXPECT_TRUE(s->empty());
  EXPECT_EQ(s->count(), -1);
  EXPECT_TRUE(Sel({}, Base()));
  EXPECT_TRUE(s->Describe().empty());
}

TEST(Select, Method) {
  EXPECT_TRUE(Sel({"--method", "POST"}, Base()));
  EXPECT_FALSE(Sel({"--method", "post"}, Base())) << "RFC 9110 section 9.1: case-sensitive";
  EXPECT_TRUE(Sel({"--method", "GET,POST"}, Base()));
  EXPECT_TRUE(Sel({"--method", "GET", "--method", "POST"}, Base()));
  EXPECT_FALSE(Sel({"--method", "GET"}, Base()));
  Exchange no_request = Base();
  no_request.request.reset();
  EXPECT_FALSE(Sel({"--method", "POST"}, no_request));
  EXPECT_EQ(Error({"--method", "GE T"}),
            "--method GE T: not a method token (RFC 9110 section 9.1)");
}

TEST(Select, Authority) {
  EXPECT_TRUE(Sel({"--authority", "api.example:8080"}, Base())) << "host without case";
  EXPECT_TRUE(Sel({"--authority", "API.EXAMPLE:8080"}, Base()));
  EXPECT_FALSE(Sel({"--authority", "api.example"}, Base())) << "exact: the port counts";
  EXPECT_FALSE(Sel({"--authority", "api.example:80"}, Base()));
}

TEST(Select, PathAndRegex) {
  EXPECT_TRUE(Sel({"--path", "/v1/users"}, Base()));
  EXPECT_FALSE(Sel({"--path", "/v2"}, Base()));
  EXPECT_TRUE(Sel({"--path", "/v2", "--path", "/v1"}, Base()));
  EXPECT_TRUE(Sel({"--path-regex", "users/[0-9]+"}, Base())) << "partial, as grep";
  EXPECT_TRUE(Sel({"--path-regex", "verbose=1$"}, Base())) << "the query is part of the path";
  EXPECT_FALSE(Sel({"--path-regex", "^/users"}, Base()));
  EXPECT_EQ(Error({"--path-regex", "users/("}),
            "--path-regex users/(: invalid regex: missing ): users/(");
}

TEST(Select, Status) {
  EXPECT_TRUE(Sel({"--status", "503"}, Base()));
  EXPECT_TRUE(Sel({"--status", "5xx"}, Base()));
  EXPECT_TRUE(Sel({"--status", "5XX"}, Base()));
  EXPECT_TRUE(Sel({"--status", "500-503"}, Base()));
  EXPECT_FALSE(Sel({"--status", "504-599"}, Base()));
  EXPECT_FALSE(Sel({"--status", "4xx"}, Base()));
  EXPECT_TRUE(Sel({"--status", "4xx,503"}, Base()));
  Exchange no_response = Base();
  no_response.response.reset();
  no_response.completion = Completion::kNoResponse;
  EXPECT_FALSE(Sel({"--status", "1xx,2xx,3xx,4xx,5xx"}, no_response));
  EXPECT_EQ(Error({"--status", "7xx"}), "--status 7xx: unknown status class (1xx..5xx)");
  EXPECT_EQ(Error({"--status", "500-400"}), "--status 500-400: the range's start is above its end");
  EXPECT_EQ(Error({"--status", "abc"}),
            "--status abc: not a status (500), class (5xx) or range (400-499) of 100..599");
  EXPECT_EQ(Error({"--status", "99"}),
            "--status 99: not a status (500), class (5xx) or range (400-499) of 100..599");
  EXPECT_EQ(Error({"--status", "200,"}),
            "--status : not a status (500), class (5xx) or range (400-499) of 100..599");
}

TEST(Select, Latency) {
  // Latency 300 ms (response first byte - request first byte).
  EXPECT_TRUE(Sel({"--min-latency", "250ms"}, Base()));
  EXPECT_TRUE(Sel({"--min-latency", "300ms"}, Base())) << "bounds are inclusive";
  EXPECT_FALSE(Sel({"--min-latency", "300001us"}, Base()));
  EXPECT_TRUE(Sel({"--max-latency", "0.3s"}, Base()));
  EXPECT_FALSE(Sel({"--max-latency", "299999999ns"}, Base()));
  EXPECT_TRUE(Sel({"--min-latency", "0.1s", "--max-latency", "1m"}, Base()));
  EXPECT_FALSE(Sel({"--max-latency", "1h", "--min-latency", "1.5s"}, Base()));
  Exchange no_response = Base();
  no_response.response.reset();
  EXPECT_FALSE(Sel({"--max-latency", "1h"}, no_response)) << "no latency, no match";
  Exchange no_request = Base();
  no_request.request.reset();
  EXPECT_FALSE(Sel({"--max-latency", "1h"}, no_request));
  const std::string help = ": not a duration (a number and ns, us, ms, s, m or h: 250ms, 1.5s)";
  EXPECT_EQ(Error({"--min-latency", "250"}), "--min-latency 250" + help);
  EXPECT_EQ(Error({"--max-latency", "1.2.3s"}), "--max-latency 1.2.3s" + help);
  EXPECT_EQ(Error({"--max-latency", "-5ms"}), "--max-latency -5ms" + help);
  EXPECT_EQ(Error({"--max-latency", "5 days"}), "--max-latency 5 days" + help);
  EXPECT_EQ(Error({"--min-latency", "2s", "--max-latency", "1s"}),
            "--min-latency 2s: above --max-latency 1s");
}

TEST(Select, SinceUntil) {
  // The sort key is 10:00:05Z; the capture started at 10:00:00Z (Bind in Sel).
  EXPECT_TRUE(Sel({"--since", "2026-12-04T10:00:05Z"}, Base())) << "since is inclusive";
  EXPECT_FALSE(Sel({"--since", "2026-12-04T10:00:05.000000001Z"}, Base()));
  EXPECT_TRUE(Sel({"--since", "2026-12-04T11:00:04.5+01:00"}, Base())) << "an offset";
  EXPECT_TRUE(Sel({"--since", "2026-12-04t10:00:00z"}, Base())) << "RFC 3339 section 5.6 note";
  EXPECT_FALSE(Sel({"--until", "2026-12-04T10:00:05Z"}, Base())) << "until is exclusive";
  EXPECT_TRUE(Sel({"--until", "2026-12-04T10:00:05.5Z"}, Base()));
  EXPECT_TRUE(Sel({"--since", "+5s"}, Base()));
  EXPECT_FALSE(Sel({"--since", "+5001ms"}, Base()));
  EXPECT_TRUE(Sel({"--since", "+1s", "--until", "+6s"}, Base()));
  EXPECT_FALSE(Sel({"--until", "+4.999s"}, Base()));
  EXPECT_TRUE(Sel({"--since", "+2s", "--until", "2026-12-04T10:00:06Z"}, Base()));
  EXPECT_EQ(Error({"--since", "2026-12-04 10:00"}),
            "--since 2026-12-04 10:00: not an RFC 3339 time (2026-12-04T10:00:00Z, "
            "2026-12-04T11:00:00.25+01:00) nor +DURATION from the capture's start");
  EXPECT_EQ(Error({"--since", "2026-12-04T10:00:00Z", "--until", "2026-12-04T09:00:00Z"}),
            "--since 2026-12-04T10:00:00Z: after --until 2026-12-04T09:00:00Z");
  EXPECT_EQ(Error({"--since", "+1m", "--until", "+30s"}), "--since +1m: after --until +30s");
  EXPECT_EQ(Error({"--until", "+x"}),
            "--until +x: not a duration (a number and ns, us, ms, s, m or h: 250ms, 1.5s)");
  // Mixed forms are checked once the capture's start is known.
  absl::StatusOr<Selection> mixed =
      ParseArgs({"--since", "+10s", "--until", "2026-12-04T10:00:05Z"});
  ASSERT_TRUE(mixed.ok());
  absl::Status bound = mixed->Bind({{"a.tap", kT0, false}});
  EXPECT_EQ(bound.message(), "--since +10s: after --until 2026-12-04T10:00:05Z");
}

TEST(Select, RelativeTimesCountFromTheEarliestInput) {
  absl::StatusOr<Selection> s = ParseArgs({"--since", "+3s"});
  ASSERT_TRUE(s.ok());
  EXPECT_TRUE(s->needs_inputs());
  ASSERT_TRUE(s->Bind({{"late.tap", kT0 + 4'000'000'000, false}}).ok());
  EXPECT_FALSE(s->Matches(Base())) << "4 s + 3 s is after the exchange";
  ASSERT_TRUE(s->Bind({{"late.tap", kT0 + 4'000'000'000, false}, {"early.tap", kT0, false}}).ok());
  EXPECT_TRUE(s->Matches(Base()));
}

// Relative bounds far out: durations reach INT64_MAX ns (year 2262 from the epoch), and a hostile
// file's start may be near 2^64. The sums saturate instead of wrapping to an early time.
TEST(Select, RelativeTimesDoNotWrap) {
  // kT0 + 2100000 h is past INT64_MAX ns: the --since is after any RFC 3339 --until.
  absl::StatusOr<Selection> far =
      ParseArgs({"--since", "+2100000h", "--until", "2026-12-04T10:00:06Z"});
  ASSERT_TRUE(far.ok()) << far.status();
  EXPECT_EQ(far->Bind({{"a.tap", kT0, false}}).message(),
            "--since +2100000h: after --until 2026-12-04T10:00:06Z");
  absl::StatusOr<Selection> since = ParseArgs({"--since", "+2100000h"});
  ASSERT_TRUE(since.ok());
  ASSERT_TRUE(since->Bind({{"a.tap", kT0, false}}).ok());
  EXPECT_FALSE(since->Matches(Base())) << "the bound is after the exchange";

  // A start 1 s before 2^64: "+2s" is past the end of time, not 1 s after the epoch.
  const uint64_t late = UINT64_MAX - 1'000'000'000;
  Exchange x = Base();
  x.sort_key_ns = late + 500'000'000;
  absl::StatusOr<Selection> s = ParseArgs({"--since", "+2s"});
  ASSERT_TRUE(s.ok());
  ASSERT_TRUE(s->Bind({{"hostile.tap", late, false}}).ok());
  EXPECT_FALSE(s->Matches(x));
  EXPECT_FALSE(s->Matches(Base()));
  absl::StatusOr<Selection> u = ParseArgs({"--since", "+0.5s", "--until", "+1s"});
  ASSERT_TRUE(u.ok());
  ASSERT_TRUE(u->Bind({{"hostile.tap", late, false}}).ok());
  EXPECT_TRUE(u->Matches(x)) << "0.5 s after the start is inside [start+0.5s, start+1s)";
  EXPECT_FALSE(u->Matches(Base()));
}

TEST(Select, Header) {
  EXPECT_TRUE(Sel({"--header", "user-agent: ^curl/"}, Base())) << "name without case";
  EXPECT_TRUE(Sel({"--header", "Retry-After: 5"}, Base())) << "a response field";
  EXPECT_FALSE(Sel({"--header", "req:Retry-After: 5"}, Base()));
  EXPECT_TRUE(Sel({"--header", "rsp:Retry-After: 5"}, Base()));
  EXPECT_FALSE(Sel({"--header", "rsp:X-Trace: abc"}, Base()));
  EXPECT_TRUE(Sel({"--header", "req:X-Trace: abc-[0-9]+"}, Base()));
  EXPECT_TRUE(Sel({"--header", "X-Trace:"}, Base())) << "an empty regex: the field is present";
  EXPECT_FALSE(Sel({"--header", "X-Missing:"}, Base()));
  EXPECT_TRUE(Sel({"--header", "X-Missing:", "--header", "X-Trace: 123"}, Base())) << "ORed";
  EXPECT_FALSE(Sel({"--header", "Content-Type: json, or more"}, Base())) << "no comma lists";
  EXPECT_EQ(Error({"--header", "no colon"}),
            "--header no colon: not 'NAME: REGEX' (NAME a field name; req: or rsp: first to pick "
            "a side)");
  EXPECT_EQ(Error({"--header", "X-Trace: ([a-z]"}),
            "--header X-Trace: ([a-z]: invalid regex: missing ): ([a-z]");
}

TEST(Select, GrpcStatus) {
  Exchange g = Base();
  g.grpc_status = 14;
  EXPECT_TRUE(Sel({"--grpc-status", "14"}, g));
  EXPECT_TRUE(Sel({"--grpc-status", "UNAVAILABLE"}, g));
  EXPECT_TRUE(Sel({"--grpc-status", "unavailable"}, g));
  EXPECT_TRUE(Sel({"--grpc-status", "OK,14"}, g));
  EXPECT_FALSE(Sel({"--grpc-status", "0"}, g));
  EXPECT_FALSE(Sel({"--grpc-status", "OK"}, Base())) << "no gRPC status, no match";
  g.grpc_status = 0;
  EXPECT_TRUE(Sel({"--grpc-status", "ok"}, g));
  g.grpc_status = 16;
  EXPECT_TRUE(Sel({"--grpc-status", "UNAUTHENTICATED"}, g));
  EXPECT_EQ(Error({"--grpc-status", "17"}),
            "--grpc-status 17: not a gRPC status code (0..16, OK, CANCELLED, ..., UNAVAILABLE, "
            "...)");
  EXPECT_FALSE(Error({"--grpc-status", "NOPE"}).empty());
}

TEST(Select, Incomplete) {
  Exchange gap = Base();
  gap.completion = Completion::kGap;
  Exchange reset = Base();
  reset.completion = Completion::kReset;
  EXPECT_FALSE(Sel({"--incomplete"}, Base()));
  EXPECT_TRUE(Sel({"--incomplete"}, gap));
  EXPECT_TRUE(Sel({"--incomplete=gap,reset"}, gap));
  EXPECT_TRUE(Sel({"--incomplete=gap,reset"}, reset));
  EXPECT_FALSE(Sel({"--incomplete=gap"}, reset));
  EXPECT_TRUE(Sel({"--incomplete=gap", "--incomplete=reset"}, reset));
  EXPECT_TRUE(Sel({"--incomplete=any"}, reset));
  EXPECT_FALSE(Sel({"--incomplete=any"}, Base()));
  Exchange amb = Base();
  amb.completion = Completion::kAmbiguousPairing;
  EXPECT_TRUE(Sel({"--incomplete=ambiguous-pairing"}, amb));
  EXPECT_EQ(
      Error({"--incomplete=gaps"}),
      "--incomplete gaps: not a way an exchange ends incomplete (any, no-response, no-request, "
      "reset, gap, truncated, capture-ended, malformed, timeout, ambiguous-pairing)");
  EXPECT_FALSE(Error({"--incomplete=complete"}).empty());
}

TEST(Select, Direction) {
  EXPECT_TRUE(Sel({"--direction", "out"}, Base()));
  EXPECT_FALSE(Sel({"--direction", "in"}, Base()));
  EXPECT_TRUE(Sel({"--direction", "in,out"}, Base()));
  Exchange unknown = Base();
  unknown.direction = Direction::kUnknown;
  EXPECT_FALSE(Sel({"--direction", "in,out"}, unknown));
  EXPECT_EQ(Error({"--direction", "up"}), "--direction up: not in or out");
}

TEST(Select, Addresses) {
  EXPECT_TRUE(Sel({"--to", "10.0.1.7"}, Base()));
  EXPECT_FALSE(Sel({"--to", "10.0.0.1"}, Base())) << "that is the source";
  EXPECT_TRUE(Sel({"--from", "10.0.0.1"}, Base()));
  EXPECT_TRUE(Sel({"--to", "10.0.1.0/24"}, Base()));
  EXPECT_TRUE(Sel({"--to", "10.0.0.0/16"}, Base()));
  EXPECT_FALSE(Sel({"--to", "10.0.0.0/24"}, Base()));
  EXPECT_TRUE(Sel({"--to", "0.0.0.0/0"}, Base()));
  EXPECT_TRUE(Sel({"--to", "10.0.1.7:8080"}, Base()));
  EXPECT_FALSE(Sel({"--to", "10.0.1.7:80"}, Base()));
  EXPECT_TRUE(Sel({"--to", "10.0.1.7:80,10.0.1.7:8080"}, Base()));
  EXPECT_FALSE(Sel({"--to", "::1"}, Base())) << "another family";
  Exchange v6 = Base();
  v6.source.ip = *IpAddress::Parse("2001:db8::1");
  v6.destination.ip = *IpAddress::Parse("2001:db8::2");
  EXPECT_TRUE(Sel({"--to", "[2001:db8::2]:8080"}, v6));
  EXPECT_FALSE(Sel({"--to", "[2001:db8::2]:80"}, v6));
  EXPECT_TRUE(Sel({"--to", "2001:db8::/32"}, v6));
  EXPECT_TRUE(Sel({"--from", "2001:db8::1"}, v6));
  EXPECT_FALSE(Sel({"--from", "2001:db8::2/128"}, v6));
  EXPECT_EQ(Error({"--to", "10.0.0.1/8"}),
            "--to 10.0.0.1/8: the address has host bits set past the prefix length");
  EXPECT_EQ(Error({"--to", "2001:db8::1/64"}),
            "--to 2001:db8::1/64: the address has host bits set past the prefix length");
  EXPECT_EQ(Error({"--to", "10.0.0.0/33"}), "--to 10.0.0.0/33: the prefix length is not 0..32");
  EXPECT_EQ(Error({"--to", "10.0.0.1:0"}), "--to 10.0.0.1:0: the port is not 1..65535");
  EXPECT_EQ(Error({"--to", "[::1]80"}), "--to [::1]80: not [IPv6]:PORT (port 1..65535)");
  EXPECT_EQ(Error({"--from", "10.0.0"}),
            "--from 10.0.0: neither a resource (TYPE/NAME: deploy/web, svc/api, po/x, ...) nor "
            "an address (IP, CIDR, IP:PORT, [IPv6]:PORT)");
}

TEST(Select, Resources) {
  EXPECT_TRUE(Sel({"--to", "sts/api"}, Base()));
  EXPECT_TRUE(Sel({"--to", "statefulset/api"}, Base()));
  EXPECT_FALSE(Sel({"--to", "deploy/api"}, Base())) << "another kind";
  EXPECT_TRUE(Sel({"--from", "deploy/web"}, Base()));
  EXPECT_TRUE(Sel({"--from", "Deployments/web"}, Base()));
  EXPECT_TRUE(Sel({"--to", "svc/api"}, Base()));
  EXPECT_TRUE(Sel({"--to", "po/api-0"}, Base()));
  EXPECT_FALSE(Sel({"--to", "po/web-1"}, Base()));
  EXPECT_TRUE(Sel({"--to", "ns/shop"}, Base()));
  EXPECT_TRUE(Sel({"--to", "sts/api", "--to-namespace", "shop"}, Base()));
  EXPECT_FALSE(Sel({"--to", "sts/api", "--to-namespace", "default"}, Base()));
  EXPECT_FALSE(Sel({"--from", "deploy/web", "-n", "other"}, Base())) << "-n is --from's namespace";
  EXPECT_TRUE(Sel({"--to", "sts/api", "--from", "deploy/web", "-n", "shop"}, Base()));
  EXPECT_TRUE(Sel({"--to", "10.9.9.9,sts/api"}, Base())) << "forms ORed";
  EXPECT_EQ(Error({"--to", "deploy/a/b"}),
            "--to deploy/a/b: target \"deploy/a/b\" has more than one \"/\"; expected TYPE/NAME "
            "or TYPE");
  EXPECT_EQ(Error({"--to-namespace", "shop"}), "--to-namespace shop: goes with --to TYPE/NAME");
}

TEST(Select, Namespace) {
  EXPECT_TRUE(Sel({"-n", "shop"}, Base()));
  EXPECT_FALSE(Sel({"-n", "default"}, Base()));
  EXPECT_TRUE(Sel({"-n", "default,shop"}, Base()));
  Exchange half = Base();
  half.source.labels = {};
  EXPECT_TRUE(Sel({"--namespace", "shop"}, half)) << "either endpoint";
}

TEST(Select, FlagsAreAnded) {
  EXPECT_TRUE(Sel({"--method", "POST", "--status", "5xx", "--path", "/v1"}, Base()));
  EXPECT_FALSE(Sel({"--method", "POST", "--status", "5xx", "--path", "/v2"}, Base()));
}

TEST(Select, UnlabelledInputsRefuseResources) {
  absl::StatusOr<Selection> s = ParseArgs({"--to", "10.0.0.1,deploy/web"});
  ASSERT_TRUE(s.ok());
  absl::Status b = s->Bind({{"labelled.tap", kT0, true}, {"plain.tap", kT0, false}});
  EXPECT_TRUE(absl::IsFailedPrecondition(b));
  EXPECT_EQ(b.message(),
            "--to deploy/web: plain.tap has no endpoint labels (recorded without --inventory): "
            "select by address instead");
  absl::StatusOr<Selection> n = ParseArgs({"-n", "shop"});
  ASSERT_TRUE(n.ok());
  EXPECT_TRUE(absl::IsFailedPrecondition(n->Bind({{"plain.tap", kT0, false}})));
  absl::StatusOr<Selection> ip = ParseArgs({"--to", "10.0.0.1"});
  ASSERT_TRUE(ip.ok());
  EXPECT_FALSE(ip->needs_inputs());
  EXPECT_TRUE(ip->Bind({{"plain.tap", kT0, false}}).ok());
}

TEST(Select, InputOfAFile) {
  CaptureMetadata m;
  m.start_time_ns = 100;
  SelectionInput a = SelectionInputOf("a.tap", m, std::nullopt);
  EXPECT_EQ(a.start_ns, 100u);
  EXPECT_FALSE(a.labelled);
  FileSummary s;
  s.exchanges = 2;
  s.min_sort_key = 50;
  m.filters = {{"bpf", "tcp"}, {"inventory", "inv.yaml"}};
  SelectionInput b = SelectionInputOf("b.tap", m, s);
  EXPECT_EQ(b.start_ns, 50u);
  EXPECT_TRUE(b.labelled);
  CaptureMetadata live;
  live.target = "deploy/web";
  EXPECT_TRUE(SelectionInputOf("c.tap", live, std::nullopt).labelled);
}

TEST(Select, CountAndDescribe) {
  absl::StatusOr<Selection> s =
      ParseArgs({"-c", "3", "--status", "5xx,404", "--header", "req:X-A: b,c", "--incomplete",
                 "--since", "+1s", "--to", "deploy/web"});
  ASSERT_TRUE(s.ok());
  EXPECT_EQ(s->count(), 3);
  EXPECT_FALSE(s->empty());
  std::vector<std::pair<std::string, std::string>> want = {{"to", "deploy/web"},
                                                           {"status", "5xx,404"},
                                                           {"since", "+1s"},
                                                           {"header", "req:X-A: b,c"},
                                                           {"incomplete", "any"}};
  EXPECT_EQ(s->Describe(), want);
  EXPECT_EQ(Error({"-c", "-2"}), "-c -2: must be 0 or more");
  EXPECT_EQ(Error({"-c", "-1"}), "-c -1: must be 0 or more");
}

TEST(Select, WithoutNamespaceFlag) {
  SelectionFlags f;
  po::options_description opts;
  AddSelectionOptions(&opts, &f, /*with_namespace=*/false);
  EXPECT_EQ(opts.find_nothrow("namespace", false), nullptr);
  EXPECT_NE(opts.find_nothrow("status", false), nullptr);
}

}  // namespace
}  // namespace tapkit

namespace tapkit {
namespace {

TEST(Select, ForTapPushesWhatSidecarsEvaluate) {
  absl::StatusOr<Selection> s = ParseArgs({"--to", "deploy/web", "--to-namespace", "shop",
                                           "--method", "GET", "--path", "/api", "-c", "5"});
  ASSERT_TRUE(s.ok());
  TapPushdown p = s->ForTap();
  EXPECT_EQ(p.to, "deploy/web");
  EXPECT_EQ(p.to_namespace, "shop");
  EXPECT_EQ(p.method, "GET");
  EXPECT_EQ(p.path, "/api");
  EXPECT_TRUE(p.rest.empty()) << "the sidecars decide alone";
  EXPECT_EQ(p.rest.count(), -1) << "-c is the caller's";

  absl::StatusOr<Selection> mixed =
      ParseArgs({"--to", "10.0.1.7", "--from", "deploy/a,deploy/web", "--method", "POST",
                 "--status", "5xx", "--authority", "api.example:8080"});
  ASSERT_TRUE(mixed.ok());
  TapPushdown q = mixed->ForTap();
  EXPECT_EQ(q.to, "") << "an address is not a TapRequest's to";
  EXPECT_EQ(q.from, "") << "two values";
  EXPECT_EQ(q.method, "POST");
  EXPECT_EQ(q.authority, "api.example:8080");
  EXPECT_FALSE(q.rest.empty());
  ASSERT_TRUE(q.rest.Bind({{"live", 0, true}}).ok());
  EXPECT_TRUE(q.rest.Matches(Base()));
  Exchange other = Base();
  other.response->status = 200;
  EXPECT_FALSE(q.rest.Matches(other));
  other = Base();
  other.source.labels.workload_name = "b";
  EXPECT_FALSE(q.rest.Matches(other)) << "--from stays local";
  other = Base();
  other.request->method = "GET";
  EXPECT_TRUE(q.rest.Matches(other)) << "--method was pushed, not matched again";
}

}  // namespace
}  // namespace tapkit

namespace tapkit {
namespace {

// `--incomplete FILE`: FILE stays a positional argument (the list needs '=').
TEST(Select, BareIncompleteLeavesTheNextWord) {
  SelectionFlags f;
  std::vector<std::string> files;
  po::options_description opts;
  AddSelectionOptions(&opts, &f);
  opts.add_options()("file", po::value(&files));
  po::positional_options_description pos;
  pos.add("file", -1);
  const char* argv[] = {"tapcat", "--incomplete", "a.tap", "--incomplete=gap", "b.tap"};
  po::variables_map vm;
  po::store(po::command_line_parser(5, argv)
                .options(opts)
                .positional(pos)
                .extra_parser(SelectionExtraParser)
                .run(),
            vm);
  po::notify(vm);
  EXPECT_EQ(files, (std::vector<std::string>{"a.tap", "b.tap"}));
  EXPECT_EQ(f.incomplete, (std::vector<std::string>{"any", "gap"}));
}

}  // namespace
}  // namespace tapkit
