// testutil.h: helpers for tapkit tests: sample exchanges, in-memory files, a recording Reporter,
// damage forgers (LevelDB's log_test style), and running shell commands and the tools they need.
//
// Thread-safety: test code; single-threaded.
#ifndef TAPKIT_FORMAT_TESTUTIL_H_
#define TAPKIT_FORMAT_TESTUTIL_H_

#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

#include "format/exchange.h"
#include "format/metadata.h"
#include "format/reader.h"
#include "format/writer.h"

namespace tapkit::testing {

// An exchange that sets every field, with values derived from `i` (distinct per i); replay_of
// only for odd i.
Exchange RichExchange(uint64_t i);
// A small GET/200 exchange with sort key `sort_key_ns`.
Exchange SmallExchange(uint64_t i, uint64_t sort_key_ns);
CaptureMetadata SampleMetadata();

// Writes `xs` to memory with `segment_bytes` per segment (and no flush timer); returns the file.
std::string WriteToString(const std::vector<Exchange>& xs, size_t segment_bytes = 1 << 20,
                          bool close = true, const TrailerInput& trailer = {});

struct Report {
  struct Range {
    uint64_t offset, length;
    std::string reason;
  };
  std::vector<Range> corruption;
  std::vector<std::string> notices;
};

class RecordingReporter final : public Reporter {
 public:
  explicit RecordingReporter(Report* r) : r_(r) {}
  void Corruption(uint64_t offset, uint64_t length, std::string_view reason) override {
    r_->corruption.push_back({offset, length, std::string(reason)});
  }
  void Notice(uint64_t, std::string_view message) override { r_->notices.emplace_back(message); }

 private:
  Report* r_;
};

struct ReadResult {
  absl::Status open;    // Reader::Open's status
  absl::Status status;  // Reader::status() at the end
  std::vector<Exchange> exchanges;
  ReaderStats stats;
  Report report;
};

// Reads everything in `data` (as a seekable file, or a pipe when !seekable).
ReadResult ReadAll(std::string_view data, bool headers_only = false, bool seekable = true);

// The shared capture corpus: $TAPKIT_CORPUS, else ../shared/corpus beside the repository root
// (never relative to the build folder). Empty when the folder has no MANIFEST.tsv.
std::string CorpusDir();

// In a test body: skips with a visible message when the corpus is absent, or fails under CI=true.
#define TAPKIT_REQUIRE_CORPUS(dir)                                                             \
  do {                                                                                         \
    if ((dir).empty()) {                                                                       \
      if (::tapkit::testing::InCi()) {                                                         \
        FAIL() << "capture corpus not found (TAPKIT_CORPUS or ../shared/corpus); CI=true";     \
      }                                                                                        \
      GTEST_SKIP() << "capture corpus not found: set TAPKIT_CORPUS or place ../shared/corpus " \
                      "beside the repository; skipping";                                       \
    }                                                                                          \
  } while (0)
bool InCi();

// Runs `command` with /bin/sh (popen) and returns its standard output (stderr is not captured);
// *status, when given, gets the exit status (-1 when the shell did not exit normally).
std::string Shell(const std::string& command, int* status = nullptr);

// True when `tool` is a command the shell finds (`command -v`).
bool HaveTool(const std::string& tool);

// In a test body: skips with a visible message when the command `tool` is missing, or fails
// under CI=true (scripts/deps.sh installs the tools tests need).
#define TAPKIT_REQUIRE_TOOL(tool)                                                      \
  do {                                                                                 \
    if (!::tapkit::testing::HaveTool(tool)) {                                          \
      if (::tapkit::testing::InCi()) FAIL() << (tool) << " is missing; CI=true";       \
      GTEST_SKIP() << (tool) << " is missing (scripts/deps.sh installs it); skipping"; \
    }                                                                                  \
  } while (0)

// A TCP port on the IPv4 `address` (dotted quad, e.g. "127.0.94.1") that no socket holds now: the
// kernel's pick for a bind to port 0 (so another process may take it before the caller binds it).
// On a socket, bind or getsockname error: a gtest failure naming the address, and 0.
uint16_t FreePort(const std::string& address);

// True when a TCP connection to the IPv4 `address`:`port` succeeds now (e.g. a server listens).
bool CanConnect(const std::string& address, int port);

// Writes `bytes` to the file NAME in TestDir() (format/test_dir.h), replacing it; returns its path.
std::string WriteTestFile(const std::string& name, std::string_view bytes);

// The whole content of the file at `path` (empty when it cannot be read).
std::string ReadFileBytes(const std::string& path);

// Offsets of every block marker in a file written by WriteToString (segments, then the trailer).
std::vector<uint64_t> BlockOffsets(const std::string& file);
// Recomputes the header checksum of the block at `offset` (after a test edited its fields).
void FixBlockChecksum(std::string* file, uint64_t offset);

}  // namespace tapkit::testing

#endif  // TAPKIT_FORMAT_TESTUTIL_H_
