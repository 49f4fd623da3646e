// print.h: printing .tap files whole, as tapcat does: each file's exchanges in file order (text,
// wide or JSON, render.h; text lines after a time column, line_time.h), or one --stat table over
// them (stats.h), or its --info report, or rebuilding the index of a file whose writer
// was killed (--reindex). tapcat's main is option parsing plus one call of PrintCaptures.
//
// Damage is reported as it is met, one line on `err` per skipped range or notice, naming the
// file and the byte offset ("tapcat: out.tap: offset 4096: ... (812 bytes skipped)"), after the
// exchanges printed before it, so the lines keep file order. Whatever can be read is printed.
//
// Thread-safety: PrintCaptures uses only its arguments; calls on different streams may run at once.
#ifndef TAPKIT_FORMAT_PRINT_H_
#define TAPKIT_FORMAT_PRINT_H_

#include <cstdint>
#include <cstdio>
#include <string>
#include <vector>

#include "format/line_time.h"
#include "format/render.h"
#include "format/stats.h"

namespace tapkit {

struct PrintOptions {
  std::vector<std::string> files;  // paths; "-" is standard input
  OutputFormat format = OutputFormat::kText;
  TimeFormat time = TimeFormat::kAbsolute;  // text and wide lines' time column (line_time.h)
  bool stat = false;                        // --stat: the table of stats.h instead of exchanges
  StatKey stat_by = StatKey::kRoute;        // --by
  int64_t count = -1;    // at most this many exchanges over all files; -1: no limit
  bool info = false;     // the --info report per file instead of the exchanges
  bool reindex = false;  // write the index and trailer of files that lack them (RebuildIndex)
  std::string program = "tapcat";  // the name error lines begin with
};

// Prints to `out`; errors, damage and notices go to `err`, one line each. Returns true when
// every file was read (or reindexed) without an error or damage (a torn tail is a notice, not
// damage: SPEC.md section 7), false otherwise, including a write error on `out` (after which
// nothing more is printed).
bool PrintCaptures(const PrintOptions& options, std::FILE* out, std::FILE* err);

}  // namespace tapkit

#endif  // TAPKIT_FORMAT_PRINT_H_
