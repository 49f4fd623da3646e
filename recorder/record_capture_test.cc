// RecordCapture (taprec -r) in process: a fixture capture recorded into a temporary file and read
// back, checked against what tcpdump and tshark read in the same capture; inventory labels
// (service included); the output opened only once the capture is; the one metadata builder.
#include "recorder/record_capture.h"

#include <gtest/gtest.h>
#include <stdlib.h>

#include <cstdio>
#include <filesystem>
#include <fstream>

#include "format/program.h"
#include "format/reader.h"
#include "format/testutil.h"
#include "recorder/metadata.h"
#include "format/test_dir.h"

namespace tapkit {
namespace {

namespace fs = std::filesystem;

const std::string kFixture = TAPKIT_SOURCE_DIR "/fixtures/captures/pipelined-3-gets.pcap";

// A directory of this test's own (mkdtemp under TestDir()), removed at the end.
class TempDir : public tapkit::testing::ScopedTempDir {
 public:
  TempDir() : ScopedTempDir("record_capture_test") {}
};

std::string ReadAllOf(std::FILE* f) {
  std::rewind(f);
  std::string s;
  char buf[4096];
  for (size_t n; (n = std::fread(buf, 1, sizeof buf, f)) > 0;) s.append(buf, n);
  return s;
}

// The fixture's server, 127.0.0.91, is pod web-1 of deployment web behind service web.
constexpr char kInventory[] =
    "apiVersion: apps/v1\nkind: Deployment\n"
    "metadata: {name: web, namespace: shop}\n"
    "spec: {selector: {matchLabels: {app: web}}}\n---\n"
    "apiVersion: v1\nkind: Pod\n"
    "metadata: {name: web-1, namespace: shop, labels: {app: web}}\n"
    "status: {podIP: 127.0.0.91}\n---\n"
    "apiVersion: v1\nkind: Service\n"
    "metadata: {name: web, namespace: shop}\n"
    "spec: {selector: {app: web}}\n";

TEST(RecordCapture, FixtureToFileWithInventoryLabels) {
  TempDir dir;
  std::string inv = dir.path() + "/inventory.yaml";
  std::ofstream(inv) << kInventory;
  std::FILE* err = std::tmpfile();
  ASSERT_NE(err, nullptr);
  std::atomic<bool> stop{false};
  CaptureRecording o;
  o.read_path = kFixture;
  o.write_path = dir.path() + "/out.tap";
  o.inventory_path = inv;
  o.command_line = {"taprec", "-r", kFixture};
  o.stop = &stop;
  o.err = err;
  ASSERT_TRUE(RecordCapture(o).ok());
  EXPECT_EQ(ReadAllOf(err), "taprec: 3 exchanges recorded, 0 dropped\n");
  std::fclose(err);

  std::string bytes = testing::ReadFileBytes(o.write_path);
  testing::ReadResult r = testing::ReadAll(bytes);
  ASSERT_TRUE(r.open.ok()) << r.open;
  // tshark -Y http.request -e frame.time_epoch -e http.request.uri; tcpdump -A for the statuses.
  ASSERT_EQ(r.exchanges.size(), 3u);
  const char* paths[] = {"/small.txt", "/items.json", "/missing"};
  const int statuses[] = {200, 200, 404};
  for (size_t i = 0; i < 3; ++i) {
    const Exchange& x = r.exchanges[i];
    ASSERT_TRUE(x.request && x.response) << i;
    EXPECT_EQ(x.request->method, "GET");
    EXPECT_EQ(x.request->path, paths[i]);
    EXPECT_EQ(x.response->status, statuses[i]);
    EXPECT_EQ(x.source.ip.ToString(), "127.0.0.1");
    EXPECT_EQ(x.source.port, 54966);
    EXPECT_EQ(x.destination.port, 8091);
    EXPECT_TRUE(x.source.labels.empty()) << "127.0.0.1 is no pod";
    EXPECT_EQ(x.destination.labels, (Labels{"shop", "web-1", "deployment", "web", "web"}));
  }
  EXPECT_EQ(r.exchanges[0].sort_key_ns, 1796015491769227000u);

  auto reader = Reader::Open(NewStringReadableFile(bytes));
  ASSERT_TRUE(reader.ok());
  const CaptureMetadata& m = (*reader)->metadata();
  EXPECT_EQ(m.writer_name, "taprec");
  EXPECT_EQ(m.writer_version, std::string(kVersion));
  EXPECT_EQ(m.command_line, o.command_line);
  EXPECT_EQ(m.filters, (std::vector<std::pair<std::string, std::string>>{{"inventory", inv}}));
  ASSERT_EQ(m.capture_points.size(), 1u);
  EXPECT_EQ(m.capture_points[0].kind, "file");
  EXPECT_EQ(m.capture_points[0].name, kFixture);
  EXPECT_TRUE(m.redaction.enabled);
  ASSERT_TRUE((*reader)->summary().has_value());
  EXPECT_EQ((*reader)->summary()->counters.at("http1_requests"), 3u);
}

// Printing (no -w): tapcat's lines on `out`, and the same summary on `err`.
TEST(RecordCapture, PrintsAndSummarises) {
  std::FILE* out = std::tmpfile();
  std::FILE* err = std::tmpfile();
  std::atomic<bool> stop{false};
  CaptureRecording o;
  o.read_path = kFixture;
  o.output = OutputFormat::kJson;
  o.count = 2;
  o.stop = &stop;
  o.out = out;
  o.err = err;
  ASSERT_TRUE(RecordCapture(o).ok());
  std::string printed = ReadAllOf(out);
  EXPECT_EQ(std::count(printed.begin(), printed.end(), '\n'), 2) << printed;
  EXPECT_NE(printed.find("/items.json"), std::string::npos);
  EXPECT_EQ(printed.find("/missing"), std::string::npos) << "-c 2";
  EXPECT_EQ(ReadAllOf(err), "taprec: 2 exchanges recorded, 0 dropped\n");
  std::fclose(out);
  std::fclose(err);
}

// A capture that cannot be opened leaves no file at the -w path.
TEST(RecordCapture, NoOutputFileWhenTheCaptureCannotOpen) {
  TempDir dir;
  std::atomic<bool> stop{false};
  CaptureRecording o;
  o.read_path = dir.path() + "/missing.pcap";
  o.write_path = dir.path() + "/out.tap";
  o.stop = &stop;
  absl::Status s = RecordCapture(o);
  EXPECT_FALSE(s.ok());
  EXPECT_NE(s.message().find("missing.pcap"), std::string::npos) << s;
  EXPECT_FALSE(fs::exists(o.write_path));
  o.read_path = kFixture;
  o.bpf = "tcp port";  // not a BPF expression
  EXPECT_FALSE(RecordCapture(o).ok());
  EXPECT_FALSE(fs::exists(o.write_path));
}

// One builder for offline and live headers.
TEST(RecordingMetadata, BuiltOnceForBothModes) {
  RecordingSetup live;
  live.command_line = {"taprec", "deploy/backend"};
  live.target = "deploy/backend";
  live.filters = {{"selector", ""}, {"method", "POST"}, {"path", "/api"}};
  live.body_limit = 1024;
  live.redaction = {};
  CaptureMetadata m = BuildMetadata(live);
  EXPECT_EQ(m.writer_name, "taprec");
  EXPECT_EQ(m.writer_version, std::string(kVersion));
  EXPECT_EQ(m.target, "deploy/backend");
  EXPECT_EQ(m.ns, "default");
  EXPECT_EQ(m.filters, (std::vector<std::pair<std::string, std::string>>{{"method", "POST"},
                                                                          {"path", "/api"}}));
  EXPECT_EQ(m.body_limit, 1024u);
  EXPECT_FALSE(m.redaction.enabled);
  EXPECT_TRUE(m.redaction.headers.empty());
  EXPECT_GT(m.start_time_ns, 1'600'000'000'000'000'000u);
  char host[256] = {};
  ASSERT_EQ(gethostname(host, sizeof host - 1), 0);
  EXPECT_EQ(m.host, host);
  RecordingSetup offline;
  offline.capture_points = {{0, "interface", "lo", {}, {}}};
  CaptureMetadata o = BuildMetadata(offline);
  EXPECT_EQ(o.ns, "") << "no target, no namespace";
  EXPECT_EQ(o.redaction, DefaultRedactionPolicy());
  EXPECT_EQ(o.capture_points, offline.capture_points);
}

// The summary line, as the live tap and -r/-i both print it.
TEST(SummaryLine, CountsHeldBackAndPointerToInfo) {
  EXPECT_EQ(SummaryLine(3, 0, 0, true), "taprec: 3 exchanges recorded, 0 dropped\n");
  EXPECT_EQ(SummaryLine(1, 0, 0, true), "taprec: 1 exchange recorded, 0 dropped\n");
  EXPECT_EQ(SummaryLine(5, 7, 2, true),
            "taprec: 5 exchanges recorded, 7 dropped, 2 held back by --max-rps (tapcat --info for "
            "why)\n");
  EXPECT_EQ(SummaryLine(5, 7, 0, false), "taprec: 5 exchanges recorded, 7 dropped\n");
}

}  // namespace
}  // namespace tapkit
