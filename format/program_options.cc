#include "format/program_options.h"

#include "format/program.h"

namespace tapkit {

namespace po = boost::program_options;

std::optional<int> ParseCommandLine(const CommandLine& line, int argc, const char* const argv[],
                                    po::variables_map* vm, std::ostream& out, std::ostream& err) {
  po::options_description all;
  all.add(*line.visible);
  if (line.hidden != nullptr) all.add(*line.hidden);
  po::positional_options_description pos;
  if (!line.positional.empty()) pos.add(std::string(line.positional).c_str(), -1);
  try {
    po::command_line_parser parser(argc, argv);
    parser.style(kCommandLineStyle).options(all).positional(pos);
    if (line.extra_parser) parser.extra_parser(line.extra_parser);
    po::store(parser.run(), *vm);
    po::notify(*vm);
  } catch (const po::error& e) {
    err << line.program << ": " << e.what() << " (try --help)\n" << std::flush;
    return kExitError;
  }
  if (vm->count("version")) {
    out << VersionLine(line.program);
    return kExitOk;
  }
  if (vm->count("help")) {
    out << *line.visible;
    if (!line.help_epilogue.empty()) out << "\n" << line.help_epilogue;
    return kExitOk;
  }
  return std::nullopt;
}

}  // namespace tapkit
