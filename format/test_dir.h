// test_dir.h: a directory of the test process's own for the files a test writes.
//
// ::testing::TempDir() is $TEST_TMPDIR or "/tmp/": a file named TempDir() + "/crashed.tap" is the
// same file for every process running that test at once (ctest -j, another build of the tests in
// another worktree), and stays behind afterwards. TestDir() is a directory made by mkdtemp under
// TempDir() at its first call, removed with everything in it when the process exits (normally;
// a crashed test leaves it for inspection). ctest runs each test of a gtest_discover_tests binary
// in a process of its own, so there it is one directory per test.
//
// Header-only, so that every test binary can use it without a link dependency.
// Thread-safety: thread-safe (a function-local static).
#ifndef TAPKIT_FORMAT_TEST_DIR_H_
#define TAPKIT_FORMAT_TEST_DIR_H_

#include <gtest/gtest.h>
#include <unistd.h>

#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <string>
#include <system_error>

namespace tapkit::testing {

inline const std::string& TestDir() {
  struct Dir {
    std::string path;
    pid_t owner = ::getpid();  // a forked child that exits must not remove its parent's files
    Dir() {
      path = ::testing::TempDir();
      if (path.empty() || path.back() != '/') path += '/';
      path += "tapkit-test.XXXXXX";
      if (::mkdtemp(path.data()) == nullptr) {
        std::perror(("mkdtemp " + path).c_str());
        std::abort();
      }
    }
    ~Dir() {
      std::error_code ec;
      if (::getpid() == owner) std::filesystem::remove_all(path, ec);
    }
  };
  static const Dir dir;
  return dir.path;
}

// A fresh directory (mkdtemp) under TestDir() for one test or fixture, named PREFIX.XXXXXX,
// removed with everything in it when the object goes. path() is empty if mkdtemp failed (the
// constructor then records a test failure).
class ScopedTempDir {
 public:
  explicit ScopedTempDir(const std::string& prefix = "dir") {
    std::string t = TestDir() + "/" + prefix + ".XXXXXX";
    if (::mkdtemp(t.data()) != nullptr) {
      path_ = t;
    } else {
      ADD_FAILURE() << "mkdtemp " << t << " failed";
    }
  }
  ~ScopedTempDir() {
    std::error_code ec;
    if (!path_.empty()) std::filesystem::remove_all(path_, ec);
  }
  ScopedTempDir(const ScopedTempDir&) = delete;
  ScopedTempDir& operator=(const ScopedTempDir&) = delete;
  const std::string& path() const { return path_; }

 private:
  std::string path_;
};

}  // namespace tapkit::testing

#endif  // TAPKIT_FORMAT_TEST_DIR_H_
