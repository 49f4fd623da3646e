// tapreplay: sends the requests of .tap captures to a live service and compares its answers with
// the recorded ones (replay/run.h, replay/replay.h; docs/replay.md), or, with --serve, stands in
// for the recorded service as a mock server (replay/serve_run.h, replay/serve.h).
//
//   tapreplay IN.tap|- --target http://HOST:PORT [--speed X | --rate N | --max]
//             [--concurrency N] [--loop N] [--sample PERCENT] [request edits] [comparison rules]
//             [-o text|json] [--junit FILE] [-w FILE] [-v] [selection]
//   tapreplay IN.tap... --serve ADDR:PORT [matching] [--upstream URL [-w FILE]] [-o text|json]
//             [selection]
//
// Exit status (docs/architecture.md section 4): 0 every exchange matched (--serve: stopped by
// SIGINT or SIGTERM), 1 any differed or a request failed after the target had answered, 2 usage
// or input error, or a target that cannot be reached (--serve: an address that cannot be bound).
#include <boost/program_options.hpp>
#include <cstdio>
#include <cstdlib>
#include <iostream>
#include <optional>
#include <string>
#include <utility>
#include <vector>

#include "format/program.h"
#include "format/program_options.h"
#include "format/select.h"
#include "replay/run.h"
#include "replay/serve_run.h"

namespace po = boost::program_options;

using tapkit::kExitError;
using tapkit::kExitOk;

int main(int argc, char** argv) {
  tapkit::replay::ReplayToolFlags f;
  tapkit::replay::ServeToolFlags s;  // --serve's own flags; the shared ones are parsed into f
  using Strings = std::vector<std::string>;
  po::options_description opts(
      "Usage: tapreplay [options] --target http://HOST:PORT IN.tap|-\n"
      "       tapreplay [options] --serve ADDRESS:PORT IN.tap...\n"
      "Sends the recorded requests of one capture (or - for standard input) to a live service\n"
      "and reports where its answers differ. Several captures: merge them first,\n"
      "tapfilter a.tap b.tap -w - | tapreplay - ...\n"
      "With --serve, answers requests with the recorded responses instead: a mock of the\n"
      "recorded service (docs/replay.md, \"Serving a capture\").\n\n"
      "Options");
  opts.add_options()("help,h", "show this help")("version", "print the version and exit")(
      "target", po::value(&f.target)->value_name("URL"),
      "where to send the requests: http://HOST:PORT (required)")(
      "keep-authority", po::bool_switch(&f.keep_authority),
      "send the recorded Host instead of the target's authority (--serve: a request passed "
      "through keeps the client's Host)");
  po::options_description pacing("Pacing (one of --speed, --rate, --max; default: --speed 1)");
  pacing.add_options()("speed", po::value(&f.speed)->value_name("X"),
                       "the recorded gaps between requests divided by X (2: twice as fast)")(
      "rate", po::value(&f.rate)->value_name("N"), "N requests per second, evenly spaced")(
      "max", po::bool_switch(&f.max), "as fast as the target answers")(
      "concurrency", po::value(&f.concurrency)->value_name("N"),
      "N lanes take the requests in order, at most N in flight (0, the default: one lane per "
      "recorded connection, its requests in their recorded order)")(
      "loop", po::value(&f.loop)->value_name("N"), "replay the input N times")(
      "sample", po::value(&f.sample)->value_name("PERCENT"),
      "replay PERCENT of the exchanges, picked by a hash of their ids (the same on every run)")(
      "sample-seed", po::value(&f.sample_seed)->value_name("N"),
      "another seed for --sample picks another sample")(
      "timeout", po::value(&f.timeout)->value_name("D"),
      "a request without its whole response after D (5s, 500ms; default 30s) failed (--serve: "
      "a request passed through to --upstream)");
  po::options_description edits("Requests");
  edits.add_options()(
      "set-header", po::value<Strings>(&f.set_headers)->value_name("'NAME: VALUE'"),
      "'Name: value' replaces (or adds) the field; it also supplies a recorded redacted one "
      "(--serve: a field of the responses served)")(
      "drop-header", po::value<Strings>(&f.drop_headers)->value_name("NAME"),
      "leave the field NAME out")(
      "rewrite-path", po::value<Strings>(&f.rewrite_paths)->value_name("'REGEX=REPL'"),
      "'REGEX=REPLACEMENT' on the path with query, every match (RE2; \\1 a group, \\= a literal "
      "= in REGEX)")("include-incomplete", po::bool_switch(&f.include_incomplete),
                     "also replay exchanges recorded without their whole response (skipped and "
                     "counted otherwise)")(
      "send-truncated-bodies", po::bool_switch(&f.send_truncated_bodies),
      "also send requests whose recorded body was not stored whole (cut at the body limit, or "
      "dropped by redaction) with the bytes stored (skipped and counted otherwise)");
  po::options_description compare("Comparison");
  compare.add_options()("no-compare", po::bool_switch(&f.no_compare),
                        "send only (load, shadowing): compare nothing")(
      "ignore-header", po::value<Strings>(&f.ignore_headers)->value_name("NAME"),
      "do not compare the field NAME, or the fields a /REGEX/ fully matches")(
      "ignore-json-path", po::value<Strings>(&f.ignore_json_paths)->value_name("POINTER"),
      "do not compare this JSON pointer in JSON bodies (RFC 6901; * any member or element)")(
      "unordered-json-path", po::value<Strings>(&f.unordered_json_paths)->value_name("POINTER"),
      "compare the array at this JSON pointer ignoring its order")(
      "no-default-ignore", po::bool_switch(&f.no_default_ignore),
      "compare the volatile fields ignored by default too (date, server, etag, ...)")(
      "rules", po::value(&f.rules_file)->value_name("FILE"),
      "noise rules from a YAML file: global, per route, per exchange id (docs/replay.md)")(
      "redact-key-file", po::value(&f.redact_key_file)->value_name("FILE"),
      "the recording's redaction key: a redacted recorded value then matches only the same "
      "live value");
  po::options_description reports("Reports");
  reports.add_options()(
      "output,o", po::value(&f.output)->default_value("text")->value_name("text|json"),
      "text (each difference with a unified diff of the bodies) or json (one object per exchange "
      "that differs or failed and a summary; docs/json.md); --serve: the log of each request")(
      "junit", po::value(&f.junit)->value_name("FILE"), "also write a JUnit XML report to FILE")(
      "write,w", po::value(&f.write)->value_name("FILE"),
      "also write the live exchanges as a capture, each naming the recorded one (- for standard "
      "output; the report then goes to standard error), redacted as taprec's (docs/security.md); "
      "--serve: the exchanges passed through to --upstream")(
      "no-redact", po::bool_switch(&f.no_redact),
      "-w writes the live exchanges unredacted (Authorization, Cookie, Set-Cookie, tokens...)")(
      "verbose,v", po::bool_switch(&f.verbose), "a line for each exchange that matched too");
  po::options_description serve(
      "Mock server (--serve; the key: method, path, query parameters in any order)");
  serve.add_options()("serve", po::value(&s.serve)->value_name("ADDRESS:PORT"),
                      "answer requests on exactly this address (127.0.0.1:8080, [::1]:8080; port "
                      "0: any free one) with the recorded responses of the inputs")(
      "match-header", po::value<Strings>(&s.match_headers)->value_name("NAME"),
      "the field NAME's values are part of the key")(
      "match-body", po::bool_switch(&s.match_body),
      "the body is part of the key (compared as JSON when both bodies are JSON)")(
      "ignore-param", po::value<Strings>(&s.ignore_params)->value_name("NAME"),
      "leave the query parameter NAME out of the key")(
      "match-host", po::bool_switch(&s.match_host),
      "the recorded host is part of the key (clients address the mock itself otherwise)")(
      "strict", po::bool_switch(&s.strict),
      "after a key's last recorded response, answer as a miss (default: the last one again)")(
      "session-header", po::value(&s.session_header)->value_name("NAME"),
      "keep the recorded sequences per value of the field NAME (one client each), not shared")(
      "miss-status", po::value(&s.miss_status)->value_name("N"),
      "the status of a request nothing matches (default 404; Tapkit-Miss says why)")(
      "upstream", po::value(&s.upstream)->value_name("URL"),
      "pass a request nothing matches to http://HOST:PORT[/PREFIX] and serve its answer (-w "
      "records them)")("delay", po::value(&s.delay)->value_name("recorded|D"),
                       "wait before answering: the recorded latency, or D (50ms, 1s); at most 1h")(
      "threads", po::value(&s.threads)->value_name("N"), "serve on N threads (1..16; default 1)")(
      "idle-timeout", po::value(&s.idle_timeout)->value_name("D"),
      "close a kept-alive connection idle for D (default 75s, as nginx's keepalive_timeout)");
  po::options_description select_opts(
      "Selection of what to replay or serve (ANDed; a repeated flag or a comma list ORs; -c counts "
      "selected exchanges)");
  tapkit::AddSelectionOptions(&select_opts, &f.selection);
  opts.add(pacing).add(edits).add(compare).add(reports).add(serve).add(select_opts);
  po::options_description hidden;
  hidden.add_options()("input", po::value(&f.inputs));
  po::variables_map vm;
  if (std::optional<int> done = tapkit::ParseCommandLine(
          {.program = "tapreplay",
           .visible = &opts,
           .hidden = &hidden,
           .positional = "input",
           .extra_parser = tapkit::SelectionExtraParser,
           .help_epilogue =
               "Exit status: 0 every exchange matched, 1 an exchange differed or a request failed "
               "after the target had answered, 2 usage or input error or a target that cannot be "
               "reached. Ctrl+C (SIGINT) or SIGTERM stops sending; the reports hold what was "
               "replayed and "
               "the exit status is 2 (not everything was sent), except when reading a stream on "
               "standard input (taprec -w - | tapreplay -), where the results decide. With "
               "--serve: 0 when stopped by SIGINT or SIGTERM, 2 a bad flag or input or an "
               "address that cannot be bound.\n"},
          argc, argv, &vm, std::cout, std::cerr)) {
    return *done;
  }
  // The flags given (bool_switch values count only when set), for the conflict checks.
  for (const auto& [name, value] : vm) {
    if (value.defaulted()) continue;
    if (const bool* b = boost::any_cast<bool>(&value.value()); b && !*b) continue;
    f.given.insert(name);
  }
  f.command_line.assign(argv, argv + argc);
  if (absl::Status mode = tapkit::replay::CheckModeFlags(f.given); !mode.ok()) {
    std::cerr << "tapreplay: " << mode.message() << "\n";
    return kExitError;
  }
  if (f.given.count("serve") > 0) {
    // The log's thread flushes each line; standard error must not wait on standard output (a
    // blocked one would hold the summary line), as std::cerr's tie to std::cout would make it.
    std::cerr.tie(nullptr);
    bool out_blocked = false;
    const int code = tapkit::replay::RunServeTool(tapkit::replay::WithSharedFlags(std::move(s), f),
                                                  std::cout, std::cerr, &out_blocked);
    // A thread is still blocked writing the log to standard output: a normal exit would block
    // too, flushing it. Everything else (the -w capture, the summary) is written.
    if (out_blocked) {
      std::cerr.flush();
      std::_Exit(code);
    }
    return code;
  }
  return tapkit::replay::RunReplayTool(f, std::cout, std::cerr);
}
