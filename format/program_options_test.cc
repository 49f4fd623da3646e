// program_options_test: the command-line block every tool shares (program_options.h): the exit
// codes and the exact lines of --version, --help and a bad command line, positional words, the
// extra parser and the refusal of abbreviated long options.
#include "format/program_options.h"

#include <gtest/gtest.h>

#include <sstream>
#include <string>
#include <vector>

#include "format/program.h"

namespace tapkit {
namespace {

namespace po = boost::program_options;

struct Parsed {
  std::optional<int> done;
  std::string out, err;
  po::variables_map vm;
};

// The tool "demo": -n N, --name, positional words into "word", --flag=VALUE split by the extra
// parser of `--flag` words (as SelectionExtraParser does for --incomplete).
Parsed Parse(std::vector<const char*> args, std::vector<std::string>* words = nullptr,
             int* n = nullptr) {
  static std::vector<std::string> sink_words;
  static int sink_n;
  if (words == nullptr) words = &sink_words;
  if (n == nullptr) n = &sink_n;
  po::options_description opts("Usage: demo [options] WORD...");
  opts.add_options()("help,h", "show this help")("version", "print the version")(
      "count,n", po::value(n), "how many")("status", "a flag --stat must not be guessed as")(
      "flag", po::value<std::string>(), "set by the extra parser");
  po::options_description hidden;
  hidden.add_options()("word", po::value(words));
  args.insert(args.begin(), "demo");
  Parsed r;
  std::ostringstream out, err;
  r.done = ParseCommandLine(
      {.program = "demo",
       .visible = &opts,
       .hidden = &hidden,
       .positional = "word",
       .extra_parser = [](const std::string& token) -> std::pair<std::string, std::string> {
         if (token == "--flag") return {"flag", "bare"};
         return {};
       },
       .help_epilogue = "Exit status: 0 ok, 2 usage error.\n"},
      static_cast<int>(args.size()), args.data(), &r.vm, out, err);
  r.out = out.str();
  r.err = err.str();
  return r;
}

TEST(ParseCommandLine, OptionsAndPositionalWordsGoOn) {
  std::vector<std::string> words;
  int n = 0;
  Parsed r = Parse({"a", "-n", "7", "b", "--flag"}, &words, &n);
  EXPECT_FALSE(r.done.has_value());
  EXPECT_EQ(n, 7);
  EXPECT_EQ(words, (std::vector<std::string>{"a", "b"}));
  ASSERT_TRUE(r.vm.count("flag"));
  EXPECT_EQ(r.vm["flag"].as<std::string>(), "bare");
  EXPECT_EQ(r.out, "");
  EXPECT_EQ(r.err, "");
}

TEST(ParseCommandLine, VersionLine) {
  Parsed r = Parse({"--version"});
  EXPECT_EQ(r.done, kExitOk);
  EXPECT_EQ(r.out, "demo (tapkit) " + std::string(kVersion) + "\n");
  EXPECT_EQ(r.err, "");
  // --version wins over --help, whatever their order.
  EXPECT_EQ(Parse({"--help", "--version"}).out, r.out);
}

TEST(ParseCommandLine, HelpIsTheOptionsThenABlankLineThenTheEpilogue) {
  Parsed r = Parse({"-h"});
  EXPECT_EQ(r.done, kExitOk);
  // Boost prints the caption with a colon after it.
  EXPECT_EQ(r.out.rfind("Usage: demo [options] WORD...:\n", 0), 0u) << r.out;
  EXPECT_NE(r.out.find("  -n [ --count ] arg"), std::string::npos) << r.out;
  EXPECT_EQ(r.out.find("word"), std::string::npos) << "hidden options stay out of --help";
  const std::string tail = "\n\nExit status: 0 ok, 2 usage error.\n";
  ASSERT_GE(r.out.size(), tail.size());
  EXPECT_EQ(r.out.substr(r.out.size() - tail.size()), tail) << r.out;
  EXPECT_EQ(r.err, "");
}

TEST(ParseCommandLine, BadCommandLineIsOneLineAndExitTwo) {
  Parsed r = Parse({"--no-such-option"});
  EXPECT_EQ(r.done, kExitError);
  EXPECT_EQ(r.out, "");
  EXPECT_EQ(r.err, "demo: unrecognised option '--no-such-option' (try --help)\n");
  // A value that is no number names the option.
  Parsed v = Parse({"-n", "x"});
  EXPECT_EQ(v.done, kExitError);
  EXPECT_EQ(v.err, "demo: the argument ('x') for option '--count' is invalid (try --help)\n");
}

TEST(ParseCommandLine, AbbreviatedLongOptionIsRefusedNotGuessed) {
  Parsed r = Parse({"--stat"});
  EXPECT_EQ(r.done, kExitError);
  EXPECT_EQ(r.err, "demo: unrecognised option '--stat' (try --help)\n");
}

}  // namespace
}  // namespace tapkit
