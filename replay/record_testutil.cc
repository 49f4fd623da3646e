#include "replay/record_testutil.h"

#include <signal.h>
#include <spawn.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <thread>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"

namespace tapkit::testing {

std::string CannotCaptureOnLoopback() {
  if (::geteuid() != 0) return "capturing on lo needs root";
  std::ifstream status("/proc/self/status");
  for (std::string line; std::getline(status, line);) {
    if (line.rfind("CapEff:", 0) == 0 &&
        !(std::stoull(line.substr(7), nullptr, 16) & (1ull << 13))) {  // CAP_NET_RAW is 13
      return "capturing on lo needs CAP_NET_RAW";
    }
  }
  return "";
}

bool WaitFor(const std::function<bool()>& done) {
  for (int i = 0; i < 600; ++i) {
    if (done()) return true;
    std::this_thread::sleep_for(std::chrono::milliseconds(50));
  }
  return false;
}

int Sh(const std::string& command) {
  int status = std::system(command.c_str());
  return WIFEXITED(status) ? WEXITSTATUS(status) : -1;
}

::testing::AssertionResult RecordLoopback(const std::string& taprec, const std::string& address,
                                          uint16_t port, const std::string& tap,
                                          const std::function<void()>& traffic) {
  // taprec's opening the file is the sign that it captures: an old file would say so too early.
  std::error_code ec;
  std::filesystem::remove(tap, ec);
  std::string filter = absl::StrCat("tcp and host ", address, " and port ", port);
  std::vector<std::string> args = {taprec, "-i", "lo", "-Z", "root", "-w", tap, filter};
  std::vector<char*> argv;
  for (std::string& a : args) argv.push_back(a.data());
  argv.push_back(nullptr);
  pid_t pid = 0;
  if (::posix_spawn(&pid, taprec.c_str(), nullptr, nullptr, argv.data(), environ) != 0) {
    return ::testing::AssertionFailure() << "cannot start " << taprec;
  }
  int status = 0;
  bool exited = false;
  bool open = WaitFor([&] {
    if (std::filesystem::exists(tap)) return true;
    exited = ::waitpid(pid, &status, WNOHANG) == pid;
    return exited;
  });
  if (!open || !std::filesystem::exists(tap)) {
    if (!exited) {
      ::kill(pid, SIGKILL);
      ::waitpid(pid, &status, 0);
    }
    return ::testing::AssertionFailure()
           << "taprec did not open " << tap << " (status " << status << ")";
  }
  traffic();
  std::this_thread::sleep_for(std::chrono::seconds(1));  // the last packets reach taprec
  ::kill(pid, SIGINT);
  ::waitpid(pid, &status, 0);
  if (!WIFEXITED(status) || WEXITSTATUS(status) != 0) {
    return ::testing::AssertionFailure() << "taprec ended with status " << status;
  }
  return ::testing::AssertionSuccess();
}

std::vector<std::string> RequestLines(const std::vector<std::string>& access_log) {
  std::vector<std::string> out;
  for (const std::string& line : access_log) {
    std::vector<std::string> quoted = absl::StrSplit(line, '"');
    if (quoted.size() > 1) out.push_back(quoted[1]);
  }
  std::sort(out.begin(), out.end());
  return out;
}

}  // namespace tapkit::testing
