#include "replay/nginx_testutil.h"

#include <unistd.h>

#include <chrono>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <thread>
#include <utility>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_replace.h"
#include "absl/strings/str_split.h"
#include "format/testutil.h"

namespace tapkit::testing {
namespace fs = std::filesystem;

namespace {

constexpr auto kPoll = std::chrono::milliseconds(20);

std::string Conf(const std::string& work) { return work + "/nginx.conf"; }

}  // namespace

Nginx::Nginx(std::string address, std::string work, std::string conf)
    : address_(std::move(address)), work_(std::move(work)), conf_template_(std::move(conf)) {}

Nginx::~Nginx() { Stop(); }

bool Nginx::Start() {
  Stop();
  std::error_code ec;
  fs::remove_all(work_, ec);
  fs::create_directories(work_);
  port_ = FreePort(address_);
  port2_ = FreePort(address_);
  std::string conf = absl::StrReplaceAll(conf_template_,
                                         {{"@NGINX_USER@", geteuid() == 0 ? "user root root;" : ""},
                                          {"@WORK@", work_},
                                          {"@ADDRESS@", address_},
                                          {"@PORT@", std::to_string(port_)},
                                          {"@PORT2@", std::to_string(port2_)}});
  std::ofstream(Conf(work_)) << conf;
  if (std::system(absl::StrCat("nginx -e '", work_, "/error.log' -c '", Conf(work_), "' 2>'", work_,
                               "/start.err'")
                      .c_str()) != 0) {
    return false;
  }
  started_ = true;
  for (int i = 0; i < 1500; ++i) {  // 30 s
    if (fs::exists(work_ + "/nginx.pid") && CanConnect(address_, port_)) return true;
    std::this_thread::sleep_for(kPoll);
  }
  return false;
}

void Nginx::Stop() {
  if (!started_) return;
  std::system(
      absl::StrCat("nginx -e '", work_, "/error.log' -c '", Conf(work_), "' -s stop 2>/dev/null")
          .c_str());
  started_ = false;
  for (int i = 0; i < 100 && fs::exists(work_ + "/nginx.pid"); ++i) {
    std::this_thread::sleep_for(kPoll);
  }
}

std::string Nginx::StartError() const {
  return absl::StrCat(ReadFileBytes(work_ + "/start.err"), ReadFileBytes(work_ + "/error.log"));
}

std::string Nginx::authority() const { return absl::StrCat(address_, ":", port_); }
std::string Nginx::url() const { return absl::StrCat("http://", address_, ":", port_); }

std::vector<std::string> Nginx::AccessLog(size_t want) const {
  std::vector<std::string> lines;
  for (int i = 0; i < 250; ++i) {  // 5 s
    lines.clear();
    std::ifstream in(work_ + "/access.log");
    for (std::string line; std::getline(in, line);) lines.push_back(line);
    if (lines.size() >= want) break;
    std::this_thread::sleep_for(kPoll);
  }
  return lines;
}

void Nginx::ClearAccessLog() const { std::ofstream(work_ + "/access.log", std::ios::trunc); }

}  // namespace tapkit::testing
