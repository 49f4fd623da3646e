// taprec -r as a user runs it: exit codes, messages and the file it writes (read back by tapcat).
#include <gtest/gtest.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cstring>
#include <filesystem>
#include <fstream>
#include <map>

#include "absl/strings/str_cat.h"
#include "format/program.h"
#include "format/test_dir.h"
#include "format/testutil.h"

namespace tapkit {
namespace {

const std::string kFixture = TAPKIT_SOURCE_DIR "/fixtures/captures/pipelined-3-gets.pcap";

struct Result {
  int rc = -1;
  std::string out, err;
};

Result Sh(const std::string& cmd) {
  std::string base = absl::StrCat(testing::TestDir(), "/taprec.",
                                  ::testing::UnitTest::GetInstance()->current_test_info()->name());
  int status = std::system(absl::StrCat(cmd, " > '", base, ".out' 2> '", base, ".err'").c_str());
  return {WIFEXITED(status) ? WEXITSTATUS(status) : -1, testing::ReadFileBytes(base + ".out"),
          testing::ReadFileBytes(base + ".err")};
}

// taprec with `args`. Reading a file or an interface as root, taprec becomes nobody (-Z); these
// tests are about recording (sidecar/privileges_test.py is about the drop), so they keep root:
// nobody may not reach the test's directories, nor /proc in a root whose / is root's only (where
// the sanitizer build's leak check at exit then fails).
std::string Taprec(const std::string& args) {
  bool offline = (" " + args).find(" -r ") != std::string::npos ||
                 (" " + args).find(" -i ") != std::string::npos;
  bool z = (" " + args).find(" -Z ") != std::string::npos;
  return absl::StrCat("'", TAPREC_BIN, "' ", offline && !z && ::geteuid() == 0 ? "-Z root " : "",
                      args);
}

TEST(Taprec, WritesWhatTapcatReads) {
  std::string tap = absl::StrCat(testing::TestDir(), "/pipelined.tap");
  Result w = Sh(Taprec("-r '" + kFixture + "' -w '" + tap + "'"));
  EXPECT_EQ(w.rc, 0) << w.err;
  // The live tap's summary, though stderr is no terminal here (tshark reads 3 requests).
  EXPECT_EQ(w.err, "taprec: 3 exchanges recorded, 0 dropped\n");
  testing::ReadResult r = testing::ReadAll(testing::ReadFileBytes(tap));
  ASSERT_TRUE(r.open.ok());
  ASSERT_EQ(r.exchanges.size(), 3u);
  EXPECT_EQ(r.exchanges[2].request->path, "/missing");
  EXPECT_EQ(r.exchanges[2].response->status, 404);
  auto reader = Reader::Open(NewStringReadableFile(testing::ReadFileBytes(tap)));
  ASSERT_TRUE(reader.ok());
  EXPECT_EQ((*reader)->metadata().writer_name, "taprec");
  ASSERT_TRUE((*reader)->summary().has_value());
  EXPECT_EQ((*reader)->summary()->counters.at("http1_requests"), 3u);
}

TEST(Taprec, CountZeroAndBpf) {
  EXPECT_EQ(Sh(Taprec("-r '" + kFixture + "' -c 0")).out, "");
  Result one = Sh(Taprec("-r '" + kFixture + "' -c 1"));
  EXPECT_EQ(std::count(one.out.begin(), one.out.end(), '\n'), 3) << one.out;  // req, rsp, end
  EXPECT_EQ(Sh(Taprec("-r '" + kFixture + "' tcp port 9")).out, "") << "BPF filters everything";
  Result bad = Sh(Taprec("-r '" + kFixture + "' 'tcp port'"));
  EXPECT_EQ(bad.rc, 2);
  EXPECT_NE(bad.err.find("BPF expression"), std::string::npos) << bad.err;
}

TEST(Taprec, InputErrors) {
  Result missing = Sh(Taprec("-r /nonexistent.pcap"));
  EXPECT_EQ(missing.rc, 2);
  EXPECT_NE(missing.err.find("/nonexistent.pcap"), std::string::npos);
  std::string text = absl::StrCat(testing::TestDir(), "/notes.txt");
  std::ofstream(text) << "not a capture\n";
  Result not_pcap = Sh(Taprec("-r '" + text + "'"));
  EXPECT_EQ(not_pcap.rc, 2);
  EXPECT_NE(not_pcap.err.find("not a pcap or pcapng capture"), std::string::npos) << not_pcap.err;
  Result full = Sh("(" + Taprec("-r '" + kFixture + "'") + " > /dev/full)");
  EXPECT_EQ(full.rc, 2);
  EXPECT_NE(full.err.find("write error"), std::string::npos) << full.err;
  Result negative = Sh(Taprec("-r '" + kFixture + "' --snaplen-body -1"));
  EXPECT_EQ(negative.rc, 2);
}

// -B is tcpdump's: KiB of capture buffer, for -i only. Bad values fail before any capture opens
// (so this runs without root), with one line naming the flag.
TEST(Taprec, BufferSizeIsValidated) {
  for (const char* bad : {"0", "-1", "1048577", "99999999999"}) {
    Result r = Sh(Taprec(absl::StrCat("-i lo -B ", bad)));
    EXPECT_EQ(r.rc, 2) << bad;
    EXPECT_EQ(r.err, absl::StrCat("taprec: -B ", bad,
                                  ": the capture buffer size is in KiB, from 1 to 1048576\n"));
  }
  Result word = Sh(Taprec("-i lo --buffer-size lots"));
  EXPECT_EQ(word.rc, 2);
  EXPECT_NE(word.err.find("'--buffer-size'"), std::string::npos) << word.err;
  Result file = Sh(Taprec("-r '" + kFixture + "' -B 1024"));
  EXPECT_EQ(file.rc, 2);
  EXPECT_EQ(file.err, "taprec: -B goes with -i (the capture buffer of an interface)\n");
}

TEST(Taprec, RefusesToOverwriteItsInput) {
  std::string copy = absl::StrCat(testing::TestDir(), "/input.pcap");
  std::ofstream(copy, std::ios::binary) << testing::ReadFileBytes(kFixture);
  Result r = Sh(Taprec("-r '" + copy + "' -w '" + copy + "'"));
  EXPECT_EQ(r.rc, 2);
  EXPECT_EQ(testing::ReadFileBytes(copy), testing::ReadFileBytes(kFixture))
      << "the capture is untouched";
}

// ... nor when it comes as standard input.
TEST(Taprec, RefusesToOverwriteItsStandardInput) {
  std::string copy = absl::StrCat(testing::TestDir(), "/stdin-input.pcap");
  std::ofstream(copy, std::ios::binary) << testing::ReadFileBytes(kFixture);
  Result r = Sh(Taprec("-r - -w '" + copy + "' < '" + copy + "'"));
  EXPECT_EQ(r.rc, 2);
  EXPECT_EQ(testing::ReadFileBytes(copy), testing::ReadFileBytes(kFixture));
}

// A FIFO is opened once: a writer that sends everything and leaves before taprec reads loses
// nothing, many times over (the open-stat-close-reopen it once did lost data or hung).
TEST(Taprec, FifoInputIsReadOnce) {
  std::string fifo = absl::StrCat(testing::TestDir(), "/capture.fifo");
  ::unlink(fifo.c_str());
  ASSERT_EQ(::mkfifo(fifo.c_str(), 0600), 0);
  Result whole = Sh(Taprec("-r '" + kFixture + "'"));
  for (int i = 0; i < 10; ++i) {
    Result r = Sh(absl::StrCat("(cat '", kFixture, "' > '", fifo, "' &); timeout 10 ",
                               Taprec("-r '" + fifo + "'")));
    ASSERT_EQ(r.rc, 0) << "run " << i << ": " << r.err;
    EXPECT_EQ(r.out, whole.out) << "run " << i;
  }
  ::unlink(fifo.c_str());
}

// A file cut while it is read ends in a torn-record error (exit 2, the trailer written), never a
// crash: the reader reads, it does not map the file.
TEST(Taprec, FileTruncatedWhileReadIsAnError) {
  std::string big = absl::StrCat(testing::TestDir(), "/big.pcap");
  std::string one = testing::ReadFileBytes(kFixture);
  {
    std::ofstream out(big, std::ios::binary);
    out << one;
    std::string records = one.substr(24);
    for (int i = 0; i < 20000; ++i) out << records;  // the same packets again: many exchanges
  }
  std::string tap = absl::StrCat(testing::TestDir(), "/big.tap");
  Result r = Sh(absl::StrCat("(sleep 0.05; truncate -s 100000 '", big, "') & ",
                             Taprec("-r '" + big + "' -w '" + tap + "'"), "; echo rc=$?"));
  // Either taprec finished before the cut, or it reports the torn record; never a signal.
  EXPECT_TRUE(r.out.find("rc=0") != std::string::npos || r.out.find("rc=2") != std::string::npos)
      << r.out << r.err;
  Result info = Sh(absl::StrCat("'", TAPCAT_BIN, "' --info '", tap, "'"));
  EXPECT_EQ(info.rc, 0) << info.err;
  EXPECT_NE(info.out.find("Trailer:          present"), std::string::npos) << info.out;
}

// --inventory labels the endpoints of an offline capture by address (the local runtime's file).
TEST(Taprec, InventoryLabelsOfflineEndpoints) {
  std::string inv = absl::StrCat(testing::TestDir(), "/inventory.yaml");
  std::ofstream(inv) << "apiVersion: apps/v1\nkind: Deployment\n"
                        "metadata: {name: web, namespace: shop}\n"
                        "spec: {selector: {matchLabels: {app: web}}}\n---\n"
                        "apiVersion: v1\nkind: Pod\n"
                        "metadata: {name: web-1, namespace: shop, labels: {app: web}}\n"
                        "status: {podIP: 127.0.0.91}\n";
  Result r = Sh(Taprec("-r '" + kFixture + "' -o json --inventory '" + inv + "'"));
  ASSERT_EQ(r.rc, 0) << r.err;
  EXPECT_NE(r.out.find("\"destination\":{\"ip\":\"127.0.0.91\",\"metadata\":{\"deployment\":"
                       "\"web\",\"namespace\":\"shop\",\"pod\":\"web-1\"}"),
            std::string::npos)
      << r.out.substr(0, 600);
  EXPECT_NE(r.out.find("\"source\":{\"ip\":\"127.0.0.1\",\"metadata\":{}"), std::string::npos);
  Result bad = Sh(Taprec("-r '" + kFixture + "' --inventory /nonexistent.yaml"));
  EXPECT_EQ(bad.rc, 2);
  EXPECT_NE(bad.err.find("/nonexistent.yaml"), std::string::npos) << bad.err;
}

// Ctrl+C while taprec waits on a pipe that is still open: it stops at once and the file is
// finished, not when the writer closes the pipe.
// SIGINT (Ctrl+C) and SIGTERM alike, as tcpdump: reading stops, what was read is written, and
// the summary line comes.
TEST(Taprec, InterruptWhileWaitingOnAPipe) {
  for (const char* sig : {"INT", "TERM"}) {
    SCOPED_TRACE(sig);
    std::string tap = absl::StrCat(testing::TestDir(), "/interrupted.tap");
    std::string pidfile = absl::StrCat(testing::TestDir(), "/interrupted.pid");
    std::string script = absl::StrCat(testing::TestDir(), "/interrupted.sh");
    // taprec writes its own pid (the script execs it), so the signal reaches it and nothing else.
    std::string errfile = absl::StrCat(testing::TestDir(), "/interrupted.err");
    // (-Z root as Taprec() adds it: the subject here is the signal, not the privilege drop.)
    std::ofstream(script) << "echo $$ > '" << pidfile << "'\nexec '" << TAPREC_BIN << "' "
                          << (::geteuid() == 0 ? "-Z root " : "") << "-r - -w '" << tap << "' 2> '"
                          << errfile << "'\n";
    Result r = Sh(absl::StrCat("rm -f '", pidfile, "'; (cat '", kFixture, "'; sleep 4) | sh '",
                               script, "' & sleep 1; start=$(date +%s%N); kill -", sig, " $(cat '",
                               pidfile, "'); while kill -0 $(cat '", pidfile,
                               "') 2>/dev/null; do sleep 0.05; done; ",
                               "echo took_ms=$(( ($(date +%s%N) - start) / 1000000 ))"));
    // Gone at once, not when the writer of the pipe finishes 3 s later. (Whole seconds of `date`
    // made this flaky: an exit 0.1 s after the signal could straddle a second boundary.)
    size_t at = r.out.find("took_ms=");
    ASSERT_NE(at, std::string::npos) << r.out << r.err;
    EXPECT_LT(std::stol(r.out.substr(at + 8)), 1500) << r.out << r.err;
    // The summary, on a signal too.
    EXPECT_EQ(testing::ReadFileBytes(errfile), "taprec: 3 exchanges recorded, 0 dropped\n");
    Result info = Sh(absl::StrCat("'", TAPCAT_BIN, "' --info '", tap, "'"));
    EXPECT_NE(info.out.find("Exchanges:        3"), std::string::npos) << info.out;
    EXPECT_NE(info.out.find("Trailer:          present"), std::string::npos) << info.out;
  }
}

// A capture damaged mid-file: what came before is written, the damage is named, exit 2, and the
// .tap records it as a drop.
TEST(Taprec, DamagedCaptureKeepsWhatCameBefore) {
  std::string corpus = testing::CorpusDir();
  TAPKIT_REQUIRE_CORPUS(corpus);
  std::string tap = absl::StrCat(testing::TestDir(), "/corrupted.tap");
  Result r = Sh(Taprec("-r '" + corpus + "/pcaps/pcapfileex__corrupted.pcap' -w '" + tap + "'"));
  EXPECT_EQ(r.rc, 2);
  EXPECT_NE(r.err.find("after 27 frames"), std::string::npos) << r.err;
  auto reader = Reader::Open(NewStringReadableFile(testing::ReadFileBytes(tap)));
  ASSERT_TRUE(reader.ok());
  ASSERT_TRUE((*reader)->summary().has_value());
  EXPECT_EQ((*reader)->summary()->exchanges, 2u);
  EXPECT_EQ((*reader)->summary()->drops.at("input_read_error"), 1u);
}

// tapcat --info -o json read by jq (an independent JSON parser) agrees with the text report and
// with the file itself. lost-body-segment.pcap has a gap (306 bytes of a body lost); cut short, it
// also makes taprec name a drop (input_read_error) in the trailer.
TEST(Taprec, InfoAsJsonThroughJq) {
  ASSERT_EQ(std::system("command -v jq > /dev/null"), 0)
      << "jq is missing: scripts/deps.sh installs it";
  std::string pcap = TAPKIT_SOURCE_DIR "/fixtures/captures/lost-body-segment.pcap";
  std::string bytes = testing::ReadFileBytes(pcap);
  ASSERT_GT(bytes.size(), 10u);
  std::string cut = absl::StrCat(testing::TestDir(), "/lost-body-segment-cut.pcap");
  std::ofstream(cut, std::ios::binary) << bytes.substr(0, bytes.size() - 10);
  std::string tap = absl::StrCat(testing::TestDir(), "/lost-body-segment-cut.tap");
  Result w = Sh(Taprec("-r '" + cut + "' -w '" + tap + "'"));
  ASSERT_EQ(w.rc, 2) << "a cut capture is an input error: " << w.err;
  std::string tapcat = absl::StrCat("'", TAPCAT_BIN, "' ");

  // The values, through jq.
  Result j = Sh(tapcat + "--info -o json '" + tap +
                "' | jq -r '[.exchanges, .metadata.writerName, .drops.input_read_error, "
                ".counters.tcp_gaps, .drops.tcp_gap_bytes, .trailer.state, "
                ".capturePoints[0].kind, .capturePoints[0].name, (.damage.corruptRanges)] "
                "| map(tostring) | join(\" \")'");
  ASSERT_EQ(j.rc, 0) << j.err;
  EXPECT_EQ(j.out, absl::StrCat("2 taprec 1 1 306 present file ", cut, " 0\n"));

  // Against the file read back directly: the exchanges, one of them the gap.
  testing::ReadResult r = testing::ReadAll(testing::ReadFileBytes(tap));
  ASSERT_TRUE(r.open.ok());
  ASSERT_EQ(r.exchanges.size(), 2u);
  EXPECT_EQ(Sh(tapcat + "-o json '" + tap + "' | jq -r .end.completion").out, "gap\ncomplete\n");
  auto reader = Reader::Open(NewStringReadableFile(testing::ReadFileBytes(tap)));
  ASSERT_TRUE(reader.ok());
  ASSERT_TRUE((*reader)->summary().has_value());
  const std::map<std::string, uint64_t>& drops = (*reader)->summary()->drops;

  // Against the text report: the same drops, name=value in the same order.
  std::string want;
  for (const auto& [k, v] : drops) absl::StrAppend(&want, want.empty() ? "" : " ", k, "=", v);
  Result text = Sh(tapcat + "--info '" + tap + "' | sed -n 's/^Drops: *//p'");
  EXPECT_EQ(text.out, want + "\n");
  Result as_json = Sh(tapcat + "--info -o json '" + tap +
                      "' | jq -r '.drops | to_entries | map(\"\\(.key)=\\(.value)\") | "
                      "join(\" \")'");
  EXPECT_EQ(as_json.out, want + "\n");

  // A file without a trailer (writer killed): drops and counters are unknown, null.
  std::string torn = absl::StrCat(testing::TestDir(), "/torn.tap");
  std::string whole = testing::ReadFileBytes(tap);
  std::ofstream(torn, std::ios::binary) << whole.substr(0, whole.size() / 2);
  Result t = Sh("(" + tapcat + "--info -o json '" + torn +
                "' | jq -r '[.trailer.state, .drops, .counters] | map(tostring) | join(\" \")')");
  EXPECT_EQ(t.out, "absent null null\n") << t.err;
  EXPECT_NE(t.err.find("torn tail"), std::string::npos) << t.err;
}

// Standard input cannot be reopened: a pcapng that libpcap refuses (interfaces of different link
// types) is read by the project's pcapng reader from the start. Regression from the taprec trial.
TEST(Taprec, MixedLinkPcapngOnStdin) {
  std::string corpus = testing::CorpusDir();
  TAPKIT_REQUIRE_CORPUS(corpus);
  std::string file = corpus + "/pcaps/pcapfileex__sample_multi_nanosecond.pcap";
  // Without redaction: its random key differs per run, and the capture holds a form password.
  Result piped = Sh("cat '" + file + "' | " + Taprec("-r - -o json --no-redact"));
  Result direct = Sh(Taprec("-r '" + file + "' -o json --no-redact"));
  EXPECT_EQ(piped.rc, 0) << piped.err;
  EXPECT_EQ(std::count(piped.out.begin(), piped.out.end(), '\n'), 4);
  EXPECT_EQ(piped.out, direct.out);
  Result plain = Sh("cat '" + kFixture + "' | " + Taprec("-r - -o json"));
  EXPECT_EQ(std::count(plain.out.begin(), plain.out.end(), '\n'), 3) << plain.err;
}

// A directory of the calling test's own (mkdtemp).
std::string OwnDir() {
  std::string t = absl::StrCat(::testing::TempDir(), "/taprec-XXXXXX");
  EXPECT_NE(::mkdtemp(t.data()), nullptr);
  return t;
}

// -r and -i take the selection flags, but not the live tap's pod selector and limits, nor -o
// beside -w: those would do nothing there, so they are refused, naming the flag (before any
// capture opens: -i needs no root for this). So are bad selections, and a workload or -n without
// --inventory (the endpoints would carry no labels to match).
TEST(Taprec, RefusesFlagsThatWouldDoNothing) {
  std::string dir = OwnDir();
  for (const char* source :
       {"-r '" TAPKIT_SOURCE_DIR "/fixtures/captures/pipelined-3-gets.pcap'", "-i lo"}) {
    for (const std::pair<const char*, const char*>& f :
         std::vector<std::pair<const char*, const char*>>{{"-l app=web", "-l"},
                                                          {"--max-requests 5", "--max-requests"},
                                                          {"--max-rps 10", "--max-rps"}}) {
      Result r = Sh(Taprec(absl::StrCat(source, " ", f.first, " -w '", dir, "/out.tap'")));
      EXPECT_EQ(r.rc, 2) << source << " " << f.first;
      EXPECT_EQ(
          r.err.rfind(absl::StrCat("taprec: ", f.second, " goes with a live tap (TARGET)"), 0), 0u)
          << r.err;
    }
    std::string name = std::string(source).substr(0, 2) == "-i" ? "lo" : kFixture;
    for (const std::pair<const char*, std::string>& f :
         std::vector<std::pair<const char*, std::string>>{
             {"--status 7xx", "taprec: --status 7xx: unknown status class (1xx..5xx)\n"},
             {"--min-latency 5",
              "taprec: --min-latency 5: not a duration (a number and ns, us, "
              "ms, s, m or h: 250ms, 1.5s)\n"},
             {"--to deploy/x", "taprec: --to deploy/x: " + name +
                                   " has no endpoint labels (recorded without --inventory): "
                                   "select by address instead\n"},
             {"-n demo", "taprec: -n demo: " + name +
                             " has no endpoint labels (recorded without --inventory): select by "
                             "address instead\n"}}) {
      Result r = Sh(Taprec(absl::StrCat(source, " ", f.first, " -w '", dir, "/out.tap'")));
      EXPECT_EQ(r.rc, 2) << source << " " << f.first;
      EXPECT_EQ(r.err, f.second);
    }
  }
  Result o = Sh(Taprec("-r '" + kFixture + "' -o json -w '" + dir + "/out.tap'"));
  EXPECT_EQ(o.rc, 2);
  EXPECT_NE(o.err.find("-o chooses how exchanges are printed; with -w"), std::string::npos)
      << o.err;
  Result live = Sh(Taprec("deploy/x -o wide -w '" + dir + "/out.tap'"));
  EXPECT_EQ(live.rc, 2);
  EXPECT_NE(live.err.find("-o chooses"), std::string::npos) << live.err;
  EXPECT_FALSE(std::filesystem::exists(dir + "/out.tap")) << "nothing refused writes a file";
}

// -C <= 0, -G < 1 s (or past the clock's range) and -W < 1 are refused (-G -5 once wrote a file
// per exchange).
TEST(Taprec, RefusesRotationValuesBelowOne) {
  std::string dir = OwnDir();
  for (const std::pair<const char*, const char*>& f :
       std::vector<std::pair<const char*, const char*>>{
           {"-C 0", "-C 0: not a size above 0"},
           {"-C -3", "-C -3: not a size above 0"},
           {"-C lots", "-C lots: not a size"},
           {"-C 1e30", "-C 1e30: not a size above 0 and below 2^63"},
           {"-C inf", "-C inf: not a size"},
           {"-G -5", "-G -5: the period is from 1 second"},
           {"-G 0", "-G 0: the period is from 1 second"},
           // Once overflowed to a file per exchange.
           {"-G 9223372037", "-G 9223372037: the period is from 1 second to 1000000000"},
           {"-C 1 -W 0", "-W 0: 1 file or more"},
           {"-G 1 -W -2", "-W -2: 1 file or more"}}) {
    Result r = Sh(Taprec("-r '" + kFixture + "' -w '" + dir + "/out.tap' " + f.first));
    EXPECT_EQ(r.rc, 2) << f.first;
    EXPECT_EQ(r.err.rfind(absl::StrCat("taprec: ", f.second), 0), 0u) << r.err;
  }
  EXPECT_FALSE(std::filesystem::exists(dir + "/out.tap"));
}

TEST(Taprec, VersionAndUsage) {
  Result v = Sh(Taprec("--version"));
  EXPECT_EQ(v.rc, 0);
  EXPECT_EQ(v.out, "taprec (tapkit) " + std::string(kVersion) + "\n");
  Result h = Sh(Taprec("--help"));
  EXPECT_EQ(h.rc, 0);
  EXPECT_EQ(h.out.rfind("Usage: taprec TARGET [options]", 0), 0u) << h.out;
  EXPECT_NE(h.out.find("--version"), std::string::npos);
}

// A live tap's sidecars redact before the tap matches (taprec -r and -i match first): --header on
// a redacted field is refused rather than silently matching the marker only.
TEST(Taprec, LiveHeaderSelectionOnARedactedFieldIsRefused) {
  std::string dir = OwnDir();
  Result r = Sh(Taprec("deploy/backend --header 'Cookie: session=1' --controlplane 'unix:" + dir +
                       "/nothing.sock' -w '" + dir + "/out.tap'"));
  EXPECT_EQ(r.rc, 2);
  if (r.err.find("this build has no live taps") != std::string::npos) {
    GTEST_SKIP() << "taprec built without gRPC (TAPKIT_WITH_GRPC=OFF): no live taps";
  }
  EXPECT_NE(r.err.find("--header cookie: a live tap's sidecars redact cookie"), std::string::npos)
      << r.err;
  Result extra = Sh(Taprec("deploy/backend --redact-header X-Tenant --header 'x-tenant: a' "
                           "--controlplane 'unix:" + dir + "/nothing.sock'"));
  EXPECT_NE(extra.err.find("--header x-tenant: a live tap's sidecars redact"), std::string::npos)
      << extra.err;
  Result off = Sh(Taprec("deploy/backend --no-redact --header 'Cookie: session=1' "
                         "--controlplane 'unix:" + dir + "/nothing.sock'"));
  EXPECT_EQ(off.err.find("sidecars redact"), std::string::npos) << off.err;
}

// Methods are case-sensitive (RFC 9110 section 9.1): --method post would match nothing. The
// warning comes before the tap starts, so an unreachable control plane shows it too; and the
// refused tap leaves no file at the -w path.
TEST(Taprec, LowerCaseMethodWarnsAndARefusedTapLeavesNoFile) {
  std::string dir = OwnDir();
  Result r = Sh(Taprec("deploy/backend --method post --controlplane 'unix:" + dir +
                       "/nothing.sock' -w '" + dir + "/out.tap'"));
  EXPECT_EQ(r.rc, 2);
  if (r.err.find("this build has no live taps") != std::string::npos) {
    GTEST_SKIP() << "taprec built without gRPC (TAPKIT_WITH_GRPC=OFF): no live taps to warn in";
  }
  EXPECT_NE(r.err.find("--method post matches no request: methods are case-sensitive (RFC 9110 "
                       "section 9.1); did you mean --method POST?"),
            std::string::npos)
      << r.err;
  EXPECT_NE(r.err.find("cannot reach the control plane"), std::string::npos) << r.err;
  EXPECT_FALSE(std::filesystem::exists(dir + "/out.tap"));
  Result upper =
      Sh(Taprec("deploy/backend --method PURGE --controlplane 'unix:" + dir + "/nothing.sock'"));
  EXPECT_EQ(upper.err.find("warning"), std::string::npos) << upper.err;
}

// A word that names no resource type is refused before any control plane is asked.
TEST(Taprec, WordThatIsNoTargetIsAUsageError) {
  Result r = Sh(Taprec("aaaa"));
  EXPECT_EQ(r.rc, 2);
  if (r.err.find("this build has no live taps") != std::string::npos) GTEST_SKIP();
  EXPECT_EQ(r.err.rfind("taprec: TARGET aaaa: unknown resource type \"aaaa\"", 0), 0u) << r.err;
}

// A capture whose every frame has a link type the engine does not decode (the header of a
// classic pcap patched to LINKTYPE_USER0, 147) is an error naming the file and the link type;
// the .tap is still written, its trailer counting every frame as unknown_link_type.
TEST(Taprec, CaptureOfAnUndecodableLinkTypeIsAnError) {
  std::string dir = OwnDir();
  std::string bytes = testing::ReadFileBytes(kFixture);
  ASSERT_GT(bytes.size(), 24u);
  ASSERT_EQ(bytes.substr(0, 4), std::string("\xd4\xc3\xb2\xa1", 4));  // little-endian pcap
  bytes[20] = static_cast<char>(147);
  bytes[21] = bytes[22] = bytes[23] = 0;
  std::string in = dir + "/user0.pcap";
  {
    std::ofstream f(in, std::ios::binary);
    f << bytes;
  }
  Result r = Sh(Taprec("-r '" + in + "' -w '" + dir + "/out.tap'"));
  EXPECT_EQ(r.rc, 2);
  EXPECT_NE(r.err.find("taprec: " + in + ": "), std::string::npos) << r.err;
  EXPECT_NE(r.err.find("frames have a link type taprec does not decode (147;"), std::string::npos)
      << r.err;
  Result info = Sh(std::string(TAPCAT_BIN) + " --info -o json '" + dir + "/out.tap'");
  EXPECT_EQ(info.rc, 0) << info.err;
  EXPECT_NE(info.out.find("\"unknown_link_type\":"), std::string::npos) << info.out;
}

// -c 0 offline writes an empty capture; a live tap has no "none": refused, not a tap forever.
TEST(Taprec, CountZeroWithATargetIsRefused) {
  Result r = Sh(Taprec("deploy/backend -c 0"));
  EXPECT_EQ(r.rc, 2);
  if (r.err.find("this build has no live taps") != std::string::npos) GTEST_SKIP();
  EXPECT_EQ(r.err,
            "taprec: -c 0 with a TARGET: a live tap records at least one exchange (-c N, "
            "N >= 1)\n");
}

// The files -C opens later are checked too: a rotated name that is the capture being read
// (o1.tap read while writing o.tap) is refused, never overwritten.
TEST(Taprec, RotationNeverOverwritesTheCaptureBeingRead) {
  std::string dir = OwnDir();
  std::string in = dir + "/o1.tap";
  std::string bytes =
      testing::ReadFileBytes(TAPKIT_SOURCE_DIR "/fixtures/captures/keepalive-10-gets.pcap");
  {
    std::ofstream f(in, std::ios::binary);
    f << bytes;
  }
  Result r = Sh(Taprec("-r '" + in + "' -w '" + dir + "/o.tap' -C 1k -Z root"));
  EXPECT_EQ(r.rc, 2);
  EXPECT_NE(r.err.find("taprec: -w " + in +
                       ": is the capture being read (-r); refusing to "
                       "overwrite it"),
            std::string::npos)
      << r.err;
  EXPECT_EQ(testing::ReadFileBytes(in), bytes);
}

// An empty -w name, and a key for redaction that --no-redact turns off, are refused.
TEST(Taprec, EmptyOutputNameAndUnusedKeyAreRefused) {
  Result r = Sh(Taprec("-r '" + kFixture + "' -w ''"));
  EXPECT_EQ(r.rc, 2);
  EXPECT_EQ(r.err, "taprec: -w: give a file name (or - for standard output)\n");
  r = Sh(Taprec("-r '" + kFixture + "' --no-redact --redact-key-file /dev/null"));
  EXPECT_EQ(r.rc, 2);
  EXPECT_EQ(r.err, "taprec: --redact-key-file goes with redaction; --no-redact turns it off\n");
  // The redaction flags are checked before anything is opened, with one line naming the flag.
  const std::pair<std::string, std::string> bad[] = {
      {"--no-redact --redact-query-param sid",
       "taprec: --redact-query-param goes with redaction; --no-redact turns it off\n"},
      {"--redact-json-field password",
       "taprec: --redact-json-field JSON pointer \"password\": must be empty or start with "
       "\"/\" (RFC 6901 section 3)\n"},
      {"--redact-header 'x y'",
       "taprec: --redact-header \"x y\": not a header field name (a token, RFC 9110 section "
       "5.6.2)\n"},
  };
  for (const auto& [flags, message] : bad) {
    r = Sh(Taprec("-r /nonexistent.pcap " + flags));
    EXPECT_EQ(r.rc, 2) << flags;
    EXPECT_EQ(r.err, message);
  }
}

// -r with the new redaction flags: a header added to the default set, a query parameter, and
// the policy in the file's header (tapcat --info -o json, read with jq).
TEST(Taprec, RedactionFlagsReachTheFileAndItsHeader) {
  std::string tap = absl::StrCat(testing::TestDir(), "/redact-flags.tap");
  Result r = Sh(Taprec("-r '" + kFixture + "' --redact-header Host,User-Agent --redact-query-param "
                       "sid --redact-json-field /a/0 -w '" + tap + "'"));
  ASSERT_EQ(r.rc, 0) << r.err;
  Result info = Sh(std::string(TAPCAT_BIN) + " --info -o json '" + tap +
                   "' | jq -c '.metadata.redaction | [.headers[-2:], .queryParams[-1], "
                   ".jsonFields, .keyed, .enabled]'");
  EXPECT_EQ(info.out, "[[\"host\",\"user-agent\"],\"sid\",[\"/a/0\"],false,true]\n") << info.err;
  Result hosts = Sh(std::string(TAPCAT_BIN) + " -o json '" + tap +
                    "' | jq -r '.request.headers[] | select(.name | ascii_downcase == \"host\") "
                    "| .value' | sort -u");
  EXPECT_EQ(hosts.out.substr(0, 16), "tapkit-redacted:") << hosts.out << hosts.err;
  EXPECT_EQ(std::count(hosts.out.begin(), hosts.out.end(), '\n'), 1) << "one host, one marker";
}

// Classic little-endian pcap helpers: the records after the 24-byte header, and their first
// and last second (each record header: ts_sec, ts_usec, incl_len, orig_len).
struct PcapRecords {
  std::string header, records;
};
PcapRecords SplitPcap(const std::string& file) {
  return {file.substr(0, 24), file.substr(24)};
}
std::string ShiftSeconds(std::string records, uint32_t by, uint32_t* last) {
  for (size_t at = 0; at + 16 <= records.size();) {
    uint32_t sec, len;
    std::memcpy(&sec, &records[at], 4);
    std::memcpy(&len, &records[at + 8], 4);
    sec += by;
    std::memcpy(&records[at], &sec, 4);
    *last = sec;
    at += 16 + len;
  }
  return records;
}

// -G with -W stops once its files are written: the summary counts the exchanges written, not
// the one that would have opened the next file. Two captures (different connections), the
// second moved to 5 s after the first ends, give two -G 1 periods.
TEST(Taprec, RotationStopCountsOnlyWhatWasWritten) {
  std::string dir = OwnDir();
  std::string fix = TAPKIT_SOURCE_DIR "/fixtures/captures/";
  PcapRecords a = SplitPcap(testing::ReadFileBytes(fix + "keepalive-4-gets.pcap"));
  PcapRecords b = SplitPcap(testing::ReadFileBytes(fix + "keepalive-two-gets.pcap"));
  ASSERT_EQ(a.header, b.header) << "same link type and snaplen, so one header serves both";
  uint32_t a_last = 0, b_first = 0, unused = 0;
  ShiftSeconds(a.records, 0, &a_last);
  std::memcpy(&b_first, b.records.data(), 4);
  std::string merged = a.header + a.records + ShiftSeconds(b.records, a_last + 5 - b_first, &unused);
  {
    std::ofstream f(dir + "/two.pcap", std::ios::binary);
    f << merged;
  }
  Result all = Sh(Taprec("-r '" + dir + "/two.pcap' -w '" + dir + "/all.tap'"));
  ASSERT_EQ(all.err, "taprec: 6 exchanges recorded, 0 dropped\n");
  Result r = Sh(Taprec("-r '" + dir + "/two.pcap' -w '" + dir + "/g.tap' -G 1 -W 1"));
  EXPECT_EQ(r.rc, 0) << r.err;
  testing::ReadResult written = testing::ReadAll(testing::ReadFileBytes(dir + "/g.tap"));
  EXPECT_EQ(written.exchanges.size(), 4u) << "the first capture's period only";
  EXPECT_EQ(r.err, "taprec: -W 1 file written\ntaprec: 4 exchanges recorded, 0 dropped\n");
}

}  // namespace
}  // namespace tapkit
