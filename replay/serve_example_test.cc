// The mock-server example of issue 13, as a user would write it: a client's test that needs the
// shop API it talks to, without the shop. The API's traffic is recorded once from the real
// service (here nginx from fixtures/serve/nginx-shop.conf.in, recorded by taprec -i lo while curl
// talks to it); the service is stopped; the capture is served by a MockServer for the test's
// lifetime (replay/serve_testing.h), and the client under test (ShopClient below: libcurl and
// nlohmann::json, as a project's own client would be) runs against it.
//
// The independent source: what curl received from nginx while recording (its output files): the
// client must read the same values from the mock, the order id nginx made up at random included,
// and the job's states in the order nginx answered them. A route that was never recorded gets
// 404 with the field Tapkit-Miss, which names the closest recorded request.
//
// Capturing on lo needs root with CAP_NET_RAW: without it the test skips with a message; without
// nginx or curl too, but under CI=true that is a failure. nginx listens on 127.0.101.1.
#include <curl/curl.h>
#include <gtest/gtest-spi.h>
#include <gtest/gtest.h>

#include <algorithm>
#include <cstdint>
#include <memory>
#include <string>
#include <utility>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/strings/ascii.h"
#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "format/test_dir.h"
#include "format/testutil.h"
#include "nlohmann/json.hpp"
#include "replay/nginx_testutil.h"
#include "replay/record_testutil.h"
#include "replay/serve.h"
#include "replay/serve_testing.h"

namespace {

// ---- The client under test: what a project's own code would be. ----

struct HttpAnswer {
  long status = 0;
  std::vector<std::pair<std::string, std::string>> headers;  // in order, names as received
  std::string body;
  // The first field named `name` (case-insensitive), or "".
  std::string Header(const std::string& name) const {
    for (const auto& [n, v] : headers) {
      if (absl::EqualsIgnoreCase(n, name)) return v;
    }
    return "";
  }
};

size_t CollectBody(char* data, size_t size, size_t n, void* out) {
  static_cast<std::string*>(out)->append(data, size * n);
  return size * n;
}

size_t CollectHeader(char* data, size_t size, size_t n, void* out) {
  absl::string_view line(data, size * n);
  if (size_t colon = line.find(':'); colon != absl::string_view::npos) {
    static_cast<HttpAnswer*>(out)->headers.emplace_back(
        std::string(line.substr(0, colon)),
        std::string(absl::StripAsciiWhitespace(line.substr(colon + 1))));
  }
  return size * n;
}

// One request with libcurl: `body` is sent as JSON when not empty (POST), else a GET.
absl::StatusOr<HttpAnswer> Http(const std::string& url, const std::string& json_body = "") {
  std::unique_ptr<CURL, decltype(&curl_easy_cleanup)> curl(curl_easy_init(), curl_easy_cleanup);
  if (!curl) return absl::InternalError("curl_easy_init failed");
  HttpAnswer answer;
  curl_slist* fields = nullptr;
  curl_easy_setopt(curl.get(), CURLOPT_URL, url.c_str());
  curl_easy_setopt(curl.get(), CURLOPT_WRITEFUNCTION, CollectBody);
  curl_easy_setopt(curl.get(), CURLOPT_WRITEDATA, &answer.body);
  curl_easy_setopt(curl.get(), CURLOPT_HEADERFUNCTION, CollectHeader);
  curl_easy_setopt(curl.get(), CURLOPT_HEADERDATA, &answer);
  curl_easy_setopt(curl.get(), CURLOPT_TIMEOUT_MS, 10'000L);
  if (!json_body.empty()) {
    fields = curl_slist_append(fields, "Content-Type: application/json");
    curl_easy_setopt(curl.get(), CURLOPT_HTTPHEADER, fields);
    curl_easy_setopt(curl.get(), CURLOPT_POSTFIELDS, json_body.c_str());
  }
  CURLcode rc = curl_easy_perform(curl.get());
  curl_slist_free_all(fields);
  if (rc != CURLE_OK)
    return absl::UnavailableError(absl::StrCat(url, ": ", curl_easy_strerror(rc)));
  curl_easy_getinfo(curl.get(), CURLINFO_RESPONSE_CODE, &answer.status);
  return answer;
}

// The body of a 2xx answer as JSON (non-throwing parse), or an error naming the URL.
absl::StatusOr<nlohmann::json> JsonOf(const std::string& url, const absl::StatusOr<HttpAnswer>& a) {
  if (!a.ok()) return a.status();
  if (a->status < 200 || a->status > 299) {
    return absl::NotFoundError(absl::StrCat(url, ": HTTP ", a->status, " ", a->body));
  }
  nlohmann::json json = nlohmann::json::parse(a->body, nullptr, /*allow_exceptions=*/false);
  if (json.is_discarded()) return absl::DataLossError(absl::StrCat(url, ": not JSON"));
  return json;
}

// The string or integer at `pointer` ("/price/currency") in a JSON document, or an error naming
// the URL and the pointer when it is absent or of another type (no exception on the data path).
absl::StatusOr<std::string> StringAt(const std::string& url, const nlohmann::json& json,
                                     const std::string& pointer) {
  nlohmann::json::json_pointer p(pointer);
  if (!json.contains(p) || !json.at(p).is_string()) {
    return absl::DataLossError(absl::StrCat(url, ": no string at ", pointer));
  }
  return json.at(p).get<std::string>();
}
absl::StatusOr<int64_t> IntegerAt(const std::string& url, const nlohmann::json& json,
                                  const std::string& pointer) {
  nlohmann::json::json_pointer p(pointer);
  if (!json.contains(p) || !json.at(p).is_number_integer()) {
    return absl::DataLossError(absl::StrCat(url, ": no integer at ", pointer));
  }
  return json.at(p).get<int64_t>();
}

struct Price {
  std::string sku;
  int64_t amount = 0;  // cents
  std::string currency;
  bool operator==(const Price&) const = default;
};

// GET /api/price?sku=SKU.
absl::StatusOr<Price> FetchPrice(const std::string& base_url, const std::string& sku) {
  std::string url = absl::StrCat(base_url, "/api/price?sku=", sku);
  absl::StatusOr<nlohmann::json> json = JsonOf(url, Http(url));
  if (!json.ok()) return json.status();
  absl::StatusOr<std::string> sku_echoed = StringAt(url, *json, "/sku");
  absl::StatusOr<int64_t> amount = IntegerAt(url, *json, "/price/amount");
  absl::StatusOr<std::string> currency = StringAt(url, *json, "/price/currency");
  for (const absl::Status& s : {sku_echoed.status(), amount.status(), currency.status()}) {
    if (!s.ok()) return s;
  }
  return Price{*sku_echoed, *amount, *currency};
}

// POST /api/orders: the new order's id.
absl::StatusOr<std::string> PlaceOrder(const std::string& base_url, const std::string& sku,
                                       int quantity) {
  std::string url = base_url + "/api/orders";
  nlohmann::json order = {{"sku", sku}, {"quantity", quantity}};
  absl::StatusOr<nlohmann::json> json = JsonOf(url, Http(url, order.dump()));
  if (!json.ok()) return json.status();
  return StringAt(url, *json, "/order");
}

// Polls GET /api/jobs/ID until its state is "done" (at most `max_polls` times): the states seen.
absl::StatusOr<std::vector<std::string>> WaitForJob(const std::string& base_url, int id,
                                                    int max_polls) {
  std::string url = absl::StrCat(base_url, "/api/jobs/", id);
  std::vector<std::string> states;
  while (states.empty() || states.back() != "done") {
    if (static_cast<int>(states.size()) == max_polls) {
      return absl::DeadlineExceededError(absl::StrCat(url, ": not done after ", max_polls));
    }
    absl::StatusOr<nlohmann::json> json = JsonOf(url, Http(url));
    if (!json.ok()) return json.status();
    absl::StatusOr<std::string> state = StringAt(url, *json, "/state");
    if (!state.ok()) return state.status();
    states.push_back(*state);
  }
  return states;
}

// ---- The test. ----

using tapkit::replay::MockServer;
using tapkit::replay::ServeEvent;
using tapkit::replay::testing::NoMisses;
using tapkit::replay::testing::ServeCaptureForTest;
using tapkit::replay::testing::ServedEvents;
using tapkit::replay::testing::ServeOptionsForTest;
using ::testing::ElementsAre;
using ::testing::Field;
using ::testing::HasSubstr;
using ::testing::Not;
using ::testing::SizeIs;
using ::testing::UnorderedElementsAre;

constexpr char kShopAddress[] = "127.0.101.1";

// What curl saved in TestDir()/NAME: the JSON object nginx sent (an empty object when it is not
// one, so that every field below is missing and compares unequal).
nlohmann::json Saved(const std::string& name) {
  nlohmann::json json = nlohmann::json::parse(
      tapkit::testing::ReadFileBytes(tapkit::testing::TestDir() + "/" + name), nullptr,
      /*allow_exceptions=*/false);
  return json.is_object() ? json : nlohmann::json::object();
}

TEST(ServeExample, TheClientRunsAgainstTheRecordedShop) {
  TAPKIT_REQUIRE_LOOPBACK_CAPTURE("serve example_test");
  TAPKIT_REQUIRE_TOOL("nginx");
  TAPKIT_REQUIRE_TOOL("curl");
  const std::string dir = tapkit::testing::TestDir();

  // Once: record the real shop while curl uses it (three connections, one per command line).
  std::string tap = dir + "/shop.tap";
  {
    tapkit::testing::Nginx shop(
        kShopAddress, dir + "/nginx",
        tapkit::testing::ReadFileBytes(TAPKIT_SOURCE_DIR "/fixtures/serve/nginx-shop.conf.in"));
    ASSERT_TRUE(shop.Start()) << shop.StartError();
    const std::string base = shop.url();
    ASSERT_TRUE(tapkit::testing::RecordLoopback(TAPREC_BIN, kShopAddress, shop.port(), tap, [&] {
      using tapkit::testing::Sh;
      EXPECT_EQ(
          Sh(absl::StrCat("cd '", dir, "' && curl -sS -o price-a1.json '", base,
                          "/api/price?sku=A-1' -o price-b2.json '", base, "/api/price?sku=B-2'")),
          0);
      EXPECT_EQ(
          Sh(absl::StrCat(
              "cd '", dir, "' && curl -sS -o order.json ", "-H 'Content-Type: application/json' ",
              "--data-binary '{\"sku\":\"A-1\",\"quantity\":2}' ", base, "/api/orders")),
          0);
      EXPECT_EQ(Sh(absl::StrCat("cd '", dir, "' && curl -sS -o job-1.json -o job-2.json ",
                                "-o job-3.json ", base, "/api/jobs/7 ", base, "/api/jobs/7 ", base,
                                "/api/jobs/7")),
                0);
    }));
    ASSERT_THAT(shop.AccessLog(6), SizeIs(6));
    shop.Stop();
    EXPECT_FALSE(tapkit::testing::CanConnect(kShopAddress, shop.port())) << "the shop is gone";
  }
  // What nginx answered (the fixture's values, checked by hand: sku A-1 costs 1999, B-2 450).
  ASSERT_EQ(Saved("price-a1.json")["price"]["amount"], 1999);
  ASSERT_EQ(Saved("price-b2.json")["price"]["amount"], 450);
  ASSERT_TRUE(Saved("order.json")["order"].is_string());
  ASSERT_EQ(Saved("order.json")["order"].get<std::string>().size(), 32u);  // hex digits
  ASSERT_EQ(Saved("job-1.json")["state"], "queued");

  // The test a user writes: the capture serves the shop for the lifetime of `mock`.
  ServedEvents events;  // outlives the server
  std::unique_ptr<MockServer> mock =
      ServeCaptureForTest({tap}, ServeOptionsForTest(), events.Callbacks());
  ASSERT_NE(mock, nullptr);
  EXPECT_EQ(mock->recorded(), 6u);
  const std::string url = mock->url();

  // The values the client reads are those nginx sent while recording.
  for (const auto& [sku, saved] : {std::pair{"A-1", "price-a1.json"}, {"B-2", "price-b2.json"}}) {
    nlohmann::json recorded = Saved(saved);
    absl::StatusOr<Price> price = FetchPrice(url, sku);
    ASSERT_TRUE(price.ok()) << price.status();
    EXPECT_EQ(
        nlohmann::json({{"sku", price->sku},
                        {"price", {{"amount", price->amount}, {"currency", price->currency}}}}),
        recorded);
  }
  absl::StatusOr<std::string> order = PlaceOrder(url, "A-1", 2);
  ASSERT_TRUE(order.ok()) << order.status();
  EXPECT_EQ(nlohmann::json(*order), Saved("order.json")["order"]);

  // The job's recorded answers in order, then the last one again.
  absl::StatusOr<std::vector<std::string>> states = WaitForJob(url, 7, 10);
  ASSERT_TRUE(states.ok()) << states.status();
  EXPECT_EQ(nlohmann::json(*states),
            nlohmann::json::array({Saved("job-1.json")["state"], Saved("job-2.json")["state"],
                                   Saved("job-3.json")["state"]}));
  EXPECT_THAT(*states, ElementsAre("queued", "running", "done"));
  absl::StatusOr<std::vector<std::string>> again = WaitForJob(url, 7, 10);
  ASSERT_TRUE(again.ok()) << again.status();
  EXPECT_THAT(*again, ElementsAre("done"));

  // A request the capture has no answer for: 404 with Tapkit-Miss naming the closest recorded one.
  absl::StatusOr<HttpAnswer> stock = Http(url + "/api/stock");
  ASSERT_TRUE(stock.ok()) << stock.status();
  EXPECT_EQ(stock->status, 404);
  EXPECT_THAT(stock->Header("Tapkit-Miss"), HasSubstr("no recorded request matches; closest: "));
  EXPECT_THAT(stock->Header("Tapkit-Miss"), HasSubstr("(differs on path)"));
  EXPECT_THAT(stock->body, HasSubstr("GET /api/stock"));
  absl::StatusOr<Price> unknown = FetchPrice(url, "C-3");
  EXPECT_EQ(unknown.status().code(), absl::StatusCode::kNotFound) << unknown.status();
  absl::StatusOr<HttpAnswer> unknown_answer = Http(url + "/api/price?sku=C-3");
  ASSERT_TRUE(unknown_answer.ok()) << unknown_answer.status();
  EXPECT_EQ(unknown_answer->status, 404);
  EXPECT_THAT(unknown_answer->Header("Tapkit-Miss"), HasSubstr("closest: GET /api/price?sku="));
  EXPECT_THAT(unknown_answer->Header("Tapkit-Miss"), HasSubstr("(differs on query parameter sku)"));

  // What the mock served, as its events say: 2 prices, 1 order, 4 job polls, then 3 misses.
  ASSERT_TRUE(events.AwaitCount(10)) << ::testing::PrintToString(events.All());
  std::vector<ServeEvent> jobs;
  for (const ServeEvent& e : events.All()) {
    if (e.target == "/api/jobs/7") jobs.push_back(e);
  }
  ASSERT_THAT(jobs, SizeIs(4));
  // In the order the requests arrived (the events' order may differ from it by a hair).
  std::stable_sort(jobs.begin(), jobs.end(),
                   [](const ServeEvent& a, const ServeEvent& b) { return a.time_ns < b.time_ns; });
  for (size_t i = 0; i < jobs.size(); ++i) {
    EXPECT_EQ(jobs[i].kind, ServeEvent::Kind::kHit) << ::testing::PrintToString(jobs[i]);
    EXPECT_EQ(jobs[i].position, std::min<size_t>(i + 1, 3)) << ::testing::PrintToString(jobs[i]);
    EXPECT_EQ(jobs[i].sequence_length, 3u);
  }
  EXPECT_THAT(events.Misses(),
              UnorderedElementsAre(Field(&ServeEvent::target, "/api/stock"),
                                   Field(&ServeEvent::target, "/api/price?sku=C-3"),
                                   Field(&ServeEvent::target, "/api/price?sku=C-3")));
  EXPECT_EQ(mock->stats().hits, 7u);
  EXPECT_EQ(mock->stats().misses, 3u);
  // NoMisses() fails on them, and its message says which requests missed and why.
  EXPECT_THAT(events.All(), Not(NoMisses()));
  ::testing::StringMatchResultListener why;
  EXPECT_FALSE(::testing::ExplainMatchResult(NoMisses(), events.All(), &why));
  EXPECT_THAT(why.str(), HasSubstr("3 of 10 requests were not answered from the capture"));
  EXPECT_THAT(why.str(), HasSubstr("MISS 404 GET /api/stock  no recorded request matches"));
  std::vector<ServeEvent> recorded_routes;
  for (const ServeEvent& e : events.All()) {
    if (e.target != "/api/stock" && e.target != "/api/price?sku=C-3") recorded_routes.push_back(e);
  }
  EXPECT_THAT(recorded_routes, NoMisses());
}

}  // namespace
