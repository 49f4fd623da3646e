// compare_test: the comparison of recorded and live responses (replay/compare.h), checked
// against hand-worked exchanges, GNU diff -u (UnifiedDiff), jq -S (pretty JSON), gzip and brotli
// (encoded bodies) and format/redact.h's Redactor (markers).
#include "replay/compare.h"

#include <gtest/gtest.h>

#include <cstdio>
#include <cstdlib>
#include <fstream>
#include <random>
#include <string>

#include "absl/strings/match.h"
#include "format/content_coding.h"
#include "format/redact.h"
#include "format/test_dir.h"
#include "format/testutil.h"

namespace tapkit::replay {
namespace {

using Kind = FieldDiff::Kind;
using tapkit::testing::Shell;
using tapkit::testing::TestDir;
using tapkit::testing::WriteTestFile;

Exchange Recorded(std::vector<Header> headers, std::string body, uint16_t status = 200,
                  std::string method = "GET", std::string path = "/api/items") {
  Exchange x;
  x.capture_point = 0;
  x.stream_id = 17;
  x.request.emplace();
  x.request->method = std::move(method);
  x.request->path = std::move(path);
  x.response.emplace();
  x.response->status = status;
  x.response->headers = std::move(headers);
  x.response->body.length = body.size();
  x.response->body.data = std::move(body);
  return x;
}

Response Live(std::vector<Header> headers, std::string body, uint16_t status = 200) {
  Response r;
  r.status = status;
  r.headers = std::move(headers);
  r.body.length = body.size();
  r.body.data = std::move(body);
  return r;
}

std::shared_ptr<const Comparer> Make(CompareOptions o = {}) {
  absl::StatusOr<std::shared_ptr<const Comparer>> c = Comparer::Create(o);
  EXPECT_TRUE(c.ok()) << c.status();
  return c.ok() ? *c : nullptr;
}

// A marker as taprec writes it: format/redact.h's Redactor under the recording's key.
const std::string kKey = "0123456789abcdef0123456789abcdef";

const std::vector<Header> kJson = {{"Content-Type", "application/json"}};

TEST(Compare, SameResponseMatches) {
  auto c = Make();
  Comparison r = c->Compare(Recorded(kJson, R"({"a":1})"), Live(kJson, R"({"a":1})"));
  EXPECT_TRUE(r.matched());
  EXPECT_FALSE(r.body_prefix_only);
  EXPECT_EQ(r.recorded_body_text, "");
}

TEST(Compare, Status) {
  auto c = Make();
  Comparison r = c->Compare(Recorded({}, "x", 200), Live({}, "x", 503));
  ASSERT_EQ(r.diffs.size(), 1u);
  EXPECT_EQ(r.diffs[0], (FieldDiff{Kind::kStatus, "status", "200", "503"}));

  CompareOptions o;
  o.flags.ignore_status = true;
  EXPECT_TRUE(Make(o)->Compare(Recorded({}, "x", 200), Live({}, "x", 503)).matched());
}

TEST(Compare, DefaultIgnoredHeaders) {
  std::vector<Header> rec = {{"Date", "Mon, 01 Dec 2025 10:00:00 GMT"},
                             {"Server", "nginx/1.22"},
                             {"ETag", "\"abc\""},
                             {"Content-Length", "1"},
                             {"X-Request-Id", "1111"},
                             {"Last-Modified", "yesterday"}};
  std::vector<Header> live = {
      {"date", "Tue, 02 Dec 2025 11:00:00 GMT"}, {"Server", "nginx/1.25"}, {"ETag", "\"def\""},
      {"Transfer-Encoding", "chunked"},          {"X-Request-Id", "2222"}, {"Age", "5"}};
  EXPECT_TRUE(Make()->Compare(Recorded(rec, "x"), Live(live, "x")).matched());

  CompareOptions o;
  o.default_ignore_headers = false;
  Comparison r = Make(o)->Compare(Recorded(rec, "x"), Live(live, "x"));
  std::vector<std::string> fields;
  for (const FieldDiff& d : r.diffs) fields.push_back(d.field);
  EXPECT_EQ(fields,
            (std::vector<std::string>{"header age", "header content-length", "header date",
                                      "header etag", "header last-modified", "header server",
                                      "header transfer-encoding", "header x-request-id"}));
  EXPECT_EQ(r.diffs[0], (FieldDiff{Kind::kHeader, "header age", std::nullopt, "5"}));
  EXPECT_EQ(r.diffs[1], (FieldDiff{Kind::kHeader, "header content-length", "1", std::nullopt}));
}

// An answer to HEAD, or a 304, has no body: its Content-Length is the representation's size (RFC
// 9110 sections 8.6 and 15.4.5) and the only sign that the representation changed.
TEST(Compare, ContentLengthOfBodilessAnswersIsCompared) {
  auto c = Make();
  std::vector<Header> rec = {{"Content-Length", "270177"}};
  std::vector<Header> live = {{"Content-Length", "270183"}};
  EXPECT_TRUE(c->Compare(Recorded(rec, ""), Live(live, "")).matched());  // a GET's body decides
  Comparison head = c->Compare(Recorded(rec, "", 200, "HEAD"), Live(live, ""));
  ASSERT_EQ(head.diffs.size(), 1u);
  EXPECT_EQ(head.diffs[0], (FieldDiff{Kind::kHeader, "header content-length", "270177", "270183"}));
  Comparison not_modified = c->Compare(Recorded(rec, "", 304), Live(live, "", 304));
  ASSERT_EQ(not_modified.diffs.size(), 1u);
  EXPECT_EQ(not_modified.diffs[0].field, "header content-length");
  EXPECT_TRUE(c->Compare(Recorded(rec, "", 200, "HEAD"), Live(rec, "")).matched());
}

TEST(Compare, HeadersCombinedInOrderByLowerCaseName) {
  auto c = Make();
  std::vector<Header> rec = {{"Vary", "Accept"}, {"X-A", "1"}, {"Vary", "Origin"}};
  std::vector<Header> same = {{"vary", "Accept"}, {"x-a", "1"}, {"VARY", "Origin"}};
  EXPECT_TRUE(c->Compare(Recorded(rec, ""), Live(same, "")).matched());
  std::vector<Header> other = {{"vary", "Origin"}, {"x-a", "1"}, {"vary", "Origin"}};
  Comparison r = c->Compare(Recorded(rec, ""), Live(other, ""));
  ASSERT_EQ(r.diffs.size(), 1u);
  EXPECT_EQ(r.diffs[0],
            (FieldDiff{Kind::kHeader, "header vary", "Accept, Origin", "Origin, Origin"}));
  // RFC 9110 section 5.3: "the order in which field lines with the same name are received is
  // ... significant"; the same values in another order are another field value.
  std::vector<Header> swapped = {{"vary", "Origin"}, {"x-a", "1"}, {"vary", "Accept"}};
  r = c->Compare(Recorded(rec, ""), Live(swapped, ""));
  ASSERT_EQ(r.diffs.size(), 1u);
  EXPECT_EQ(r.diffs[0],
            (FieldDiff{Kind::kHeader, "header vary", "Accept, Origin", "Origin, Accept"}));
}

TEST(Compare, FieldLinesCombineAsRfc9110Section5_3) {
  // RFC 9110 section 5.3's example: "Example-Field: Foo, Bar" and the two field lines
  // "Example-Field: Foo" and "Example-Field: Bar" are the same field value.
  auto c = Make();
  std::vector<Header> one = {{"Example-Field", "Foo, Bar"}};
  std::vector<Header> two = {{"Example-Field", "Foo"}, {"Example-Field", "Bar"}};
  EXPECT_TRUE(c->Compare(Recorded(one, ""), Live(two, "")).matched());
  EXPECT_TRUE(c->Compare(Recorded(two, ""), Live(one, "")).matched());
  // The finding's case: Vary recorded on one line, sent live on two.
  EXPECT_TRUE(c->Compare(Recorded({{"Vary", "Accept, Accept-Encoding"}}, ""),
                         Live({{"Vary", "Accept"}, {"Vary", "Accept-Encoding"}}, ""))
                  .matched());
  // Optional whitespace around the commas (section 5.6.1's OWS) and empty list elements
  // (5.6.1: a recipient ignores them) do not count.
  EXPECT_TRUE(c->Compare(Recorded({{"Vary", "Accept,Accept-Encoding"}}, ""),
                         Live({{"Vary", "Accept ,\tAccept-Encoding,"}}, ""))
                  .matched());
  // A comma inside a quoted string (section 5.6.4) splits nothing, and its spaces count.
  std::vector<Header> quoted = {{"X-Q", "\"a, b\", c"}};
  EXPECT_TRUE(
      c->Compare(Recorded(quoted, ""), Live({{"X-Q", "\"a, b\""}, {"X-Q", "c"}}, "")).matched());
  EXPECT_FALSE(
      c->Compare(Recorded(quoted, ""), Live({{"X-Q", "\"a,b\""}, {"X-Q", "c"}}, "")).matched());
  // Lines that combine to the same text are the same field value, wherever they were split.
  EXPECT_TRUE(
      c->Compare(Recorded(quoted, ""), Live({{"X-Q", "\"a"}, {"X-Q", "b\", c"}}, "")).matched());
  // A marker stands for one field line, under the key too, whatever commas the live line has.
  std::string marker = Redactor({}, kKey).Redact("a, b");
  CompareOptions o;
  o.redaction_key = kKey;
  EXPECT_TRUE(Make(o)
                  ->Compare(Recorded({{"X-Auth", marker}, {"X-Auth", "c"}}, ""),
                            Live({{"X-Auth", "a, b"}, {"X-Auth", "c"}}, ""))
                  .matched());
  EXPECT_TRUE(c->Compare(Recorded({{"X-Auth", marker}, {"X-Auth", "c"}}, ""),
                         Live({{"X-Auth", "a, b"}, {"X-Auth", "c"}}, ""))
                  .matched());
  EXPECT_FALSE(Make(o)
                   ->Compare(Recorded({{"X-Auth", marker}, {"X-Auth", "c"}}, ""),
                             Live({{"X-Auth", "a, c"}, {"X-Auth", "c"}}, ""))
                   .matched());
  // A pattern checks each element, or the whole value.
  CompareOptions p;
  p.flags.header_patterns = {{"X-Id", "[0-9a-f]{4}"}, {"X-When", "[A-Z][a-z]{2}, [0-9]{2}"}};
  auto pc = Make(p);
  EXPECT_TRUE(pc->Compare(Recorded({{"X-Id", "00aa, 11bb"}}, ""),
                          Live({{"X-Id", "22cc"}, {"X-Id", "33dd"}}, ""))
                  .matched());
  EXPECT_FALSE(pc->Compare(Recorded({{"X-Id", "00aa, 11bb"}}, ""),
                           Live({{"X-Id", "22cc"}, {"X-Id", "33dd"}, {"X-Id", "44ee"}}, ""))
                   .matched());
  EXPECT_TRUE(pc->Compare(Recorded({{"X-When", "Mon, 01"}}, ""), Live({{"X-When", "Tue, 02"}}, ""))
                  .matched());
}

TEST(Compare, SetCookieNamesNotValues) {
  auto c = Make();
  std::vector<Header> rec = {{"Set-Cookie", "sid=abc; Path=/"}, {"Set-Cookie", "lang=en"}};
  std::vector<Header> live_values = {{"Set-Cookie", "lang=de"}, {"Set-Cookie", "sid=xyz; Path=/"}};
  EXPECT_TRUE(c->Compare(Recorded(rec, ""), Live(live_values, "")).matched());
  std::vector<Header> live_names = {{"Set-Cookie", "lang=en"}, {"Set-Cookie", "session=abc"}};
  Comparison r = c->Compare(Recorded(rec, ""), Live(live_names, ""));
  ASSERT_EQ(r.diffs.size(), 1u);
  EXPECT_EQ(r.diffs[0].field, "header set-cookie");
  EXPECT_EQ(r.diffs[0].recorded, "sid=abc; Path=/, lang=en");
  // Without the default list, values count.
  CompareOptions o;
  o.default_ignore_headers = false;
  EXPECT_FALSE(Make(o)->Compare(Recorded(rec, ""), Live(live_values, "")).matched());
}

TEST(Compare, IgnoreHeaderFlagNamesAndRegexes) {
  std::vector<Header> rec = {{"X-Trace-Id", "1"}, {"X-B3-Foo", "a"}, {"X-Kept", "1"}};
  std::vector<Header> live = {{"X-Trace-Id", "2"}, {"X-B3-Foo", "b"}, {"X-Kept", "2"}};
  CompareOptions o;
  o.flags.ignore_headers = {"X-TRACE-ID", "/x-b3-.*/"};
  Comparison r = Make(o)->Compare(Recorded(rec, ""), Live(live, ""));
  ASSERT_EQ(r.diffs.size(), 1u);
  EXPECT_EQ(r.diffs[0], (FieldDiff{Kind::kHeader, "header x-kept", "1", "2"}));
}

TEST(Compare, FlagErrorsNameTheFlag) {
  struct Bad {
    NoiseRules flags;
    std::string message_start;
  };
  std::vector<Bad> cases(4);
  cases[0].flags.ignore_headers = {"/x-(/"};
  cases[0].message_start = "--ignore-header /x-(/: bad regex";
  cases[1].flags.ignore_json_paths = {"a/b"};
  cases[1].message_start = "--ignore-json-path a/b: JSON pointer";
  cases[2].flags.unordered_json_paths = {"/a~2"};
  cases[2].message_start = "--unordered-json-path /a~2: JSON pointer";
  cases[3].flags.ignore_headers = {"bad name"};
  cases[3].message_start = "--ignore-header bad name: \"bad name\" is neither a header field name";
  for (const Bad& b : cases) {
    CompareOptions o;
    o.flags = b.flags;
    absl::StatusOr<std::shared_ptr<const Comparer>> c = Comparer::Create(o);
    ASSERT_FALSE(c.ok()) << b.message_start;
    EXPECT_EQ(c.status().code(), absl::StatusCode::kInvalidArgument);
    EXPECT_TRUE(absl::StartsWith(c.status().message(), b.message_start)) << c.status();
  }
}

TEST(Compare, RedactedHeaderWithoutKeyMatchesAnyValue) {
  std::string marker = Redactor({}, kKey).Redact("token-1");
  ASSERT_TRUE(IsRedactionMarker(marker));
  auto c = Make();
  EXPECT_TRUE(
      c->Compare(Recorded({{"X-Auth", marker}}, ""), Live({{"X-Auth", "anything"}}, "")).matched());
  // A marker stands for a value, not for an absent field.
  EXPECT_FALSE(c->Compare(Recorded({{"X-Auth", marker}}, ""), Live({}, "")).matched());
}

TEST(Compare, RedactedHeaderWithKeyMatchesOnlyItsValue) {
  std::string marker = Redactor({}, kKey).Redact("token-1");
  CompareOptions o;
  o.redaction_key = kKey;
  auto c = Make(o);
  EXPECT_TRUE(
      c->Compare(Recorded({{"X-Auth", marker}}, ""), Live({{"X-Auth", "token-1"}}, "")).matched());
  Comparison r = c->Compare(Recorded({{"X-Auth", marker}}, ""), Live({{"X-Auth", "token-2"}}, ""));
  ASSERT_EQ(r.diffs.size(), 1u);
  EXPECT_EQ(r.diffs[0], (FieldDiff{Kind::kHeader, "header x-auth", marker, "token-2"}));
  // The wrong key: the live value's marker differs.
  o.redaction_key = "another key, 16 bytes or more";
  EXPECT_FALSE(Make(o)
                   ->Compare(Recorded({{"X-Auth", marker}}, ""), Live({{"X-Auth", "token-1"}}, ""))
                   .matched());
  o.redaction_key = "";
  EXPECT_FALSE(Comparer::Create(o).ok());
}

TEST(Compare, RedactedSetCookieMatchesAnyLine) {
  // taprec redacts the whole Set-Cookie line, cookie name included: with the default rule
  // (cookie names only) a marker stands for any one cookie, with the recording's key too,
  // since a fresh session id never has the recorded line's marker.
  std::string marker = Redactor({}, kKey).Redact("sid=abc; Path=/");
  CompareOptions o;
  o.redaction_key = kKey;
  for (const auto& c : {Make(), Make(o)}) {
    EXPECT_TRUE(c->Compare(Recorded({{"Set-Cookie", marker}}, ""),
                           Live({{"Set-Cookie", "sid=abc; Path=/"}}, ""))
                    .matched());
    EXPECT_TRUE(c->Compare(Recorded({{"Set-Cookie", marker}}, ""),
                           Live({{"Set-Cookie", "sid=xyz; Path=/"}}, ""))
                    .matched());
    // Beside an unredacted cookie, whose value still does not count but whose name does.
    std::vector<Header> rec = {{"Set-Cookie", "lang=en"}, {"Set-Cookie", marker}};
    EXPECT_TRUE(c->Compare(Recorded(rec, ""),
                           Live({{"Set-Cookie", "sid=abd; Path=/"}, {"Set-Cookie", "lang=de"}}, ""))
                    .matched());
    EXPECT_FALSE(
        c->Compare(Recorded(rec, ""),
                   Live({{"Set-Cookie", "sid=abd; Path=/"}, {"Set-Cookie", "locale=de"}}, ""))
            .matched());
    // A marker is one line: the count of cookies still counts.
    EXPECT_FALSE(c->Compare(Recorded({{"Set-Cookie", marker}}, ""), Live({}, "")).matched());
    EXPECT_FALSE(c->Compare(Recorded({{"Set-Cookie", marker}}, ""),
                            Live({{"Set-Cookie", "a=1"}, {"Set-Cookie", "b=2"}}, ""))
                     .matched());
  }
  // Without the default rule the key checks the whole line, and lines are never combined
  // (RFC 6265 section 3).
  o.default_ignore_headers = false;
  EXPECT_TRUE(Make(o)
                  ->Compare(Recorded({{"Set-Cookie", marker}}, ""),
                            Live({{"Set-Cookie", "sid=abc; Path=/"}}, ""))
                  .matched());
  EXPECT_FALSE(Make(o)
                   ->Compare(Recorded({{"Set-Cookie", marker}}, ""),
                             Live({{"Set-Cookie", "sid=xyz; Path=/"}}, ""))
                   .matched());
  EXPECT_FALSE(Make(o)
                   ->Compare(Recorded({{"Set-Cookie", "a=1, b=2"}}, ""),
                             Live({{"Set-Cookie", "a=1"}, {"Set-Cookie", "b=2"}}, ""))
                   .matched());
}

// A recorded exchange redacted by the Redactor itself, as taprec writes it.
Exchange RedactedRecording(std::vector<Header> headers, const std::string& key) {
  Exchange x = Recorded(std::move(headers), "");
  RedactionRules rules;
  rules.query_params = DefaultRedactedQueryParams();
  Redactor(rules, key).Apply(&x);
  return x;
}

TEST(Compare, RedactedQueryValuesInUrlFields) {
  Exchange rec = RedactedRecording({{"Location", "/next?token=abc&page=2#sig=s1"},
                                    {"Content-Location", "https://u:pw@h.example/doc?key=k1"}},
                                   kKey);
  ASSERT_EQ(rec.response->headers[0].value, "/next?token=" + Redactor({}, kKey).Redact("abc") +
                                                "&page=2#sig=" + Redactor({}, kKey).Redact("s1"));
  ASSERT_TRUE(absl::StrContains(rec.response->headers[1].value,
                                "u:" + Redactor({}, kKey).Redact("pw") + "@"));
  auto live = [](std::string loc, std::string cl) {
    return Live({{"Location", std::move(loc)}, {"Content-Location", std::move(cl)}}, "");
  };
  // Without the key a marker is a wildcard for the one value it replaced.
  auto c = Make();
  EXPECT_TRUE(
      c->Compare(rec, live("/next?token=xyz&page=2#sig=s2", "https://u:other@h.example/doc?key=k2"))
          .matched());
  Comparison r = c->Compare(
      rec, live("/next?token=xyz&page=3#sig=s2", "https://u:other@h.example/doc?key=k2"));
  ASSERT_EQ(r.diffs.size(), 1u);
  EXPECT_EQ(r.diffs[0].field, "header location");
  EXPECT_FALSE(
      c->Compare(rec, live("/next?token=&page=2#sig=s2", "https://u:other@h.example/doc?key=k2"))
          .matched());
  EXPECT_FALSE(
      c->Compare(rec, live("/next?token=x&y&page=2#sig=s2", "https://u:other@h.example/doc?key=k2"))
          .matched());
  EXPECT_FALSE(
      c->Compare(rec, live("/next?token=xyz&page=2#sig=s2", "https://v:other@h.example/doc?key=k2"))
          .matched());
  // With the key the live URL is redacted as the recording was, and must give the same text.
  CompareOptions o;
  o.redaction_key = kKey;
  auto k = Make(o);
  EXPECT_TRUE(
      k->Compare(rec, live("/next?token=abc&page=2#sig=s1", "https://u:pw@h.example/doc?key=k1"))
          .matched());
  // The name is found percent-decoded, as RedactUrl does, but written as sent: another URL.
  EXPECT_FALSE(
      k->Compare(rec, live("/next?to%6Ben=abc&page=2#sig=s1", "https://u:pw@h.example/doc?key=k1"))
          .matched());
  r = k->Compare(rec, live("/next?token=abd&page=2#sig=s1", "https://u:pw@h.example/doc?key=k1"));
  ASSERT_EQ(r.diffs.size(), 1u);
  EXPECT_EQ(r.diffs[0].field, "header location");
  r = k->Compare(rec, live("/next?token=abc&page=2#sig=s1", "https://u:pX@h.example/doc?key=k1"));
  ASSERT_EQ(r.diffs.size(), 1u);
  EXPECT_EQ(r.diffs[0].field, "header content-location");
  // Outside the query and the fragment a marker is text, as RedactUrl never writes one there.
  std::string m = Redactor({}, kKey).Redact("x");
  EXPECT_FALSE(c->Compare(Recorded({{"Location", "/a=" + m}}, ""), Live({{"Location", "/a=b"}}, ""))
                   .matched());
  EXPECT_TRUE(
      c->Compare(Recorded({{"Location", "/a?b=" + m}}, ""), Live({{"Location", "/a?b=c"}}, ""))
          .matched());
  // Other fields' values are not URLs: a marker there is only ever a whole value.
  EXPECT_FALSE(c->Compare(Recorded({{"X-Next", rec.response->headers[0].value}}, ""),
                          Live({{"X-Next", "/next?token=xyz&page=2#sig=s2"}}, ""))
                   .matched());
}

TEST(Compare, RedactedJsonField) {
  // Redact a recorded body as taprec does, with the Redactor itself.
  RedactionRules rules;
  rules.json_fields = {*ParseJsonPointer("/token"), *ParseJsonPointer("/pin")};
  Redactor redactor(rules, kKey);
  Exchange rec = Recorded(kJson, R"({"pin":1234,"token":"secret","x":1})");
  ASSERT_EQ(redactor.Apply(&rec), 2u);
  ASSERT_NE(rec.response->body.data.find("tapkit-redacted:"), std::string::npos);
  EXPECT_TRUE(Make()->Compare(rec, Live(kJson, R"({"pin":1,"token":"other","x":1})")).matched());
  CompareOptions o;
  o.redaction_key = kKey;
  auto keyed = Make(o);
  EXPECT_TRUE(keyed->Compare(rec, Live(kJson, R"({"pin":1234,"token":"secret","x":1})")).matched());
  Comparison r = keyed->Compare(rec, Live(kJson, R"({"pin":1234,"token":"other","x":1})"));
  ASSERT_EQ(r.diffs.size(), 1u);
  EXPECT_EQ(r.diffs[0].field, "body /token");
  EXPECT_EQ(r.diffs[0].live, "\"other\"");
}

TEST(Compare, JsonMemberOrderIgnoredAndLeafDiffs) {
  auto c = Make();
  EXPECT_TRUE(c->Compare(Recorded(kJson, R"({"a":1,"b":{"c":[1,2],"d":"x"}})"),
                         Live(kJson, R"( {"b":{"d":"x","c":[1,2]},"a":1} )"))
                  .matched());
  Comparison r = c->Compare(Recorded(kJson, R"({"a":1,"b":{"c":[1,2],"d":"x"},"gone":true})"),
                            Live(kJson, R"({"a":2,"b":{"c":[1,2,3],"d":"y"},"new~/":null})"));
  std::vector<FieldDiff> want = {
      {Kind::kJsonValue, "body /a", "1", "2"},
      {Kind::kJsonValue, "body /b/c/2", std::nullopt, "3"},
      {Kind::kJsonValue, "body /b/d", "\"x\"", "\"y\""},
      {Kind::kJsonValue, "body /gone", "true", std::nullopt},
      {Kind::kJsonValue, "body /new~0~1", std::nullopt, "null"},
  };
  EXPECT_EQ(r.diffs, want);
  // A body that is JSON by its bytes only (text/plain) is compared as JSON too.
  std::vector<Header> text = {{"Content-Type", "text/plain"}};
  EXPECT_TRUE(
      c->Compare(Recorded(text, R"({"a":1,"b":2})"), Live(text, R"({"b":2,"a":1})")).matched());
  // A type change is one diff at that pointer.
  r = c->Compare(Recorded(kJson, R"({"a":{"b":1}})"), Live(kJson, R"({"a":[1]})"));
  ASSERT_EQ(r.diffs.size(), 1u);
  EXPECT_EQ(r.diffs[0], (FieldDiff{Kind::kJsonValue, "body /a", R"({"b":1})", "[1]"}));
}

TEST(Compare, JsonPrettyTextIsJqSorted) {
  TAPKIT_REQUIRE_TOOL("jq");
  std::string rec = R"({"z":[1,{"b":2,"a":"é\n"}],"a":{"y":null,"x":[]},"m":{}})";
  std::string live = R"({"z":[1,{"b":3,"a":"é\n"}],"a":{"y":null,"x":[]},"m":{}})";
  Comparison r = Make()->Compare(Recorded(kJson, rec), Live(kJson, live));
  ASSERT_EQ(r.diffs.size(), 1u);
  EXPECT_EQ(r.recorded_body_text, Shell("jq -S . " + WriteTestFile("rec.json", rec)));
  EXPECT_EQ(r.live_body_text, Shell("jq -S . " + WriteTestFile("live.json", live)));
}

TEST(Compare, IgnoreJsonPathsWithWildcards) {
  CompareOptions o;
  o.flags.ignore_json_paths = {"/meta/generated_at", "/items/*/updated"};
  auto c = Make(o);
  Comparison r = c->Compare(
      Recorded(
          kJson,
          R"({"meta":{"generated_at":"t1","n":2},"items":[{"id":1,"updated":"a"},{"id":2,"updated":"b"}]})"),
      Live(
          kJson,
          R"({"meta":{"generated_at":"t2","n":2},"items":[{"id":1,"updated":"c"},{"id":3,"updated":"d"}]})"));
  ASSERT_EQ(r.diffs.size(), 1u);
  EXPECT_EQ(r.diffs[0], (FieldDiff{Kind::kJsonValue, "body /items/1/id", "2", "3"}));
}

TEST(Compare, UnorderedArraysWithDuplicates) {
  CompareOptions o;
  o.flags.unordered_json_paths = {"/tags", "/rows"};
  auto c = Make(o);
  EXPECT_TRUE(
      c->Compare(Recorded(kJson, R"({"tags":[1,2,2,"x"]})"), Live(kJson, R"({"tags":["x",2,1,2]})"))
          .matched());
  Comparison r =
      c->Compare(Recorded(kJson, R"({"tags":[1,2,2]})"), Live(kJson, R"({"tags":[2,1,1]})"));
  std::vector<FieldDiff> want = {{Kind::kJsonValue, "body /tags/2", "2", std::nullopt},
                                 {Kind::kJsonValue, "body /tags/2", std::nullopt, "1"}};
  EXPECT_EQ(r.diffs, want);
  // Elements are objects compared under the rules (member order, ignored paths).
  o.flags.ignore_json_paths = {"/rows/*/at"};
  EXPECT_TRUE(Make(o)
                  ->Compare(Recorded(kJson, R"({"rows":[{"id":1,"at":1},{"id":2,"at":2}]})"),
                            Live(kJson, R"({"rows":[{"at":9,"id":2},{"id":1,"at":8}]})"))
                  .matched());
  // Without the rule, order counts.
  EXPECT_FALSE(Make()
                   ->Compare(Recorded(kJson, R"({"tags":[1,2]})"), Live(kJson, R"({"tags":[2,1]})"))
                   .matched());
}

TEST(Compare, JsonPatterns) {
  CompareOptions o;
  o.flags.json_patterns = {{"/id", "[0-9]+"}, {"/items/*/ref", "ref-[a-z]+"}};
  auto c = Make(o);
  EXPECT_TRUE(c->Compare(Recorded(kJson, R"({"id":17,"items":[{"ref":"ref-ab"}]})"),
                         Live(kJson, R"({"id":"42","items":[{"ref":"ref-zz"}]})"))
                  .matched());
  Comparison r = c->Compare(Recorded(kJson, R"({"id":17,"items":[{"ref":"ref-ab"}]})"),
                            Live(kJson, R"({"id":"4x","items":[{"ref":"ref-1"}]})"));
  std::vector<FieldDiff> want = {
      {Kind::kJsonValue, "body /id", "17", "\"4x\""},
      {Kind::kJsonValue, "body /items/0/ref", "\"ref-ab\"", "\"ref-1\""}};
  EXPECT_EQ(r.diffs, want);
}

TEST(Compare, TextBodyPreviewAndTexts) {
  std::vector<Header> text = {{"Content-Type", "text/plain"}};
  std::string rec(100, 'a'), live = std::string(99, 'a') + "\n";
  Comparison r = Make()->Compare(Recorded(text, rec), Live(text, live));
  ASSERT_EQ(r.diffs.size(), 1u);
  EXPECT_EQ(r.diffs[0], (FieldDiff{Kind::kBody, "body", std::string(64, 'a') + "... (100 bytes)",
                                   std::string(64, 'a') + "... (100 bytes)"}));
  EXPECT_EQ(r.recorded_body_text, rec);
  EXPECT_EQ(r.live_body_text, live);
  r = Make()->Compare(Recorded(text, "a\tb\x01"), Live(text, "ab"));
  ASSERT_EQ(r.diffs.size(), 1u);
  EXPECT_EQ(r.diffs[0].recorded, "a\\tb\\x01 (4 bytes)");
  // Binary (a NUL byte, GNU diff's rule) is shown as a hex dump.
  r = Make()->Compare(Recorded({}, std::string("\0\x01", 2)), Live({}, std::string("\0\x02", 2)));
  // hexdump -C's lines (printf '\0\1' | hexdump -C, without its closing length line).
  EXPECT_EQ(r.recorded_body_text,
            "00000000  00 01                                             |..|\n");
  EXPECT_EQ(r.live_body_text, "00000000  00 02                                             |..|\n");
}

TEST(Compare, GzipAndBrotliBodiesAreDecoded) {
  TAPKIT_REQUIRE_TOOL("gzip");
  TAPKIT_REQUIRE_TOOL("brotli");
  std::string json = R"({"b":[1,2,3],"a":"text"})";
  std::string gz = Shell("gzip -c " + WriteTestFile("body.json", json));
  std::string br = Shell("brotli -c " + WriteTestFile("body2.json", json));
  ASSERT_FALSE(gz.empty());
  ASSERT_FALSE(br.empty());
  std::vector<Header> gzh = {{"Content-Type", "application/json"}, {"Content-Encoding", "gzip"}};
  std::vector<Header> brh = {{"Content-Type", "application/json"}, {"Content-Encoding", "br"}};
  auto c = Make();
  // The live side encoded by tapkit (different bytes from the tools'), members reordered.
  std::string reordered = R"({"a":"text","b":[1,2,3]})";
  EXPECT_TRUE(
      c->Compare(Recorded(gzh, gz), Live(gzh, *EncodeContent(reordered, "gzip"))).matched());
  EXPECT_TRUE(c->Compare(Recorded(brh, br), Live(brh, *EncodeContent(reordered, "br"))).matched());
  Comparison r = c->Compare(Recorded(gzh, gz),
                            Live(gzh, *EncodeContent(R"({"a":"text","b":[1,2,4]})", "gzip")));
  ASSERT_EQ(r.diffs.size(), 1u);
  EXPECT_EQ(r.diffs[0], (FieldDiff{Kind::kJsonValue, "body /b/2", "3", "4"}));
  // A coding change is a header difference; the bodies still compare decoded.
  r = c->Compare(Recorded(gzh, gz), Live(brh, br));
  ASSERT_EQ(r.diffs.size(), 1u);
  EXPECT_EQ(r.diffs[0], (FieldDiff{Kind::kHeader, "header content-encoding", "gzip", "br"}));
  // The same bytes under the same coding match without decoding, even bytes that are not
  // gzip at all; different undecodable bytes are compared as sent.
  EXPECT_TRUE(c->Compare(Recorded(gzh, gz), Live(gzh, gz)).matched());
  EXPECT_TRUE(c->Compare(Recorded(gzh, "not gzip"), Live(gzh, "not gzip")).matched());
  r = c->Compare(Recorded(gzh, "not gzip"), Live(gzh, "not gzip!"));
  ASSERT_EQ(r.diffs.size(), 1u);
  EXPECT_EQ(r.diffs[0],
            (FieldDiff{Kind::kBody, "body", "not gzip (8 bytes)", "not gzip! (9 bytes)"}));
}

TEST(Compare, TruncatedRecordedBodyComparedOnPrefix) {
  std::vector<Header> text = {{"Content-Type", "text/plain"}};
  std::string full = "0123456789abcdefghij";
  Exchange rec = Recorded(text, full.substr(0, 10));
  rec.response->body.length = full.size();
  rec.response->body.truncated = true;
  auto c = Make();
  Comparison r = c->Compare(rec, Live(text, "0123456789ABCDEFGHIJ"));
  EXPECT_TRUE(r.matched());
  EXPECT_TRUE(r.body_prefix_only);
  r = c->Compare(rec, Live(text, "01234X6789abcdefghij"));
  ASSERT_EQ(r.diffs.size(), 1u);
  EXPECT_EQ(r.diffs[0],
            (FieldDiff{Kind::kBody, "body", "0123456789 (10 bytes)", "01234X6789 (10 bytes)"}));
  // Shorter live body than the stored prefix: differs.
  EXPECT_FALSE(c->Compare(rec, Live(text, "01234")).matched());
  // A JSON body cut short is compared on its prefix too, as bytes.
  Exchange jrec = Recorded(kJson, R"({"a":1,"b":)");
  jrec.response->body.truncated = true;
  EXPECT_TRUE(c->Compare(jrec, Live(kJson, R"({"a":1,"b":2})")).matched());
}

TEST(Compare, TruncatedGzipBodyComparedOnDecodedPrefix) {
  TAPKIT_REQUIRE_TOOL("gzip");
  std::string text;
  for (int i = 0; i < 2000; ++i) text += "line " + std::to_string(i) + "\n";
  // gzip -n: no name or time in the header, so equal texts give equal bytes (equal lengths).
  auto gzip = [](const std::string& t) {
    return Shell("gzip -n -c " + WriteTestFile("big.txt", t));
  };
  std::string gz = gzip(text);
  ASSERT_GT(gz.size(), 600u);
  std::vector<Header> h = {{"Content-Type", "text/plain"}, {"Content-Encoding", "gzip"}};
  Exchange rec = Recorded(h, gz.substr(0, 600));
  rec.response->body.length = gz.size();
  rec.response->body.truncated = true;
  auto c = Make();
  Comparison r = c->Compare(rec, Live(h, gzip(text)));
  EXPECT_TRUE(r.matched()) << (r.diffs.empty() ? "" : r.diffs[0].field);
  EXPECT_TRUE(r.body_prefix_only);
  std::string changed = text;
  changed[3] = 'X';
  EXPECT_FALSE(c->Compare(rec, Live(h, gzip(changed))).matched());
  // Past what the prefix decodes to, a change is seen only through the wire length.
  changed = text;
  changed[changed.size() - 2] = 'X';
  std::string gz_changed = gzip(changed);
  r = c->Compare(rec, Live(h, gz_changed));
  if (gz_changed.size() == gz.size()) {
    EXPECT_TRUE(r.matched());
  } else {
    ASSERT_EQ(r.diffs.size(), 1u);
    EXPECT_EQ(r.diffs[0], (FieldDiff{Kind::kBody, "body length", std::to_string(gz.size()),
                                     std::to_string(gz_changed.size())}));
  }
  changed += "one more line\n";
  r = c->Compare(rec, Live(h, gzip(changed)));
  ASSERT_EQ(r.diffs.size(), 1u);
  EXPECT_EQ(r.diffs[0].field, "body length");
}

TEST(Compare, TruncatedRecordedBodyWireLength) {
  // The recorded body was cut at the body limit: its stored prefix matches, but the body on the
  // wire was 20 bytes and the live one is longer or shorter.
  std::vector<Header> text = {{"Content-Type", "text/plain"}};
  std::string full = "0123456789abcdefghij";
  Exchange rec = Recorded(text, full.substr(0, 10));
  rec.response->body.length = full.size();
  rec.response->body.truncated = true;
  auto c = Make();
  Comparison r = c->Compare(rec, Live(text, full + "klm"));
  ASSERT_EQ(r.diffs.size(), 1u);
  EXPECT_EQ(r.diffs[0], (FieldDiff{Kind::kBody, "body length", "20", "23"}));
  EXPECT_TRUE(r.body_prefix_only);
  r = c->Compare(rec, Live(text, full.substr(0, 15)));
  ASSERT_EQ(r.diffs.size(), 1u);
  EXPECT_EQ(r.diffs[0], (FieldDiff{Kind::kBody, "body length", "20", "15"}));
  // The live body as received was cut too (its own cap): its counted length still counts.
  Response cut = Live(text, full.substr(0, 12));
  cut.body.length = 20;
  cut.body.truncated = true;
  EXPECT_TRUE(c->Compare(rec, cut).matched());
  // Different codings: the wire lengths say nothing.
  std::vector<Header> gz = {{"Content-Type", "text/plain"}, {"Content-Encoding", "gzip"}};
  Response enc = Live(gz, *EncodeContent(full + "klm", "gzip"));
  r = c->Compare(rec, enc);
  ASSERT_EQ(r.diffs.size(), 1u);
  EXPECT_EQ(r.diffs[0].field, "header content-encoding");
  // A body cut by a gap or the capture's end before the limit (stored == length) has only a
  // lower bound: a longer live body is no difference, a shorter one is.
  Exchange seen = Recorded(text, full.substr(0, 10));
  seen.response->body.truncated = true;
  EXPECT_TRUE(c->Compare(seen, Live(text, full)).matched());
  EXPECT_FALSE(c->Compare(seen, Live(text, "012345678")).matched());
}

// ---- The rules file ----

absl::StatusOr<std::shared_ptr<const Comparer>> FromRules(const std::string& yaml) {
  CompareOptions o;
  o.rules_file = WriteTestFile("rules.yaml", yaml);
  return Comparer::Create(o);
}

TEST(Rules, GlobalRoutesAndExchanges) {
  absl::StatusOr<std::shared_ptr<const Comparer>> c = FromRules(R"(
global:
  ignore_headers: [x-trace-id, /x-b3-.*/]
  ignore_json_paths: [/meta/generated_at]
  unordered_json_paths: [/tags]
  header_patterns: {x-order: "[0-9a-f-]{36}"}
  json_patterns: {/id: "[0-9]+"}
routes:
  - method: GET
    path: /api/orders/[0-9]+
    ignore_json_paths: [/eta]
  - path: /health
    ignore_body: true
exchanges:
  - id: "0:17"
    ignore_status: true
)");
  ASSERT_TRUE(c.ok()) << c.status();
  std::vector<Header> rh = {{"Content-Type", "application/json"},
                            {"X-Trace-Id", "1"},
                            {"X-B3-SpanId", "1"},
                            {"X-Order", "123e4567-e89b-12d3-a456-426614174000"}};
  std::vector<Header> lh = {{"Content-Type", "application/json"},
                            {"X-Trace-Id", "2"},
                            {"X-B3-SpanId", "2"},
                            {"X-Order", "00000000-e89b-12d3-a456-426614174999"}};
  std::string rb = R"({"id":1,"meta":{"generated_at":"a"},"tags":["x","y"],"eta":5})";
  std::string lb = R"({"id":2,"meta":{"generated_at":"b"},"tags":["y","x"],"eta":6})";
  Exchange x = Recorded(rh, rb, 200, "GET", "/api/orders/12?full=1");
  x.stream_id = 18;
  EXPECT_TRUE((*c)->Compare(x, Live(lh, lb)).matched());
  // Another method: the route does not apply, /eta counts.
  x.request->method = "POST";
  Comparison r = (*c)->Compare(x, Live(lh, lb));
  ASSERT_EQ(r.diffs.size(), 1u);
  EXPECT_EQ(r.diffs[0].field, "body /eta");
  // The route's regex must match the whole path.
  x.request->method = "GET";
  x.request->path = "/api/orders/12/items";
  EXPECT_FALSE((*c)->Compare(x, Live(lh, lb)).matched());
  // A header pattern needs both values to match it.
  x.request->path = "/api/orders/12";
  std::vector<Header> bad = lh;
  bad[3].value = "not-a-uuid";
  r = (*c)->Compare(x, Live(bad, lb));
  ASSERT_EQ(r.diffs.size(), 1u);
  EXPECT_EQ(r.diffs[0].field, "header x-order");
  // Exchange rules by id; route without a method.
  Exchange h = Recorded({}, "ok", 200, "HEAD", "/health");
  h.stream_id = 18;
  EXPECT_TRUE((*c)->Compare(h, Live({}, "not ok")).matched());
  Exchange e = Recorded({}, "a", 200, "GET", "/other");
  EXPECT_TRUE((*c)->Compare(e, Live({}, "a", 500)).matched());  // 0:17 ignores status
  e.stream_id = 16;
  EXPECT_FALSE((*c)->Compare(e, Live({}, "a", 500)).matched());
}

TEST(Rules, EmptyFileHasNoRules) {
  absl::StatusOr<std::shared_ptr<const Comparer>> c = FromRules("");
  ASSERT_TRUE(c.ok()) << c.status();
  EXPECT_FALSE((*c)->Compare(Recorded({}, "a"), Live({}, "b")).matched());
}

TEST(Rules, ErrorsNameFileLineAndKey) {
  struct Case {
    std::string yaml;
    std::string message;  // after "FILE:"
  };
  std::vector<Case> cases = {
      {"global:\n  ignore_header: [a]\n", "2: global.ignore_header: unknown key"},
      {"global: {}\nextra: 1\n", "2: extra: unknown key (expected global, routes, exchanges)"},
      {"global:\n  ignore_headers: x-a\n",
       "2: global.ignore_headers: must be a list, not a scalar"},
      {"global:\n  ignore_status: maybe\n", "2: global.ignore_status: must be true or false"},
      {"global:\n  ignore_headers:\n    - a\n    - /x-(/\n",
       "4: global.ignore_headers: bad regex \"x-(\": missing ): x-("},
      {"global:\n  ignore_json_paths: [/a, b]\n",
       "2: global.ignore_json_paths: JSON pointer \"b\""},
      {"global:\n  json_patterns: {/a: \"(\"}\n", "2: global.json_patterns: bad regex"},
      {"global:\n  header_patterns: {x-a: [1]}\n",
       "2: global.header_patterns: keys and values must be strings"},
      {"routes:\n  - method: GET\n", "2: routes[0]: a route needs a path"},
      {"routes:\n  - path: /a(\n", "2: routes[0].path: bad regex"},
      {"routes: {a: 1}\n", "1: routes: must be a list, not a mapping"},
      {"exchanges:\n  - id: \"0-17\"\n",
       "2: exchanges[0].id: must be \"CAPTURE_POINT:STREAM\" as tapcat -o json's id shows it"},
      {"exchanges:\n  - ignore_body: true\n", "2: exchanges[0]: an exchange rule needs an id"},
      {"global: [\n", "2:1: invalid YAML"},
      {"- a\n", "1: rules file: must be a mapping, not a list"},
      // YAML 1.2 section 3.2.1.1: keys are unique; yaml-cpp keeps both pairs, so the later one
      // is an error naming its line and the first's (lines counted by hand).
      {"global:\n  ignore_status: true\n  ignore_status: false\n",
       "3: global.ignore_status: duplicate key (first on line 2)"},
      {"global:\n  ignore_headers: [a]\n  ignore_body: true\n  ignore_headers: [b]\n",
       "4: global.ignore_headers: duplicate key (first on line 2)"},
      {"global: {ignore_body: true}\nroutes: []\nglobal: {ignore_status: true}\n",
       "3: global: duplicate key (first on line 1)"},
      {"routes:\n  - path: /a\n    method: GET\n    path: /b\n",
       "4: routes[0].path: duplicate key (first on line 2)"},
      {"exchanges:\n  - id: \"1:2\"\n    id: \"1:3\"\n",
       "3: exchanges[0].id: duplicate key (first on line 2)"},
      {"global:\n  header_patterns:\n    x-a: \"a+\"\n    x-b: \"b+\"\n    x-a: \"c+\"\n",
       "5: global.header_patterns.x-a: duplicate key (first on line 3)"},
      {"global:\n  json_patterns: {/a: \"1\", /a: \"2\"}\n",
       "2: global.json_patterns./a: duplicate key (first on line 2)"},
  };
  for (const Case& k : cases) {
    absl::StatusOr<std::shared_ptr<const Comparer>> c = FromRules(k.yaml);
    ASSERT_FALSE(c.ok()) << k.yaml;
    EXPECT_EQ(c.status().code(), absl::StatusCode::kInvalidArgument);
    std::string want = TestDir() + "/rules.yaml:" + k.message;
    EXPECT_TRUE(absl::StartsWith(c.status().message(), want))
        << "yaml:\n"
        << k.yaml << "got:  " << c.status().message() << "\nwant: " << want;
  }
  CompareOptions o;
  o.rules_file = TestDir() + "/missing.yaml";
  absl::StatusOr<std::shared_ptr<const Comparer>> c = Comparer::Create(o);
  ASSERT_FALSE(c.ok());
  EXPECT_EQ(c.status().message(), "--rules " + o.rules_file + ": No such file or directory");
  o.rules_file = TestDir();
  c = Comparer::Create(o);
  ASSERT_FALSE(c.ok());
  EXPECT_EQ(c.status().message(), "--rules " + o.rules_file + ": not a regular file");
}

TEST(Rules, SameKeyInSeparateMappingsIsNoDuplicate) {
  absl::StatusOr<std::shared_ptr<const Comparer>> c = FromRules(
      "routes:\n  - path: /a\n    ignore_body: true\n  - path: /b\n    ignore_body: true\n"
      "exchanges:\n  - id: \"1:2\"\n  - id: \"1:3\"\n");
  ASSERT_TRUE(c.ok()) << c.status();
  EXPECT_TRUE((*c)->warnings().empty());
}

TEST(Rules, LowerCaseRegisteredMethodWarns) {
  // Methods are case-sensitive (RFC 9110 section 9.1): "get" matches no GET request, so the
  // route's rule does nothing, and the Comparer says so as tapcat's --method get does.
  absl::StatusOr<std::shared_ptr<const Comparer>> c = FromRules(
      "routes:\n  - method: GET\n    path: /a\n  - method: get\n    path: /b\n"
      "    ignore_body: true\n  - method: purge\n    path: /c\n  - path: /d\n"
      "    method: Patch\n");
  ASSERT_TRUE(c.ok()) << c.status();
  const std::string file = TestDir() + "/rules.yaml";
  EXPECT_EQ((*c)->warnings(),
            (std::vector<std::string>{
                file + ":4: routes[1].method: get matches no request: methods are "
                       "case-sensitive (RFC 9110 section 9.1); did you mean GET?",
                file + ":10: routes[3].method: Patch matches no request: methods are "
                       "case-sensitive (RFC 9110 section 9.1); did you mean PATCH?"}));
  Exchange recorded = Recorded({}, "a");
  recorded.request->method = "GET";
  recorded.request->path = "/b";
  EXPECT_FALSE((*c)->Compare(recorded, Live({}, "b")).matched());  // the rule did not apply

  absl::StatusOr<std::shared_ptr<const Comparer>> none = FromRules("global: {}\n");
  ASSERT_TRUE(none.ok()) << none.status();
  EXPECT_TRUE((*none)->warnings().empty());
}

// ---- UnifiedDiff against GNU diff -u ----

std::string GnuDiff(const std::string& a, const std::string& b, int context = 3) {
  std::string pa = WriteTestFile("a.txt", a), pb = WriteTestFile("b.txt", b);
  return Shell("diff -U " + std::to_string(context) + " --label recorded --label live " + pa + " " +
               pb);
}

TEST(UnifiedDiff, EqualTextsGiveNothing) {
  EXPECT_EQ(UnifiedDiff("a\nb\n", "a\nb\n", "recorded", "live"), "");
  EXPECT_EQ(UnifiedDiff("", "", "recorded", "live"), "");
}

TEST(UnifiedDiff, HandPickedPairsMatchGnuDiff) {
  TAPKIT_REQUIRE_TOOL("diff");
  std::string ten;
  for (int i = 1; i <= 30; ++i) ten += "line " + std::to_string(i) + "\n";
  auto edit = [&](std::vector<std::pair<int, std::string>> repl) {
    std::vector<std::string> lines;
    for (int i = 1; i <= 30; ++i) lines.push_back("line " + std::to_string(i) + "\n");
    for (auto& [at, text] : repl) lines[static_cast<size_t>(at)] = text;
    std::string s;
    for (auto& l : lines) s += l;
    return s;
  };
  std::vector<std::pair<std::string, std::string>> pairs = {
      {"a\nb\nc\n", "a\nB\nc\n"},
      {"", "a\nb\n"},
      {"a\nb\n", ""},
      {"a\nb\nc", "a\nb\nc\n"},  // a missing newline at the end
      {"a\nb\nc\n", "a\nb\nd"},
      {"x\n", "y"},
      {ten, edit({{0, "first\n"}})},
      {ten, edit({{29, "last\n"}})},
      {ten, edit({{3, "x\n"}, {25, "y\n"}})},  // two hunks
      {ten, edit({{3, "x\n"}, {10, "y\n"}})},  // six common lines apart: one hunk
      {ten, edit({{3, "x\n"}, {11, "y\n"}})},  // seven apart: two hunks
      {ten, edit({{3, ""}, {4, ""}, {20, "a\nb\nc\n"}})},
      {"a\nb\na\nb\na\n", "a\nb\na\n"},  // where the deletion sits is a choice
      {"a\na\na\n", "a\na\na\na\na\n"},
      {"}\n}\n}\n", "}\n]\n}\n}\n"},
      {"{\n  \"a\": 1,\n  \"b\": [\n    1,\n    2\n  ]\n}\n",
       "{\n  \"a\": 2,\n  \"b\": [\n    1,\n    2,\n    3\n  ],\n  \"c\": {}\n}\n"},
  };
  for (const auto& [a, b] : pairs) {
    EXPECT_EQ(UnifiedDiff(a, b, "recorded", "live"), GnuDiff(a, b)) << "a:\n" << a << "b:\n" << b;
  }
  EXPECT_EQ(UnifiedDiff(pairs[9].first, pairs[9].second, "recorded", "live", 1),
            GnuDiff(pairs[9].first, pairs[9].second, 1));
  EXPECT_EQ(UnifiedDiff(pairs[9].first, pairs[9].second, "recorded", "live", 0),
            GnuDiff(pairs[9].first, pairs[9].second, 0));
}

// Counts a diff's deleted and inserted lines.
std::pair<int, int> Changes(const std::string& diff) {
  int del = 0, add = 0;
  for (size_t at = 0; at < diff.size();) {
    size_t nl = diff.find('\n', at);
    std::string line = diff.substr(at, nl - at);
    at = nl == std::string::npos ? diff.size() : nl + 1;
    if (absl::StartsWith(line, "---") || absl::StartsWith(line, "+++")) continue;
    if (!line.empty() && line[0] == '-') ++del;
    if (!line.empty() && line[0] == '+') ++add;
  }
  return {del, add};
}

// Small texts over few distinct lines have many equally short edit scripts. dtl (Wu's O(NP)
// algorithm) and GNU diff (Myers' bisection) may then pair different lines: the hunks are
// checked to be as short as diff -u's, to turn a into b under patch(1), and, in most rounds,
// to be diff -u's own.
TEST(UnifiedDiff, RandomPairsAreMinimalAndApply) {
  TAPKIT_REQUIRE_TOOL("diff");
  TAPKIT_REQUIRE_TOOL("patch");
  std::mt19937 rng(12);
  const char* words[] = {"a\n", "b\n", "c\n", "{\n", "}\n", "  x\n"};
  int same = 0;
  const int kRounds = 150;
  for (int round = 0; round < kRounds; ++round) {
    std::string a, b;
    int na = static_cast<int>(rng() % 14), nb = static_cast<int>(rng() % 12);
    for (int i = 0; i < na; ++i) a += words[rng() % 6];
    b = a;
    for (int i = 0; i < nb / 3 + 1; ++i) {  // insert, delete or replace a line
      std::vector<std::string> lines;
      for (size_t at = 0; at < b.size();) {
        size_t nl = b.find('\n', at);
        lines.push_back(b.substr(at, nl + 1 - at));
        at = nl + 1;
      }
      size_t pos = lines.empty() ? 0 : rng() % (lines.size() + 1);
      int op = static_cast<int>(rng() % 3);
      if (op == 0 || pos == lines.size()) {
        lines.insert(lines.begin() + static_cast<long>(pos), words[rng() % 6]);
      } else if (op == 1) {
        lines.erase(lines.begin() + static_cast<long>(pos));
      } else {
        lines[pos] = words[rng() % 6];
      }
      b.clear();
      for (auto& l : lines) b += l;
    }
    std::string mine = UnifiedDiff(a, b, "recorded", "live"), gnu = GnuDiff(a, b);
    if (mine == gnu) {
      ++same;
      continue;
    }
    EXPECT_EQ(Changes(mine), Changes(gnu)) << "a:\n" << a << "b:\n" << b << mine << gnu;
    std::string pa = WriteTestFile("p.txt", a), pd = WriteTestFile("p.diff", mine);
    int st = 0;
    Shell("patch -s " + pa + " " + pd + " 2>&1", &st);
    EXPECT_EQ(st, 0);
    std::ifstream in(pa, std::ios::binary);
    EXPECT_EQ(std::string(std::istreambuf_iterator<char>(in), {}), b) << mine;
  }
  EXPECT_GT(same, kRounds * 3 / 4);
  std::printf("UnifiedDiff equal to diff -u in %d of %d random rounds\n", same, kRounds);
}

}  // namespace
}  // namespace tapkit::replay
