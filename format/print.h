// print.h: printing .tap files whole, as tapcat does: the exchanges of every file in sort-key
// (request-start) order, merged across files (format/order.h), or each file as stored
// (--file-order), through one output (output.h: text, wide or JSON, render.h; text lines after a
// time column, line_time.h; or one --stat table over them, stats.h); or each file's --info
// report; or rebuilding the index of a file whose writer was killed (--reindex). tapcat's main is
// option parsing plus one call of PrintCaptures.
//
// Damage is reported as it is met, one line on `err` per skipped range or notice, naming the
// file and the byte offset ("tapcat: out.tap: offset 4096: ... (812 bytes skipped)"), after the
// exchanges printed before it. Whatever can be read is printed.
//
// Thread-safety: PrintCaptures uses only its arguments; calls on different streams may run at once.
#ifndef TAPKIT_FORMAT_PRINT_H_
#define TAPKIT_FORMAT_PRINT_H_

#include <cstdint>
#include <cstdio>
#include <functional>
#include <string>
#include <vector>

#include "format/exchange_view.h"
#include "format/line_time.h"
#include "format/order.h"
#include "format/reader.h"
#include "format/render.h"
#include "format/stats.h"

namespace tapkit {

struct PrintOptions {
  std::vector<std::string> files;  // paths; "-" is standard input
  OutputFormat format = OutputFormat::kText;
  TimeFormat time = TimeFormat::kAbsolute;  // text and wide lines' time column (line_time.h)
  bool stat = false;                        // --stat: the table of stats.h instead of exchanges
  StatKey stat_by = StatKey::kRoute;        // --by
  // -V: one block per exchange (verbose.h); --body: -o json bodies gain `decoded` (docs/json.md).
  bool verbose = false;
  bool decoded_bodies = false;
  int64_t count = -1;       // at most this many exchanges over all files; -1: no limit
  bool info = false;        // the --info report per file instead of the exchanges
  bool reindex = false;     // write the index and trailer of files that lack them (RebuildIndex)
  bool file_order = false;  // as stored, file after file, instead of sort-key order
  // For files without an index (order.h); a late exchange prints at once and is counted in one
  // notice line at the end.
  int64_t reorder_window_ns = kDefaultReorderWindowNs;
  // Follow growing files as tail -f (order.h OrderOptions::follow); every exchange is written
  // out as soon as it prints. Ends, successfully, once `stop` returns true.
  bool follow = false;
  std::function<bool()> stop;
  // Which exchanges to print (the selection); null prints all. Runs before an exchange is held.
  std::function<bool(const ExchangeView&)> keep;
  std::string program = "tapcat";  // the name error lines begin with
};

// A Reporter that prints each skipped range and notice as one line on `err`, naming the program,
// the file and the offset ("tapcat: out.tap: offset 4096: reason (812 bytes skipped)", "...:
// offset N: notice: torn tail..."). Output still pending in `*pending` (may be null) is written
// to `out` first, so the lines follow what was printed before them. Counts the damage.
class LineReporter final : public Reporter {
 public:
  // `program` must outlive the reporter.
  LineReporter(const std::string& program, std::string file, std::string* pending, std::FILE* out,
               std::FILE* err);
  void Corruption(uint64_t offset, uint64_t length, std::string_view reason) override;
  void Notice(uint64_t offset, std::string_view message) override;
  int damage() const { return damage_; }

 private:
  void FlushPending();
  const std::string& program_;
  std::string file_;
  std::string* pending_;
  std::FILE* out_;
  std::FILE* err_;
  int damage_ = 0;
};

// Prints to `out`; errors, damage and notices go to `err`, one line each. Returns true when
// every file was read (or reindexed) without an error or damage (a torn tail is a notice, not
// damage: SPEC.md section 7), false otherwise, including a write error on `out` (after which
// nothing more is printed).
bool PrintCaptures(const PrintOptions& options, std::FILE* out, std::FILE* err);

}  // namespace tapkit

#endif  // TAPKIT_FORMAT_PRINT_H_
