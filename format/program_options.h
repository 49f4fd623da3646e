// program_options.h: how every tapkit tool reads its command line with Boost.Program_options:
// the parse in kCommandLineStyle (format/program.h), the one error line, --version and --help.
// Each tool declares its own options; this is the block around them that they all share.
//
// Thread-safety: ParseCommandLine is a function of its arguments; it writes only to *vm and to
// the two streams given.
#ifndef TAPKIT_FORMAT_PROGRAM_OPTIONS_H_
#define TAPKIT_FORMAT_PROGRAM_OPTIONS_H_

#include <boost/program_options.hpp>
#include <functional>
#include <optional>
#include <ostream>
#include <string>
#include <string_view>
#include <utility>

namespace tapkit {

// One tool's command line.
struct CommandLine {
  // The tool's name: the first word of its error lines and of `--version`'s line.
  std::string_view program;
  // The options `--help` lists; must declare "help" and "version".
  const boost::program_options::options_description* visible = nullptr;
  // Options kept out of `--help` (e.g. the one that takes the positional words); may be null.
  const boost::program_options::options_description* hidden = nullptr;
  // The option every positional word goes to ("" when the tool takes none).
  std::string_view positional;
  // Boost's extra_parser hook, e.g. SelectionExtraParser (format/select.h); may be empty.
  std::function<std::pair<std::string, std::string>(const std::string&)> extra_parser;
  // What `--help` prints after the option list, after one blank line (exit status and notes).
  std::string_view help_epilogue;
};

// Reads argv[1..argc) into *vm (store, then notify) with kCommandLineStyle, so an abbreviated
// long option is an error. Returns the exit code when the program is done:
//   - a bad command line: one line "PROGRAM: WHAT (try --help)" on `err`, kExitError (2);
//   - --version: VersionLine(program) on `out`, kExitOk (checked before --help);
//   - --help: the visible options, then the epilogue, on `out`, kExitOk.
// Returns std::nullopt when the program should go on with *vm.
std::optional<int> ParseCommandLine(const CommandLine& line, int argc, const char* const argv[],
                                    boost::program_options::variables_map* vm, std::ostream& out,
                                    std::ostream& err);

}  // namespace tapkit

#endif  // TAPKIT_FORMAT_PROGRAM_OPTIONS_H_
