// Redaction key files: read whole, refused when they are not a private regular file of a
// sensible size (as ssh refuses a private key others can read), never by throwing.
#include "format/redact.h"

#include <gtest/gtest.h>
#include <sys/stat.h>
#include <unistd.h>

#include <fstream>
#include <string>

#include "format/test_dir.h"

namespace tapkit {
namespace {

std::string Write(const std::string& path, const std::string& bytes, mode_t mode) {
  {
    std::ofstream f(path, std::ios::binary);
    f << bytes;
  }
  EXPECT_EQ(::chmod(path.c_str(), mode), 0);
  return path;
}

TEST(RedactionKey, PrivateFileIsTheKey) {
  testing::ScopedTempDir d("redact_test");
  std::string key(32, '\x5a');
  absl::StatusOr<std::string> k = ReadRedactionKey(Write(d.path() + "/k", key, 0600));
  ASSERT_TRUE(k.ok()) << k.status();
  EXPECT_EQ(*k, key);
}

TEST(RedactionKey, BadFilesAreRefusedNamingThem) {
  testing::ScopedTempDir d("redact_test");
  const std::string key(32, 'k');
  struct Case {
    std::string path;
    absl::StatusCode code;
    std::string words;
  } cases[] = {
      {d.path() + "/missing", absl::StatusCode::kNotFound, "no such file"},
      {d.path(), absl::StatusCode::kInvalidArgument, "not a regular file"},  // a directory
      {Write(d.path() + "/open", key, 0644), absl::StatusCode::kPermissionDenied,
       "mode 0644: group or others can read or write the key; chmod 600 it"},
      {Write(d.path() + "/short", "short", 0600), absl::StatusCode::kInvalidArgument,
       "16 bytes to 64 KiB, the file has 5"},
      {Write(d.path() + "/long", std::string(70 << 10, 'x'), 0600),
       absl::StatusCode::kInvalidArgument, "the file has more"},
  };
  for (const Case& c : cases) {
    absl::StatusOr<std::string> k = ReadRedactionKey(c.path);
    ASSERT_FALSE(k.ok()) << c.path;
    EXPECT_EQ(k.status().code(), c.code) << k.status();
    EXPECT_NE(k.status().message().find(c.path), std::string::npos) << k.status();
    EXPECT_NE(k.status().message().find(c.words), std::string::npos) << k.status();
  }
  // A FIFO is refused at once, not waited on.
  std::string fifo = d.path() + "/fifo";
  ASSERT_EQ(::mkfifo(fifo.c_str(), 0600), 0);
  EXPECT_EQ(ReadRedactionKey(fifo).status().code(), absl::StatusCode::kInvalidArgument);
  if (::geteuid() == 0) {
    std::string theirs = Write(d.path() + "/theirs", key, 0600);
    ASSERT_EQ(::chown(theirs.c_str(), 65534, 65534), 0);
    absl::StatusOr<std::string> k = ReadRedactionKey(theirs);
    EXPECT_EQ(k.status().code(), absl::StatusCode::kPermissionDenied);
    EXPECT_NE(k.status().message().find("owned by uid 65534"), std::string::npos) << k.status();
  }
}

}  // namespace
}  // namespace tapkit
