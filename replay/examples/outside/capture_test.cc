// A service's regression test against a recorded capture, and the same capture as the mock of
// that service for its clients' tests, built outside tapkit against its installed package
// (replay/outside_test.py starts the service: nginx from fixtures/replay/nginx-base.conf.in, whose
// GET /health answers {"status":"ok"}).
//
// In a real project the capture is a file: the one attached to a bug report, recorded with
// `taprec -i IFACE -w bug-1234.tap` or from a live tap. To run anywhere, this example writes its
// captures with tapkit's Writer: what the service answered when it was recorded.
//
// The mock's test checks the mock with a client of its own (libcurl, not tapkit): the mock must
// give that client what the service gave it when the capture was made.
#include <curl/curl.h>

#include <cstdlib>
#include <memory>
#include <string>

#include "format/writer.h"
#include "gtest/gtest.h"
#include "replay/replay.h"
#include "replay/serve.h"
#include "replay/serve_testing.h"
#include "replay/testing.h"

namespace {

// The service under test: TAPKIT_TARGET, as the test driver passes it.
std::string Target() {
  const char* target = std::getenv("TAPKIT_TARGET");
  return target != nullptr ? target : "http://127.0.0.1:8080";
}

// A capture of one recorded exchange: GET /health answered 200 with `body` (JSON).
std::string WriteCapture(const std::string& name, const std::string& body) {
  std::string path = ::testing::TempDir() + name;
  tapkit::Exchange x;
  x.sort_key_ns = 1'700'000'000'000'000'000;
  x.response_start_ns = x.response_end_ns = x.request_end_ns = 1'000'000;
  x.stream_id = 1;
  x.source = {tapkit::IpAddress::V4(127, 0, 0, 1), 40000, {}};
  x.destination = {tapkit::IpAddress::V4(127, 0, 0, 1), 8080, {}};
  tapkit::Request& request = x.request.emplace();
  request.version = tapkit::HttpVersion::kHttp11;
  request.method = "GET";
  request.path = "/health";
  request.headers = {{"Host", "127.0.0.1:8080"}};
  tapkit::Response& response = x.response.emplace();
  response.version = tapkit::HttpVersion::kHttp11;
  response.status = 200;
  response.reason = "OK";
  response.headers = {{"Content-Type", "application/json"},
                      {"Content-Length", std::to_string(body.size())}};
  response.body = {body, body.size(), false};
  auto file = tapkit::OpenWritableFile(path);
  if (!file.ok()) {
    ADD_FAILURE() << file.status();
    return path;
  }
  tapkit::CaptureMetadata metadata;
  metadata.writer_name = "capture_test";
  metadata.capture_points = {{0, "file", "shop", {}, {}}};
  auto writer = tapkit::Writer::Open(std::move(*file), metadata);
  if (!writer.ok()) {
    ADD_FAILURE() << writer.status();
    return path;
  }
  if (absl::Status s = (*writer)->Append(x); !s.ok()) ADD_FAILURE() << s;
  if (absl::Status s = (*writer)->Close(); !s.ok()) ADD_FAILURE() << s;
  return path;
}

// What a client of the service receives: status, Content-Type and body of a GET with libcurl
// (status 0 when the request failed; the error is then the body).
struct Answer {
  long status = 0;
  std::string content_type;
  std::string body;
};

size_t AppendBody(char* data, size_t size, size_t n, void* body) {
  static_cast<std::string*>(body)->append(data, size * n);
  return size * n;
}

Answer Get(const std::string& url) {
  Answer answer;
  CURL* curl = curl_easy_init();
  if (curl == nullptr) return {0, "", "curl_easy_init failed"};
  curl_easy_setopt(curl, CURLOPT_URL, url.c_str());
  curl_easy_setopt(curl, CURLOPT_WRITEFUNCTION, AppendBody);
  curl_easy_setopt(curl, CURLOPT_WRITEDATA, &answer.body);
  curl_easy_setopt(curl, CURLOPT_TIMEOUT_MS, 10'000L);
  if (CURLcode rc = curl_easy_perform(curl); rc != CURLE_OK) {
    answer.body = url + ": " + curl_easy_strerror(rc);
  } else {
    curl_easy_getinfo(curl, CURLINFO_RESPONSE_CODE, &answer.status);
    const char* type = nullptr;
    curl_easy_getinfo(curl, CURLINFO_CONTENT_TYPE, &type);
    if (type != nullptr) answer.content_type = type;
  }
  curl_easy_cleanup(curl);
  return answer;
}

// [README: test]
TEST(Shop, AnswersAsRecorded) {
  std::string capture = WriteCapture("health.tap", R"({"status": "ok"})");
  tapkit::replay::ReplayOptions options;
  options.compare_options.flags.ignore_headers = {"x-trace-id"};  // noise of our own
  ASSERT_REPLAY_MATCHES(capture, Target(), options);
}

TEST(Shop, ReportsTheRouteThatChanged) {
  std::string capture = WriteCapture("degraded.tap", R"({"status": "degraded"})");
  absl::StatusOr<tapkit::replay::ReplayResult> result =
      tapkit::replay::ReplayCapture(capture, Target());
  ASSERT_TRUE(result.ok()) << result.status();
  EXPECT_THAT(*result, tapkit::replay::testing::OnlyDiffersOn({"GET /health"}));
}

TEST(Shop, CaptureServedAsAMock) {
  // Recording: what the shop answers our client; its body becomes the capture's answer.
  Answer shop = Get(Target() + "/health");
  ASSERT_EQ(shop.status, 200) << shop.body;
  std::string capture = WriteCapture("mock.tap", shop.body);

  tapkit::replay::testing::ServedEvents events;  // outlives the server
  std::unique_ptr<tapkit::replay::MockServer> mock = tapkit::replay::testing::ServeCaptureForTest(
      {capture}, tapkit::replay::testing::ServeOptionsForTest(), events.Callbacks());
  ASSERT_NE(mock, nullptr);
  Answer served = Get(mock->url() + "/health");  // the mock answers our client as the shop did
  EXPECT_EQ(served.status, shop.status);
  EXPECT_EQ(served.content_type, shop.content_type);
  EXPECT_EQ(served.body, shop.body);
  mock->Stop();  // no event comes after Stop
  EXPECT_THAT(events.All(), ::testing::SizeIs(1));  // NoMisses() alone passes on no request
  EXPECT_THAT(events.All(), tapkit::replay::testing::NoMisses());
}
// [README: end]

}  // namespace
