// match_test.cc: RecordedResponses on hand-built exchanges; every expected value below was worked
// out by hand from the rules in match.h (RFC 3986 percent-encoding, the issue's sequence example).
#include "replay/match.h"

#include <gtest/gtest.h>

#include <string>
#include <thread>
#include <vector>

#include "format/content_coding.h"
#include "format/redact.h"

namespace tapkit {
namespace {

Request Req(std::string method, std::string path, std::vector<Header> headers = {},
            std::string body = "", std::string authority = "") {
  Request r;
  r.version = HttpVersion::kHttp11;
  r.method = std::move(method);
  r.path = std::move(path);
  r.authority = std::move(authority);
  r.headers = std::move(headers);
  r.body.data = std::move(body);
  r.body.length = r.body.data.size();
  return r;
}

// A complete exchange answering `request` with a body naming the answer.
Exchange Recorded(Request request, std::string answer) {
  Exchange x;
  x.request = std::move(request);
  x.response.emplace();
  x.response->version = HttpVersion::kHttp11;
  x.response->status = 200;
  x.response->body.data = std::move(answer);
  x.response->body.length = x.response->body.data.size();
  return x;
}

// An exchange with a response and no request (kNoRequest): not servable.
Exchange Skipped() {
  Exchange x = Recorded(Req("GET", "/"), "unpaired");
  x.request.reset();
  x.completion = Completion::kNoRequest;
  return x;
}

// The answer served for `request`, "miss" or "exhausted".
std::string Serve(RecordedResponses& rr, const Request& request, std::string_view session = {}) {
  LookupResult r = rr.Lookup(request, session);
  switch (r.outcome) {
    case LookupResult::Outcome::kHit:
      return r.exchange->response->body.data;
    case LookupResult::Outcome::kMiss:
      return "miss";
    case LookupResult::Outcome::kExhausted:
      return "exhausted";
  }
  return "?";
}

TEST(MatchTest, QueryOrderIgnoredAndPercentDecoded) {
  std::vector<Exchange> xs;
  xs.push_back(Recorded(Req("GET", "/search?q=a%20b&page=2&tag=x&tag=y"), "found"));
  RecordedResponses rr(std::move(xs), {});
  EXPECT_EQ(Serve(rr, Req("GET", "/search?page=2&tag=y&q=a%20b&tag=x")), "found");
  // %20 and %2520: the second decodes to "%20", not " ".
  EXPECT_EQ(Serve(rr, Req("GET", "/search?page=2&tag=y&q=a%2520b&tag=x")), "miss");
  // Encoded letters and lower-case hex name the same parameter (RFC 3986 section 6.2.2).
  EXPECT_EQ(Serve(rr, Req("GET", "/search?%70age=2&tag=x&q=a%20b&tag=%79")), "found");
  // A multiset: one tag=x is not two.
  EXPECT_EQ(Serve(rr, Req("GET", "/search?page=2&tag=x&q=a%20b")), "miss");
  EXPECT_EQ(Serve(rr, Req("POST", "/search?q=a%20b&page=2&tag=x&tag=y")), "miss");
  // A '%' without two hex digits is kept as it is.
  std::vector<Exchange> zs;
  zs.push_back(Recorded(Req("GET", "/a?x=%zz&y=%4"), "odd"));
  RecordedResponses odd(std::move(zs), {});
  EXPECT_EQ(Serve(odd, Req("GET", "/a?y=%4&x=%zz")), "odd");
  EXPECT_EQ(Serve(odd, Req("GET", "/a?y=%40&x=%zz")), "miss");
  // The path: %7E is '~' (unreserved, decoded); %2F stays distinct from '/'.
  std::vector<Exchange> ys;
  ys.push_back(Recorded(Req("GET", "/~user/a%2fb"), "home"));
  RecordedResponses paths(std::move(ys), {});
  EXPECT_EQ(Serve(paths, Req("GET", "/%7euser/a%2Fb")), "home");
  EXPECT_EQ(Serve(paths, Req("GET", "/~user/a/b")), "miss");
}

TEST(MatchTest, IgnoreParams) {
  std::vector<Exchange> xs;
  xs.push_back(Recorded(Req("GET", "/items?id=7&_ts=111&cb=1"), "item7"));
  MatchOptions opts;
  opts.ignore_params = {"_ts", "cb"};
  RecordedResponses rr(std::move(xs), opts);
  EXPECT_EQ(Serve(rr, Req("GET", "/items?_ts=999&id=7")), "item7");
  EXPECT_EQ(Serve(rr, Req("GET", "/items?id=7")), "item7");
  EXPECT_EQ(Serve(rr, Req("GET", "/items?id=8&_ts=111")), "miss");

  std::vector<Exchange> ys;
  ys.push_back(Recorded(Req("GET", "/items?id=7&_ts=111"), "item7"));
  RecordedResponses strict_params(std::move(ys), {});
  EXPECT_EQ(Serve(strict_params, Req("GET", "/items?_ts=999&id=7")), "miss");
}

TEST(MatchTest, IgnoreHost) {
  auto make = [] {
    std::vector<Exchange> xs;
    xs.push_back(Recorded(Req("GET", "/", {{"Host", "api.example.com"}}), "api"));
    return xs;
  };
  RecordedResponses by_host(make(), {});
  // Host names compare case-insensitively; the HTTP/2 authority stands for the Host header.
  EXPECT_EQ(Serve(by_host, Req("GET", "/", {{"host", "API.Example.com"}})), "api");
  EXPECT_EQ(Serve(by_host, Req("GET", "/", {}, "", "api.example.com")), "api");
  EXPECT_EQ(Serve(by_host, Req("GET", "/", {{"Host", "127.0.0.1:8080"}})), "miss");
  MatchOptions opts;
  opts.ignore_host = true;
  RecordedResponses any_host(make(), opts);
  EXPECT_EQ(Serve(any_host, Req("GET", "/", {{"Host", "127.0.0.1:8080"}})), "api");
}

TEST(MatchTest, MatchHeader) {
  std::vector<Exchange> xs;
  xs.push_back(Recorded(Req("GET", "/me", {{"Authorization", "Bearer alice"}}), "alice"));
  xs.push_back(Recorded(Req("GET", "/me", {{"Authorization", "Bearer bob"}}), "bob"));
  MatchOptions opts;
  opts.match_headers = {"authorization"};
  RecordedResponses rr(std::move(xs), opts);
  EXPECT_EQ(Serve(rr, Req("GET", "/me", {{"AUTHORIZATION", "Bearer bob"}})), "bob");
  EXPECT_EQ(Serve(rr, Req("GET", "/me", {{"Authorization", "Bearer alice"}})), "alice");
  EXPECT_EQ(Serve(rr, Req("GET", "/me", {{"Authorization", "Bearer carol"}})), "miss");
  EXPECT_EQ(Serve(rr, Req("GET", "/me")), "miss");

  // Without --match-header both are one key: a sequence alice, bob, then bob again.
  std::vector<Exchange> ys;
  ys.push_back(Recorded(Req("GET", "/me", {{"Authorization", "Bearer alice"}}), "alice"));
  ys.push_back(Recorded(Req("GET", "/me", {{"Authorization", "Bearer bob"}}), "bob"));
  RecordedResponses loose(std::move(ys), {});
  EXPECT_EQ(Serve(loose, Req("GET", "/me", {{"Authorization", "Bearer carol"}})), "alice");
  EXPECT_EQ(Serve(loose, Req("GET", "/me")), "bob");
}

TEST(MatchTest, JsonBodyMatchIgnoresKeyOrderAndWhitespace) {
  auto make = [] {
    std::vector<Exchange> xs;
    xs.push_back(
        Recorded(Req("POST", "/orders", {}, R"({"item":"tea","qty":2,"opts":[1,2]})"), "tea"));
    xs.push_back(Recorded(Req("POST", "/orders", {}, R"({"item":"cake","qty":1})"), "cake"));
    xs.push_back(Recorded(Req("POST", "/raw", {}, "a=1&b=2"), "form"));
    return xs;
  };
  MatchOptions opts;
  opts.match_body = true;
  RecordedResponses rr(make(), opts);
  EXPECT_EQ(
      Serve(rr, Req("POST", "/orders", {}, "{ \"opts\": [1, 2], \"qty\": 2, \"item\": \"tea\" }")),
      "tea");
  EXPECT_EQ(Serve(rr, Req("POST", "/orders", {}, R"({"qty":1,"item":"cake"})")), "cake");
  // Array order matters in JSON; a different value is a different body.
  EXPECT_EQ(Serve(rr, Req("POST", "/orders", {}, R"({"item":"tea","qty":2,"opts":[2,1]})")),
            "miss");
  EXPECT_EQ(Serve(rr, Req("POST", "/orders", {}, R"({"item":"tea","qty":3,"opts":[1,2]})")),
            "miss");
  // Not JSON: compared as bytes.
  EXPECT_EQ(Serve(rr, Req("POST", "/raw", {}, "a=1&b=2")), "form");
  EXPECT_EQ(Serve(rr, Req("POST", "/raw", {}, "b=2&a=1")), "miss");
  // Without match_body the body is not looked at: the /orders sequence is tea, cake.
  RecordedResponses any_body(make(), {});
  EXPECT_EQ(Serve(any_body, Req("POST", "/orders", {}, "{}")), "tea");
  EXPECT_EQ(Serve(any_body, Req("POST", "/orders", {}, "{}")), "cake");
}

// A gzip request body is matched on what it decodes to: the same JSON, keys reordered, in
// identity and in gzip (a gzip stream of the same bytes differs with its header's mtime anyway).
TEST(MatchTest, EncodedBodyDecodedBeforeMatching) {
  absl::StatusOr<std::string> gz = EncodeContent(R"({"b":2,"a":1})", "gzip");
  ASSERT_TRUE(gz.ok()) << gz.status();
  std::vector<Exchange> xs;
  xs.push_back(Recorded(Req("POST", "/put", {{"Content-Encoding", "gzip"}}, *gz), "stored"));
  MatchOptions opts;
  opts.match_body = true;
  RecordedResponses rr(std::move(xs), opts);
  EXPECT_EQ(Serve(rr, Req("POST", "/put", {}, R"({"a":1,"b":2})")), "stored");
  absl::StatusOr<std::string> gz2 = EncodeContent(R"({"a":1, "b":2})", "gzip");
  ASSERT_TRUE(gz2.ok()) << gz2.status();
  EXPECT_EQ(Serve(rr, Req("POST", "/put", {{"content-encoding", "GZIP"}}, *gz2)), "stored");
  EXPECT_EQ(Serve(rr, Req("POST", "/put", {}, R"({"a":1,"b":3})")), "miss");
  // Claimed gzip that is not: compared as stored, here JSON equal to the recorded decoded body.
  EXPECT_EQ(Serve(rr, Req("POST", "/put", {{"Content-Encoding", "gzip"}}, R"({"a":1,"b":2})")),
            "stored");
  EXPECT_EQ(Serve(rr, Req("POST", "/put", {{"Content-Encoding", "gzip"}}, "\x1f\x8b junk")),
            "miss");
}

// RFC 9112 section 3.2.2: the absolute form (what a client sends to a proxy) names the same
// resource as the origin form, and its authority is the host, ahead of the Host field.
TEST(MatchTest, AbsoluteFormTargetMatchesOriginForm) {
  auto make = [] {
    std::vector<Exchange> xs;
    xs.push_back(Recorded(Req("GET", "/healthz?b=2&a=1", {{"Host", "svc"}}), "origin"));
    xs.push_back(Recorded(Req("GET", "/", {{"Host", "svc"}}), "root"));
    return xs;
  };
  RecordedResponses any_host(make(), MatchOptions{.ignore_host = true});
  EXPECT_EQ(Serve(any_host, Req("GET", "http://svc/healthz?a=1&b=2")), "origin");
  EXPECT_EQ(Serve(any_host, Req("GET", "http://user@svc:80/healthz?a=1&b=2")), "origin");
  EXPECT_EQ(Serve(any_host, Req("GET", "http://svc")), "root");  // empty path is "/" (3.2.4)
  EXPECT_EQ(Serve(any_host, Req("GET", "http://svc/other")), "miss");
  RecordedResponses by_host(make(), {});
  EXPECT_EQ(Serve(by_host, Req("GET", "http://SVC/healthz?a=1&b=2", {{"Host", "elsewhere"}})),
            "origin");
  EXPECT_EQ(Serve(by_host, Req("GET", "http://other/healthz?a=1&b=2", {{"Host", "svc"}})), "miss");
}

std::vector<Exchange> ThreeAnswers() {
  std::vector<Exchange> xs;
  for (const char* answer : {"1", "2", "3"}) xs.push_back(Recorded(Req("GET", "/next"), answer));
  return xs;
}

// The issue's example: three recorded answers to one request, two clients asking three times each.
TEST(MatchTest, SequencesPerSession) {
  RecordedResponses rr(ThreeAnswers(), {});
  Request a = Req("GET", "/next", {{"X-Client", "a"}});
  Request b = Req("GET", "/next", {{"X-Client", "b"}});
  std::string got;
  for (int i = 0; i < 3; ++i) {
    got += Serve(rr, a, SessionValue(a, "x-client"));
    got += Serve(rr, b, SessionValue(b, "x-client"));
  }
  EXPECT_EQ(got, "112233");
}

TEST(MatchTest, SequencesSharedWithoutSession) {
  RecordedResponses rr(ThreeAnswers(), {});
  std::string got;
  for (int i = 0; i < 6; ++i)
    got += Serve(rr, Req("GET", "/next", {{"X-Client", i % 2 ? "b" : "a"}}));
  EXPECT_EQ(got, "123333");
  LookupResult r = rr.Lookup(Req("GET", "/next"));
  EXPECT_EQ(r.position, 3u);
  EXPECT_EQ(r.recorded, 3u);
  EXPECT_EQ(r.Explanation(), "matched recorded response 3 of 3");
}

// A client inventing a session value per request cannot grow the index without bound: past the
// cap, new session values share the common sequence.
TEST(MatchTest, SessionsPerKeyAreCapped) {
  RecordedResponses rr(ThreeAnswers(), {});
  for (size_t i = 0; i < kMaxSessionsPerKey; ++i)
    ASSERT_EQ(Serve(rr, Req("GET", "/next"), "s" + std::to_string(i)), "1");
  // The cap is reached: two new session values advance one shared sequence.
  EXPECT_EQ(Serve(rr, Req("GET", "/next"), "new-1"), "1");
  EXPECT_EQ(Serve(rr, Req("GET", "/next"), "new-2"), "2");
  EXPECT_EQ(Serve(rr, Req("GET", "/next"), "new-3"), "3");
  // Sessions seen before the cap keep their own place.
  EXPECT_EQ(Serve(rr, Req("GET", "/next"), "s7"), "2");
}

TEST(MatchTest, Strict) {
  MatchOptions opts;
  opts.strict = true;
  RecordedResponses rr(ThreeAnswers(), opts);
  std::string got;
  for (int i = 0; i < 5; ++i) got += Serve(rr, Req("GET", "/next")) + ",";
  EXPECT_EQ(got, "1,2,3,exhausted,exhausted,");
  // Another session has its own three.
  EXPECT_EQ(Serve(rr, Req("GET", "/next"), "other"), "1");
  LookupResult r = rr.Lookup(Req("GET", "/next"));
  EXPECT_EQ(r.Explanation(), "all 3 recorded responses to this request were served");
}

TEST(MatchTest, ConcurrentLookupsServeEachPositionOnce) {
  MatchOptions opts;
  opts.strict = true;
  std::vector<Exchange> xs;
  for (int i = 0; i < 400; ++i) xs.push_back(Recorded(Req("GET", "/n"), std::to_string(i)));
  RecordedResponses rr(std::move(xs), opts);
  std::vector<std::vector<size_t>> seen(4);
  std::vector<std::thread> threads;
  for (int t = 0; t < 4; ++t) {
    threads.emplace_back([&, t] {
      for (int i = 0; i < 150; ++i) {
        LookupResult r = rr.Lookup(Req("GET", "/n"));
        if (r.outcome == LookupResult::Outcome::kHit) seen[t].push_back(r.position);
      }
    });
  }
  for (auto& th : threads) th.join();
  std::vector<int> count(401, 0);
  size_t hits = 0;
  for (const auto& s : seen) {
    for (size_t p : s) ++count[p], ++hits;
  }
  EXPECT_EQ(hits, 400u);  // 600 asked, 400 recorded
  for (int p = 1; p <= 400; ++p) EXPECT_EQ(count[p], 1) << p;
}

TEST(MatchTest, MissNamesClosestRecordedAndField) {
  std::vector<Exchange> xs;
  xs.push_back(Recorded(Req("GET", "/users?id=1&fmt=json"), "u1"));
  xs.push_back(Recorded(Req("POST", "/users", {}, R"({"name":"ann"})"), "created"));
  xs.push_back(Recorded(Req("GET", "/health"), "ok"));
  xs.push_back(Recorded(Req("GET", "/me", {{"Authorization", "Bearer alice"}}), "alice"));
  xs.push_back(Skipped());
  MatchOptions opts;
  opts.match_body = true;
  opts.match_headers = {"Authorization"};
  RecordedResponses rr(std::move(xs), opts);
  EXPECT_EQ(rr.size(), 4u);
  EXPECT_EQ(rr.skipped(), 1u);

  LookupResult q = rr.Lookup(Req("GET", "/users?fmt=json&id=2"));
  ASSERT_EQ(q.outcome, LookupResult::Outcome::kMiss);
  EXPECT_EQ(q.exchange->response->body.data, "u1");
  EXPECT_EQ(q.differs_on, MatchField::kQuery);
  EXPECT_EQ(q.differs_name, "id");
  EXPECT_EQ(q.Explanation(),
            "no recorded request matches; closest: GET /users?id=1&fmt=json (differs on query "
            "parameter id)");

  LookupResult m = rr.Lookup(Req("PUT", "/health"));
  EXPECT_EQ(m.exchange->response->body.data, "ok");
  EXPECT_EQ(m.differs_on, MatchField::kMethod);

  LookupResult p = rr.Lookup(Req("GET", "/healthz"));
  EXPECT_EQ(p.exchange->response->body.data, "ok");
  EXPECT_EQ(p.differs_on, MatchField::kPath);

  LookupResult b = rr.Lookup(Req("POST", "/users", {}, R"({"name":"bob"})"));
  EXPECT_EQ(b.exchange->response->body.data, "created");
  EXPECT_EQ(b.differs_on, MatchField::kBody);

  LookupResult h = rr.Lookup(Req("GET", "/me", {{"Authorization", "Bearer eve"}}));
  EXPECT_EQ(h.exchange->response->body.data, "alice");
  EXPECT_EQ(h.differs_on, MatchField::kHeader);
  EXPECT_EQ(h.differs_name, "Authorization");
  EXPECT_EQ(h.Explanation(),
            "no recorded request matches; closest: GET /me (differs on header Authorization)");

  RecordedResponses empty({}, {});
  LookupResult none = empty.Lookup(Req("GET", "/"));
  EXPECT_EQ(none.outcome, LookupResult::Outcome::kMiss);
  EXPECT_EQ(none.exchange, nullptr);
  EXPECT_EQ(none.Explanation(), "no recorded request matches; none recorded");
}

// The path weighs most: a changed query value on the recorded path is closer than another path
// that happens to differ on fewer fields (a fresh user's trial found "/hello.txt" named here).
TEST(MatchTest, ClosestKeepsThePathFirst) {
  std::vector<Exchange> xs;
  xs.push_back(Recorded(Req("GET", "/hello.txt"), "hello"));
  xs.push_back(Recorded(Req("GET", "/api/price?sku=B-2"), "b2"));
  xs.push_back(Recorded(Req("GET", "/api/items.json", {{"Accept-Encoding", "gzip"}}), "items"));
  MatchOptions opts;
  opts.match_headers = {"accept-encoding"};
  RecordedResponses rr(std::move(xs), opts);
  LookupResult sku = rr.Lookup(Req("GET", "/api/price?sku=C-3"));
  EXPECT_EQ(sku.Explanation(),
            "no recorded request matches; closest: GET /api/price?sku=B-2 (differs on query "
            "parameter sku)");
  LookupResult bare = rr.Lookup(Req("GET", "/api/price"));
  EXPECT_EQ(bare.exchange->response->body.data, "b2");
  LookupResult header = rr.Lookup(Req("GET", "/api/items.json"));
  EXPECT_EQ(header.Explanation(),
            "no recorded request matches; closest: GET /api/items.json (differs on header "
            "accept-encoding)");
  // The same path and method beat the same path with another method.
  std::vector<Exchange> ys;
  ys.push_back(Recorded(Req("POST", "/a?x=1"), "post"));
  ys.push_back(Recorded(Req("GET", "/a?x=1&y=2&z=3"), "get"));
  RecordedResponses by_method(std::move(ys), {});
  EXPECT_EQ(by_method.Lookup(Req("GET", "/a?x=1")).exchange->response->body.data, "get");
}

// A matched header whose recorded value was redacted can never match; the miss says why.
TEST(MatchTest, RedactedRecordedHeaderIsNamedInTheMiss) {
  std::vector<Exchange> xs;
  xs.push_back(
      Recorded(Req("GET", "/me", {{"Authorization", "tapkit-redacted:0123456789ab"}}), "me"));
  ASSERT_TRUE(IsRedactionMarker(xs[0].request->headers[0].value));
  MatchOptions opts;
  opts.match_headers = {"Authorization"};
  RecordedResponses rr(std::move(xs), opts);
  LookupResult r = rr.Lookup(Req("GET", "/me", {{"Authorization", "Bearer tok123"}}));
  EXPECT_TRUE(r.differs_redacted);
  EXPECT_EQ(r.Explanation(),
            "no recorded request matches; closest: GET /me (differs on header Authorization; the "
            "recorded value is redacted)");
}

// A final status below 200 cannot answer a request: an HTTP/0.9 reply (status 0) and a 101
// are skipped, not served.
TEST(MatchTest, UnservableStatusesAreSkipped) {
  std::vector<Exchange> xs;
  xs.push_back(Recorded(Req("GET", "/old"), "http/0.9 body"));
  xs[0].response->status = 0;
  xs.push_back(Recorded(Req("GET", "/ws"), ""));
  xs[1].response->status = 101;
  xs.push_back(Recorded(Req("GET", "/ok"), "ok"));
  RecordedResponses rr(std::move(xs), {});
  EXPECT_EQ(rr.size(), 1u);
  EXPECT_EQ(rr.skipped(), 2u);
  EXPECT_EQ(Serve(rr, Req("GET", "/old")), "miss");
}

// JSON numbers compare by value under match_body: 2.0 and 2 are one number (RFC 8259 section 6
// leaves the form to the writer).
TEST(MatchTest, JsonNumbersCompareByValue) {
  std::vector<Exchange> xs;
  xs.push_back(Recorded(Req("POST", "/calc", {}, R"({"a":1,"b":2})"), "sum"));
  MatchOptions opts;
  opts.match_body = true;
  RecordedResponses rr(std::move(xs), opts);
  EXPECT_EQ(Serve(rr, Req("POST", "/calc", {}, R"({"b":2.0,"a":1})")), "sum");
  EXPECT_EQ(Serve(rr, Req("POST", "/calc", {}, R"({"b":2.5,"a":1})")), "miss");
}

// RFC 3986 section 6.2.2.3 / 5.2.4: dot segments are removed before keying; the examples are
// section 5.2.4's own ("/a/b/c/./../../g" is "/a/g", "mid/content=5/../6" is "mid/6").
TEST(MatchTest, DotSegmentsRemoved) {
  std::vector<Exchange> xs;
  xs.push_back(Recorded(Req("GET", "/a/g"), "g"));
  xs.push_back(Recorded(Req("GET", "/api/me"), "me"));
  RecordedResponses rr(std::move(xs), {});
  EXPECT_EQ(Serve(rr, Req("GET", "/a/b/c/./../../g")), "g");
  EXPECT_EQ(Serve(rr, Req("GET", "/api/../api/me")), "me");
  EXPECT_EQ(Serve(rr, Req("GET", "/api/%2E%2E/api/me")), "me");  // %2E is '.' (unreserved)
  EXPECT_EQ(Serve(rr, Req("GET", "/../../api/me")), "me");       // above the root stays at it
  EXPECT_EQ(Serve(rr, Req("GET", "/api/me/.")), "miss");         // "/api/me/" is another path
  EXPECT_EQ(rr.KeyOf(Req("GET", "/a/b/c/./../../g")).path, "/a/g");
  EXPECT_EQ(rr.KeyOf(Req("GET", "mid/content=5/../6")).path, "mid/6");
}

// A typo in the path names the recorded path nearest to it, and a request differing on path and
// method names the path first; several differing query parameters are all named.
TEST(MatchTest, ClosestPathIsTheNearestAndNamedFirst) {
  std::vector<Exchange> xs;
  xs.push_back(Recorded(Req("GET", "/api/me"), "me"));
  xs.push_back(Recorded(Req("GET", "/api/items?page=1&sort=asc"), "items"));
  xs.push_back(Recorded(Req("GET", "/api/slow"), "slow"));
  RecordedResponses rr(std::move(xs), {});
  EXPECT_EQ(rr.Lookup(Req("GET", "/api/item?page=1&sort=asc")).exchange->response->body.data,
            "items");
  EXPECT_EQ(rr.Lookup(Req("GET", "/api/slo")).exchange->response->body.data, "slow");
  LookupResult post = rr.Lookup(Req("POST", "/api/orders"));
  EXPECT_EQ(post.differs_on, MatchField::kPath);
  LookupResult both = rr.Lookup(Req("GET", "/api/items?page=9&sort=zzz"));
  EXPECT_EQ(both.Explanation(),
            "no recorded request matches; closest: GET /api/items?page=1&sort=asc (differs on "
            "query parameters page, sort)");
}

// A recorded request body stored cut (taprec --snaplen-body) matches the live body that starts
// with the stored bytes and has the recorded length; the miss says the body was cut.
TEST(MatchTest, CutRecordedBodyMatchesOnItsPrefixAndLength) {
  std::string whole = R"({"items":[)" + std::string(3000, '1') + "]}";
  Request recorded = Req("POST", "/orders", {}, whole.substr(0, 1000));
  recorded.body.length = whole.size();
  recorded.body.truncated = true;
  std::vector<Exchange> xs;
  xs.push_back(Recorded(std::move(recorded), "created"));
  MatchOptions opts;
  opts.match_body = true;
  RecordedResponses rr(std::move(xs), opts);
  EXPECT_EQ(Serve(rr, Req("POST", "/orders", {}, whole)), "created");
  std::string other = whole;
  other[500] = '2';
  LookupResult r = rr.Lookup(Req("POST", "/orders", {}, other));
  EXPECT_EQ(r.outcome, LookupResult::Outcome::kMiss);
  EXPECT_EQ(r.Explanation(),
            "no recorded request matches; closest: POST /orders (differs on body; the recorded "
            "body was stored cut: 1000 of " +
                std::to_string(whole.size()) + " bytes)");
  EXPECT_EQ(Serve(rr, Req("POST", "/orders", {}, whole + " ")), "miss");  // another length
}

// RFC 9110 section 9.3.2: a HEAD never recorded is answered from the recorded GET, taking its
// turn; a recorded HEAD wins; with strict the used-up GET leaves the HEAD exhausted.
TEST(MatchTest, HeadNeverRecordedTakesTheGetsTurn) {
  std::vector<Exchange> xs;
  xs.push_back(Recorded(Req("GET", "/a"), "a1"));
  xs.push_back(Recorded(Req("GET", "/a"), "a2"));
  xs.push_back(Recorded(Req("GET", "/b"), "b-get"));
  xs.push_back(Recorded(Req("HEAD", "/b"), "b-head"));
  RecordedResponses rr(std::move(xs), MatchOptions{.strict = true});
  LookupResult head = rr.Lookup(Req("HEAD", "/a"));
  EXPECT_TRUE(head.head_of_get);
  EXPECT_EQ(head.exchange->response->body.data, "a1");
  EXPECT_EQ(head.Explanation(), "matched recorded response 1 of 2 (the recorded GET's head)");
  EXPECT_EQ(Serve(rr, Req("GET", "/a")), "a2");
  LookupResult after = rr.Lookup(Req("HEAD", "/a"));
  EXPECT_EQ(after.outcome, LookupResult::Outcome::kExhausted);
  EXPECT_FALSE(after.head_of_get);
  LookupResult recorded_head = rr.Lookup(Req("HEAD", "/b"));
  EXPECT_FALSE(recorded_head.head_of_get);
  EXPECT_EQ(recorded_head.exchange->response->body.data, "b-head");
}

// A caller that passes misses through asks for no explanation: no closest request is searched.
TEST(MatchTest, MissWithoutExplanation) {
  std::vector<Exchange> xs;
  xs.push_back(Recorded(Req("GET", "/a"), "a"));
  RecordedResponses rr(std::move(xs), {});
  LookupResult r = rr.Lookup(Req("GET", "/b"), {}, /*explain_miss=*/false);
  EXPECT_EQ(r.outcome, LookupResult::Outcome::kMiss);
  EXPECT_EQ(r.exchange, nullptr);
  EXPECT_EQ(r.differs_on, MatchField::kNone);
  EXPECT_NE(rr.Lookup(Req("GET", "/b")).exchange, nullptr);
}

// JSON with duplicate member names is compared as bytes, as tapreplay's comparison does:
// nlohmann would keep the last duplicate and make {"a":1,"a":2} equal {"a":2}.
TEST(MatchTest, JsonWithDuplicateNamesIsComparedAsBytes) {
  std::vector<Exchange> xs;
  xs.push_back(Recorded(Req("POST", "/j", {}, R"({"a":2})"), "j"));
  RecordedResponses rr(std::move(xs), MatchOptions{.match_body = true});
  EXPECT_EQ(Serve(rr, Req("POST", "/j", {}, R"({ "a": 2 })")), "j");
  EXPECT_EQ(Serve(rr, Req("POST", "/j", {}, R"({"a":1,"a":2})")), "miss");
}

}  // namespace
}  // namespace tapkit
