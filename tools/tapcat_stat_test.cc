// tapcat --stat, the time column of text lines (-t, --time) and the flags that conflict, as a user
// runs them. The independent truths: jq's reading of `tapcat -o json` (counts, success, nearest-
// rank percentiles, computed in jq), tshark's reading of the pcap a capture was recorded from
// (requests, response codes, http.time), and tcpdump's timestamps of the same packets (-tt,
// -tttt). A missing jq, tshark or tcpdump skips its test, except under CI=true.
#include <gtest/gtest.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <cmath>
#include <fstream>
#include <map>
#include <nlohmann/json.hpp>

#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "absl/strings/str_split.h"
#include "format/test_dir.h"
#include "format/testutil.h"

namespace tapkit {
namespace {

const std::string kGolden = TAPKIT_SOURCE_DIR "/fixtures/golden/v1.0.tap";
const std::string kCaptures = TAPKIT_SOURCE_DIR "/fixtures/captures/";

struct Result {
  int rc = -1;
  std::string out, err;
};

// Runs a shell command line; stdout and stderr kept apart.
Result Sh(const std::string& cmd) {
  std::string base = absl::StrCat(testing::TestDir(), "/tapcat_stat.",
                                  ::testing::UnitTest::GetInstance()->current_test_info()->name());
  int status =
      std::system(absl::StrCat("(", cmd, ") > '", base, ".out' 2> '", base, ".err'").c_str());
  return {WIFEXITED(status) ? WEXITSTATUS(status) : -1, testing::ReadFileBytes(base + ".out"),
          testing::ReadFileBytes(base + ".err")};
}

std::string Tapcat(const std::string& args) { return absl::StrCat("'", TAPCAT_BIN, "' ", args); }

std::string Path(const std::string& name) { return absl::StrCat(testing::TestDir(), "/", name); }

size_t Lines(const std::string& s) { return std::count(s.begin(), s.end(), '\n'); }

std::vector<std::string> SplitLines(const std::string& s) {
  return absl::StrSplit(s, '\n', absl::SkipEmpty());
}

constexpr int kSynthExchanges = 3000;

// A tapsynth capture: kSynthExchanges exchanges of a shop backend (ids in paths, queries, 1% 500s).
std::string SynthCapture() {
  std::string tap = Path("synth.tap");
  EXPECT_EQ(std::system(absl::StrCat("'", TAPSYNTH_BIN, "' -n ", kSynthExchanges, " --seed 11 -w '",
                                     tap, "'")
                            .c_str()),
            0);
  return tap;
}

// A capture recorded by taprec from one of the project's pcaps.
std::string Recorded(const std::string& pcap) {
  std::string tap = Path(pcap + ".tap");
  Result r = Sh(absl::StrCat("'", TAPREC_BIN, "' ", ::geteuid() == 0 ? "-Z root " : "", "-r '",
                             kCaptures, pcap, "' -w '", tap, "'"));
  EXPECT_EQ(r.rc, 0) << r.err;
  return tap;
}

// jq over `tapcat -o json`, written without tapkit's code: one line per group,
// "KEY count successes latencies p50 p95 p99", sorted. `key` is a jq expression over one
// exchange. Success is linkerd's (complete, a response, not 5xx, no gRPC status but OK);
// percentiles are nearest-rank: the ceil(p/100 * n)-th smallest latency.
const char kJqRows[] = R"jq(
  def pattern: sub("[?#].*$"; "") | gsub("/[0-9]+(?=/|$)"; "/{id}");
  def rank(p): . as $l | if length == 0 then null else $l[((p * ($l | length) / 100) | ceil) - 1] end;
  map({k: (KEY), ok: (.end.completion == "complete" and .response != null
                      and .response.httpStatus < 500 and ((.end.grpcStatusCode // 0) == 0)),
       lat: (if .request != null and .response != null then .latencyNs else null end)})
  | group_by(.k)
  | map((map(.lat | select(. != null)) | sort) as $l
        | [(.[0].k | tostring), length, (map(select(.ok)) | length), ($l | length),
           ($l | rank(50)), ($l | rank(95)), ($l | rank(99))]
        | map(tostring) | join(" "))
  | .[])jq";

std::string JqRows(const std::string& tap, const std::string& key,
                   const std::string& tapcat_flags = "") {
  std::string program = kJqRows;
  program.replace(program.find("KEY"), 3, key);
  std::string file = Path("program.jq");
  std::ofstream(file) << program;
  Result r = Sh(Tapcat(tapcat_flags + " -o json '" + tap + "'") + " | jq -s -r -f '" + file +
                "' | LC_ALL=C sort");
  EXPECT_EQ(r.rc, 0) << r.err;
  return r.out;
}

// The same line per row from `tapcat --stat -o json`; `key` is a jq expression over one row.
std::string StatRows(const std::string& tap, const std::string& flags, const std::string& key) {
  Result r = Sh(Tapcat("--stat -o json " + flags + " '" + tap + "'") + " | jq -r '[(" + key +
                " | tostring), .count, .successes, .latencyCount, .latencyP50Ns, .latencyP95Ns, "
                ".latencyP99Ns] | map(tostring) | join(\" \")' | LC_ALL=C sort");
  EXPECT_EQ(r.rc, 0) << r.err;
  return r.out;
}

TEST(TapcatStat, SynthRoutesMatchJq) {
  TAPKIT_REQUIRE_TOOL("jq");
  std::string tap = SynthCapture();
  std::string want = JqRows(tap, R"(.request.method + " " + (.request.path | pattern))");
  std::string got = StatRows(tap, "", R"(.method + " " + .route)");
  EXPECT_EQ(got, want);
  // tapsynth's eight routes, ids and queries collapsed (bench/synth.cc).
  EXPECT_EQ(Lines(got), 8u) << got;
  for (const char* route : {"GET /api/v1/users/{id} ", "GET /api/v1/products ",
                            "DELETE /api/v1/carts/{id} ", "GET /api/v1/recommendations "}) {
    EXPECT_NE(got.find(route), std::string::npos) << route << "\n" << got;
  }
  // Every exchange in one workload, the destination's labels.
  Result w = Sh(Tapcat("--stat -o json '" + tap + "'") +
                " | jq -r '.namespace + \" \" + .workload' | sort -u");
  EXPECT_EQ(w.out, "shop deployment/backend\n");

  // The text table says the same: its COUNT column over the rows adds up to every exchange.
  Result text = Sh(Tapcat("--stat '" + tap + "'"));
  ASSERT_EQ(text.rc, 0) << text.err;
  std::vector<std::string> lines = absl::StrSplit(text.out, '\n', absl::SkipEmpty());
  ASSERT_EQ(lines.size(), 9u);
  EXPECT_EQ(lines[0].substr(0, 9), "NAMESPACE");
  uint64_t sum = 0;
  for (size_t i = 1; i < lines.size(); ++i) {
    std::vector<std::string> cells = absl::StrSplit(lines[i], ' ', absl::SkipEmpty());
    uint64_t n = 0;
    ASSERT_TRUE(absl::SimpleAtoi(cells[4], &n)) << lines[i];  // ns, workload, method, route, count
    sum += n;
  }
  EXPECT_EQ(sum, static_cast<uint64_t>(kSynthExchanges));
}

TEST(TapcatStat, SynthPivotsMatchJq) {
  TAPKIT_REQUIRE_TOOL("jq");
  std::string tap = SynthCapture();
  EXPECT_EQ(StatRows(tap, "--by status", ".httpStatus"), JqRows(tap, ".response.httpStatus"));
  EXPECT_EQ(StatRows(tap, "--by authority", ".authority"), JqRows(tap, ".request.authority"));
  EXPECT_EQ(StatRows(tap, "--by path", ".route"), JqRows(tap, ".request.path | pattern"));
  EXPECT_EQ(StatRows(tap, "--by direction", ".proxyDirection"), JqRows(tap, ".proxyDirection"));
  // tapsynth answers 200, 201, 204, 404 and 500.
  EXPECT_EQ(Lines(StatRows(tap, "--by status", ".httpStatus")), 5u);
  // -c counts what it reads.
  EXPECT_EQ(StatRows(tap, "--by status -c 700", ".httpStatus"),
            JqRows(tap, ".response.httpStatus", "-c 700"));
}

// The span and rate, from the exact nanoseconds of `tapcat -o json` (jq's doubles would round
// them): first request byte to the last byte seen, over every exchange.
TEST(TapcatStat, SpanAndRate) {
  std::string tap = SynthCapture();
  Result json = Sh(Tapcat("-o json '" + tap + "'"));
  ASSERT_EQ(json.rc, 0);
  uint64_t first = UINT64_MAX, last = 0;
  for (const std::string& line : SplitLines(json.out)) {
    nlohmann::json j = nlohmann::json::parse(line, nullptr, false);
    ASSERT_FALSE(j.is_discarded());
    uint64_t t = j["requestTimeNs"].get<uint64_t>();
    first = std::min(first, t);
    last = std::max(
        last, t + std::max({j["requestEndNs"].get<uint64_t>(), j["responseStartNs"].get<uint64_t>(),
                            j["responseEndNs"].get<uint64_t>()}));
  }
  Result stat = Sh(Tapcat("--stat --by direction -o json '" + tap + "'"));
  ASSERT_EQ(stat.rc, 0) << stat.err;
  nlohmann::json row = nlohmann::json::parse(stat.out, nullptr, false);
  ASSERT_FALSE(row.is_discarded()) << stat.out;
  EXPECT_EQ(row["count"], kSynthExchanges);
  EXPECT_EQ(row["spanNs"].get<uint64_t>(), last - first);
  EXPECT_NEAR(row["rps"].get<double>(), kSynthExchanges * 1e9 / static_cast<double>(last - first),
              1e-6);
}

// A capture of nginx recorded by taprec: tshark's reading of the same pcap gives the requests,
// the response codes and each response's http.time (request to response, here both one segment:
// the latency).
TEST(TapcatStat, FixtureMatchesTshark) {
  TAPKIT_REQUIRE_TOOL("tshark");
  TAPKIT_REQUIRE_TOOL("jq");
  const std::string pcap = "keepalive-10-gets-third-and-fourth-responses-lost.pcap";
  std::string tap = Recorded(pcap);
  Result requests = Sh("tshark -r '" + kCaptures + pcap +
                       "' -Y http.request -T fields -e "
                       "http.request.uri | wc -l");
  Result responses = Sh("tshark -r '" + kCaptures + pcap +
                        "' -Y http.response -T fields -e "
                        "http.response.code -e http.time");
  ASSERT_EQ(responses.rc, 0) << responses.err;
  std::vector<uint64_t> latencies;
  uint64_t ok = 0;
  for (const std::string& line : SplitLines(responses.out)) {
    std::vector<std::string> f = absl::StrSplit(line, '\t');
    ASSERT_EQ(f.size(), 2u) << line;
    int code = 0;
    double seconds = 0;
    ASSERT_TRUE(absl::SimpleAtoi(f[0], &code) && absl::SimpleAtod(f[1], &seconds)) << line;
    if (code < 500) ++ok;
    latencies.push_back(static_cast<uint64_t>(std::llround(seconds * 1e9)));
  }
  std::sort(latencies.begin(), latencies.end());
  ASSERT_EQ(latencies.size(), 8u) << "two of the ten responses were lost";
  auto rank = [&](int p) {  // nearest rank: the ceil(p/100 * n)-th smallest
    return latencies[(p * latencies.size() + 99) / 100 - 1];
  };
  Result stat = Sh(Tapcat("--stat --by direction -o json '" + tap + "'"));
  ASSERT_EQ(stat.rc, 0) << stat.err;
  nlohmann::json row = nlohmann::json::parse(stat.out, nullptr, false);
  ASSERT_FALSE(row.is_discarded()) << stat.out;
  EXPECT_EQ(row["count"].get<uint64_t>(), std::stoull(requests.out));
  EXPECT_EQ(row["count"], 10);
  EXPECT_EQ(row["successes"].get<uint64_t>(), ok);
  EXPECT_EQ(row["successRate"], 0.8);
  EXPECT_EQ(row["latencyCount"], 8);
  EXPECT_EQ(row["latencyP50Ns"].get<uint64_t>(), rank(50));
  EXPECT_EQ(row["latencyP95Ns"].get<uint64_t>(), rank(95));
  EXPECT_EQ(row["latencyP99Ns"].get<uint64_t>(), rank(99));
  // And the workload and route table against jq: /n01 ... /n10 are names, not ids.
  std::string want = JqRows(tap, R"(.request.method + " " + (.request.path | pattern))");
  EXPECT_EQ(StatRows(tap, "", R"(.method + " " + .route)"), want);
  EXPECT_NE(want.find("GET /n03 1 0 0 null null null\n"), std::string::npos) << want;
}

// Each line's time column against the stored times of `tapcat -o json`: req at requestTimeNs,
// interim at + sinceRequestInitNs, rsp at + responseStartNs, end at + the largest offset.
std::vector<uint64_t> LineTimes(const std::string& tap) {
  Result json = Sh(Tapcat("-o json '" + tap + "'"));
  EXPECT_EQ(json.rc, 0);
  std::vector<uint64_t> times;
  for (const std::string& line : SplitLines(json.out)) {
    nlohmann::json j = nlohmann::json::parse(line, nullptr, false);
    uint64_t t = j["requestTimeNs"].get<uint64_t>();
    if (!j["request"].is_null()) times.push_back(t);
    for (const nlohmann::json& i : j["interim"]) {
      times.push_back(t + i["sinceRequestInitNs"].get<uint64_t>());
    }
    uint64_t start = j["responseStartNs"].get<uint64_t>();
    if (!j["response"].is_null()) times.push_back(t + start);
    times.push_back(t + std::max({j["requestEndNs"].get<uint64_t>(), start,
                                  j["responseEndNs"].get<uint64_t>()}));
  }
  return times;
}

// "S.UUUUUU" of a signed nanosecond count, cut toward zero.
std::string Seconds(int64_t ns) {
  uint64_t m = ns < 0 ? -static_cast<uint64_t>(ns) : ns;
  return absl::StrCat(ns < 0 ? "-" : "", m / 1'000'000'000, ".",
                      absl::Dec(m % 1'000'000'000 / 1000, absl::kZeroPad6));
}

void CheckTimeModes(const std::string& tap) {
  std::vector<uint64_t> times = LineTimes(tap);
  ASSERT_FALSE(times.empty());
  Result bare = Sh(Tapcat("-t '" + tap + "'"));
  ASSERT_EQ(bare.rc, 0) << bare.err;
  std::vector<std::string> plain = absl::StrSplit(bare.out, '\n', absl::SkipEmpty());
  ASSERT_EQ(plain.size(), times.size());
  Result info = Sh(Tapcat("--info -o json '" + tap + "'"));
  nlohmann::json meta = nlohmann::json::parse(info.out, nullptr, false);
  uint64_t start = meta["metadata"]["startTimeNs"].is_null()
                       ? 0
                       : meta["metadata"]["startTimeNs"].get<uint64_t>();
  if (start == 0 || start > times[0]) start = times[0];  // line_time.h's rule
  for (const char* mode : {"epoch", "relative", "delta", "absolute"}) {
    Result r = Sh(Tapcat(absl::StrCat("--time ", mode, " '", tap, "'")));
    ASSERT_EQ(r.rc, 0) << r.err;
    std::vector<std::string> lines = absl::StrSplit(r.out, '\n', absl::SkipEmpty());
    ASSERT_EQ(lines.size(), times.size()) << mode;
    for (size_t i = 0; i < lines.size(); ++i) {
      size_t space = lines[i].find(' ');
      ASSERT_NE(space, std::string::npos);
      std::string stamp = lines[i].substr(0, space);
      EXPECT_EQ(lines[i].substr(space + 1), plain[i]) << "the rest is -t's line";
      std::string want;
      if (mode == std::string_view("epoch")) want = Seconds(times[i]);
      if (mode == std::string_view("relative")) want = Seconds(times[i] - start);
      if (mode == std::string_view("delta")) {
        want = Seconds(i ? static_cast<int64_t>(times[i] - times[i - 1]) : 0);
      }
      if (mode == std::string_view("absolute")) {
        // The date and time of day from GNU date, not from tapkit's code.
        static std::map<uint64_t, std::string> dates;
        uint64_t s = times[i] / 1'000'000'000;
        if (!dates.count(s)) {
          dates[s] = Sh(absl::StrCat("date -u -d @", s, " +%Y-%m-%dT%H:%M:%S | tr -d '\\n'")).out;
        }
        want = absl::StrCat(dates[s], ".",
                            absl::Dec(times[i] % 1'000'000'000 / 1000, absl::kZeroPad6), "Z");
      }
      ASSERT_EQ(stamp, want) << mode << " line " << i << ": " << lines[i];
    }
  }
}

TEST(TapcatTime, ModesMatchStoredTimesGolden) { CheckTimeModes(kGolden); }

TEST(TapcatTime, ModesMatchStoredTimesSynth) {
  std::string tap = Path("synth300.tap");
  ASSERT_EQ(
      std::system(absl::StrCat("'", TAPSYNTH_BIN, "' -n 300 --seed 4 -w '", tap, "'").c_str()), 0);
  CheckTimeModes(tap);
}

// The req lines of a capture recorded from a pcap carry the times tcpdump prints for the packets
// that begin each request ("GET "): -tt as --time epoch, and -tttt in UTC as --time absolute.
TEST(TapcatTime, AsTcpdumpPrintsThePackets) {
  TAPKIT_REQUIRE_TOOL("tcpdump");
  const std::string pcap = "keepalive-10-gets.pcap";
  std::string tap = Recorded(pcap);
  std::string filter = "'tcp[((tcp[12] & 0xf0) >> 2):4] = 0x47455420'";
  Result tt = Sh("tcpdump -tt -n -r '" + kCaptures + pcap + "' " + filter + " | cut -d' ' -f1");
  Result tttt = Sh("TZ=UTC tcpdump -tttt -n -r '" + kCaptures + pcap + "' " + filter +
                   " | cut -d' ' -f1,2 | sed 's/ /T/; s/$/Z/'");
  ASSERT_EQ(tt.rc, 0) << tt.err;
  EXPECT_EQ(Lines(tt.out), 10u);
  Result epoch = Sh(Tapcat("--time epoch '" + tap + "' | grep ' req ' | cut -d' ' -f1"));
  Result absolute = Sh(Tapcat("'" + tap + "' | grep ' req ' | cut -d' ' -f1"));
  EXPECT_EQ(epoch.out, tt.out);
  EXPECT_EQ(absolute.out, tttt.out);
}

// Flags that would be silently ignored together exit 2 with one line naming both.
TEST(Tapcat, ConflictingFlags) {
  const std::pair<const char*, const char*> cases[] = {
      {"--info --reindex", "--info and --reindex cannot be used together"},
      {"--info -o wide", "--info and -o wide cannot be used together"},
      {"--stat --info", "--stat and --info cannot be used together"},
      {"--stat --reindex", "--stat and --reindex cannot be used together"},
      {"--stat -o wide", "--stat and -o wide cannot be used together"},
      {"--reindex -o json", "--reindex and -o json cannot be used together"},
      {"-c 2 --info", "-c and --info cannot be used together"},
      {"-c 2 --reindex", "-c and --reindex cannot be used together"},
      {"-t --time epoch", "-t and --time cannot be used together"},
      {"-t -o json", "-t and -o json cannot be used together"},
      {"--time delta -o json", "--time and -o json cannot be used together"},
      {"--time delta --stat", "--time and --stat cannot be used together"},
      {"-t --info", "-t and --info cannot be used together"},
      {"--by status", "--by status: needs --stat"},
      {"--stat --by route", "--by route: unknown key"},
      {"--time local", "--time local: unknown time format"},
  };
  for (const auto& [args, want] : cases) {
    Result r = Sh(Tapcat(absl::StrCat(args, " '", kGolden, "'")));
    EXPECT_EQ(r.rc, 2) << args;
    EXPECT_EQ(r.out, "") << args;
    EXPECT_EQ(r.err.rfind(absl::StrCat("tapcat: ", want), 0), 0u) << args << ": " << r.err;
    EXPECT_EQ(Lines(r.err), 1u) << args << ": " << r.err;
  }
  // What goes together still works.
  for (const char* ok : {"--info -o json", "--info -o text", "--stat -o json", "--stat -o text",
                         "--stat -c 2", "-o wide --time relative", "-o text -t"}) {
    Result r = Sh(Tapcat(absl::StrCat(ok, " '", kGolden, "'")));
    EXPECT_EQ(r.rc, 0) << ok << ": " << r.err;
  }
}

}  // namespace
}  // namespace tapkit
