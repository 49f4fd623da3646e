// Redaction: key files (read whole, refused when they are not a private regular file of a
// sensible size, as ssh refuses a private key others can read, never by throwing); JSON pointers
// against RFC 6901's own examples; query parameters, form and JSON bodies (gzip, deflate, br);
// bodies that cannot be examined dropped and flagged; the flags; and a written file scanned, frame
// by frame with libzstd itself, for a planted secret.
#include "format/redact.h"

#include <gtest/gtest.h>
#include <sys/stat.h>
#include <unistd.h>
#include <zstd.h>

#include <fstream>
#include <functional>
#include <nlohmann/json.hpp>
#include <string>

#include "format/content_coding.h"
#include "format/test_dir.h"
#include "format/testutil.h"

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

const std::string kKey = "a redaction key, thirty-two bytes";

Body BodyOf(std::string data) {
  Body b;
  b.length = data.size();
  b.data = std::move(data);
  return b;
}

// A POST with a JSON response; callers change what they need.
Exchange Post(std::string path) {
  Exchange x;
  x.request.emplace();
  x.request->method = "POST";
  x.request->path = std::move(path);
  x.response.emplace();
  x.response->status = 200;
  x.response->headers = {{"Content-Type", "application/json"}};
  return x;
}

std::string Field(const std::vector<Header>& hs, std::string_view name) {
  for (const Header& h : hs) {
    if (h.name == name) return h.value;
  }
  return "<none>";
}

Redactor JsonRedactor(std::vector<std::string> pointers,
                      size_t cap = kDefaultRedactionDecodeCap) {
  RedactionRules rules;
  for (const std::string& p : pointers) rules.json_fields.push_back(*ParseJsonPointer(p));
  rules.decode_cap = cap;
  return Redactor(std::move(rules), kKey);
}

// RFC 6901 section 5: the pointers of its example, and what they are as reference tokens.
TEST(JsonPointer, ParsesRfc6901Section5Pointers) {
  const std::pair<std::string, std::vector<std::string>> cases[] = {
      {"", {}},
      {"/foo", {"foo"}},
      {"/foo/0", {"foo", "0"}},
      {"/", {""}},
      {"/a~1b", {"a/b"}},
      {"/c%d", {"c%d"}},
      {"/e^f", {"e^f"}},
      {"/g|h", {"g|h"}},
      {"/i\\j", {"i\\j"}},
      {"/k\"l", {"k\"l"}},
      {"/ ", {" "}},
      {"/m~0n", {"m~n"}},
      {"/~01", {"~1"}},  // section 4: ~01 is "~1", not "/"
      {"/a//b", {"a", "", "b"}},
  };
  for (const auto& [text, tokens] : cases) {
    absl::StatusOr<JsonPointer> p = ParseJsonPointer(text);
    ASSERT_TRUE(p.ok()) << text << ": " << p.status();
    EXPECT_EQ(p->tokens, tokens) << text;
    EXPECT_EQ(p->text, text);
  }
}

TEST(JsonPointer, BadPointersSayWhere) {
  const std::pair<std::string, std::string> cases[] = {
      {"foo", "JSON pointer \"foo\": must be empty or start with \"/\" (RFC 6901 section 3)"},
      {"/a~2",
       "JSON pointer \"/a~2\": offset 2: \"~\" must be followed by 0 or 1 (RFC 6901 "
       "section 3)"},
      {"/a/~",
       "JSON pointer \"/a/~\": offset 3: \"~\" must be followed by 0 or 1 (RFC 6901 "
       "section 3)"},
  };
  for (const auto& [text, message] : cases) {
    absl::StatusOr<JsonPointer> p = ParseJsonPointer(text);
    ASSERT_FALSE(p.ok()) << text;
    EXPECT_EQ(p.status().code(), absl::StatusCode::kInvalidArgument);
    EXPECT_EQ(p.status().message(), message);
  }
}

// Every pointer of RFC 6901 section 5 on its example document: the value it names (as the RFC
// lists it, serialized compactly; a string by its text) becomes the marker, found again with
// nlohmann's own RFC 6901 implementation, and nothing else changes.
TEST(RedactJson, Rfc6901Section5DocumentEveryPointer) {
  const std::string doc = R"({
      "foo": ["bar", "baz"],
      "": 0,
      "a/b": 1,
      "c%d": 2,
      "e^f": 3,
      "g|h": 4,
      "i\\j": 5,
      "k\"l": 6,
      " ": 7,
      "m~n": 8
   })";
  const std::pair<std::string, std::string> cases[] = {
      {"",
       R"({"foo":["bar","baz"],"":0,"a/b":1,"c%d":2,"e^f":3,"g|h":4,"i\\j":5,"k\"l":6," ":7,"m~n":8})"},
      {"/foo", R"(["bar","baz"])"},
      {"/foo/0", "bar"},
      {"/", "0"},
      {"/a~1b", "1"},
      {"/c%d", "2"},
      {"/e^f", "3"},
      {"/g|h", "4"},
      {"/i\\j", "5"},
      {"/k\"l", "6"},
      {"/ ", "7"},
      {"/m~0n", "8"},
  };
  for (const auto& [pointer, plain] : cases) {
    Redactor r = JsonRedactor({pointer});
    Exchange x = Post("/");
    x.response->body = BodyOf(doc);
    RedactionStats st;
    EXPECT_EQ(r.Apply(&x, &st), 1u) << pointer;
    EXPECT_EQ(st.json_values, 1u);
    nlohmann::json got = nlohmann::json::parse(x.response->body.data, nullptr, false);
    ASSERT_FALSE(got.is_discarded()) << x.response->body.data;
    nlohmann::json want = nlohmann::json::parse(doc);
    want[nlohmann::json::json_pointer(pointer)] = r.Redact(plain);
    EXPECT_EQ(got, want) << pointer;
    EXPECT_EQ(x.response->body.length, x.response->body.data.size());
  }
}

TEST(RedactJson, WildcardsIndexesAndDash) {
  const std::string doc =
      R"({"users":[{"token":"a","n":1},{"token":"b"},{"n":2}],"-":"dash","list":[10,20,30],)"
      R"("t":"tapkit-redacted:000000000000"})";
  Redactor r = JsonRedactor(
      {"/users/*/token", "/list/-", "/list/01", "/-", "/list/2", "/t", "/missing/x", "/users/9"});
  Exchange x = Post("/");
  x.response->body = BodyOf(doc);
  RedactionStats st;
  EXPECT_EQ(r.Apply(&x, &st), 4u);
  nlohmann::json want = nlohmann::json::parse(doc);
  want["users"][0]["token"] = r.Redact("a");
  want["users"][1]["token"] = r.Redact("b");
  want["-"] = r.Redact("dash");
  want["list"][2] = r.Redact("30");
  // A marker already there is left alone: redacting twice changes nothing.
  EXPECT_EQ(nlohmann::json::parse(x.response->body.data), want);
  Exchange again = x;
  EXPECT_EQ(r.Apply(&again), 0u);
  EXPECT_EQ(again, x);
}

// Query parameters: by their percent-decoded name in any case; the value's marker is of its
// decoded text, so equal secrets give equal markers wherever they were.
TEST(RedactQuery, PathRefererLocationAndFormBodies) {
  RedactionRules rules;
  rules.query_params = DefaultRedactedQueryParams();
  Redactor r(rules, kKey);
  Exchange x = Post(
      "/login?user=ann&token=s%20e+cret&TOKEN=abc&%6Bey=k1&key&sig=&next=%2Fhome"
      "#access_token=frag");
  const std::string form = "user=ann&password=hunter2&api_key=abc";
  x.request->headers = {{"Referer", "https://app.example/cb?code=1&access_token=abc"},
                        {"Content-Type", "application/x-www-form-urlencoded; charset=utf-8"},
                        {"Content-Length", std::to_string(form.size())},
                        {"Authorization", "Bearer abc"}};
  x.request->body = BodyOf(form);
  x.response->headers = {{"location", "/next?password=hunter2&page=2"}};
  RedactionStats st;
  EXPECT_EQ(r.Apply(&x, &st), 9u);
  EXPECT_EQ(st.header_values, 1u);
  EXPECT_EQ(st.query_values, 8u);  // 4 in the path, 1 Referer, 2 in the form, 1 Location
  const std::string abc = r.Redact("abc"), hunter = r.Redact("hunter2");
  EXPECT_EQ(x.request->path, "/login?user=ann&token=" + r.Redact("s e cret") + "&TOKEN=" + abc +
                                 "&%6Bey=" + r.Redact("k1") + "&key&sig=&next=%2Fhome" +
                                 "#access_token=" + r.Redact("frag"));
  EXPECT_EQ(Field(x.request->headers, "Referer"),
            "https://app.example/cb?code=1&access_token=" + abc);
  EXPECT_EQ(x.request->body.data, "user=ann&password=" + hunter + "&api_key=" + abc);
  EXPECT_EQ(x.request->body.length, x.request->body.data.size());
  EXPECT_EQ(Field(x.request->headers, "Content-Length"),
            std::to_string(x.request->body.data.size()));
  EXPECT_EQ(Field(x.response->headers, "location"), "/next?password=" + hunter + "&page=2");
  EXPECT_EQ(Field(x.request->headers, "Authorization"), r.Redact("Bearer abc"));
  // The marker needs no escaping in a query: RFC 3986 section 3.4's characters only.
  EXPECT_EQ(abc.find_first_not_of("abcdefghijklmnopqrstuvwxyz0123456789-:"), std::string::npos);
}

// Userinfo passwords (RFC 3986 section 3.2.1 deprecates "user:password@"): in an absolute-form
// request target (RFC 9112 section 3.2.2) and in Referer and Location URLs the password becomes
// its marker, the user name stays; a URL without one, or a path, is left alone.
TEST(RedactQuery, UserinfoPasswordsInUrls) {
  Redactor r(RedactionRules{}, kKey);  // no query parameter rules: passwords all the same
  Exchange x = Post("http://ann:hunter2@proxy.example:8080/a?b=1");
  x.request->headers = {{"Referer", "https://bob:s3cret@app.example/home#x"},
                        {"X-Other", "https://carl:pw@elsewhere.example/"}};
  x.response->headers = {{"Location", "//dave:pw2@cdn.example/f"},
                         {"Content-Location", "/no/authority@here:x"}};
  RedactionStats st;
  r.Apply(&x, &st);
  EXPECT_EQ(st.query_values, 3u);
  EXPECT_EQ(x.request->path, "http://ann:" + r.Redact("hunter2") + "@proxy.example:8080/a?b=1");
  EXPECT_EQ(Field(x.request->headers, "Referer"),
            "https://bob:" + r.Redact("s3cret") + "@app.example/home#x");
  EXPECT_EQ(Field(x.request->headers, "X-Other"), "https://carl:pw@elsewhere.example/");
  EXPECT_EQ(Field(x.response->headers, "Location"), "//dave:" + r.Redact("pw2") + "@cdn.example/f");
  EXPECT_EQ(Field(x.response->headers, "Content-Location"), "/no/authority@here:x");
  // Redacting again changes nothing.
  Exchange again = x;
  RedactionStats st2;
  r.Apply(&again, &st2);
  EXPECT_EQ(st2.query_values, 0u);
  EXPECT_EQ(again.request->path, x.request->path);
  // The sidecar's view of the target goes through RedactUrl.
  std::string target = "http://u:p@h/";
  EXPECT_TRUE(r.RedactUrl(&target));
  EXPECT_EQ(target, "http://u:" + r.Redact("p") + "@h/");
}

// Only a whole marker is left alone: a value that merely begins "tapkit-redacted:" is a secret
// like any other (a client could send one to keep its token out of redaction).
TEST(RedactQuery, OnlyWholeMarkersAreLeftAlone) {
  Redactor r(RedactionRules{{}, DefaultRedactedQueryParams(), {*ParseJsonPointer("/token")}}, kKey);
  const std::string marker = r.Redact("x");
  EXPECT_TRUE(IsRedactionMarker(marker));
  EXPECT_TRUE(IsRedactionMarker("tapkit-redacted:0123456789ab"));
  EXPECT_FALSE(IsRedactionMarker("tapkit-redacted:0123456789AB"));   // upper case
  EXPECT_FALSE(IsRedactionMarker("tapkit-redacted:0123456789a"));    // 11 digits
  EXPECT_FALSE(IsRedactionMarker("tapkit-redacted:0123456789abc"));  // 13
  const std::string fake = "tapkit-redacted:hunter2";
  Exchange x = Post("/?token=" + fake + "&key=" + marker);
  x.request->headers = {{"Authorization", fake}, {"Cookie", marker}};
  x.response->body = BodyOf(R"({"token":")" + fake + R"("})");
  RedactionStats st;
  r.Apply(&x, &st);
  EXPECT_EQ(x.request->path, "/?token=" + r.Redact(fake) + "&key=" + marker);
  EXPECT_EQ(Field(x.request->headers, "Authorization"), r.Redact(fake));
  EXPECT_EQ(Field(x.request->headers, "Cookie"), marker);
  EXPECT_EQ(x.response->body.data, R"({"token":")" + r.Redact(fake) + R"("})");
  EXPECT_EQ(st.header_values + st.query_values + st.json_values, 3u);
}

// gzip, deflate, br and a stack of two: decoded, redacted, encoded again the same way, with
// Content-Length and Body.length the new size.
TEST(RedactJson, EncodedBodiesEncodedAgainWithTheirCoding) {
  const std::string json = R"({"token":"abc","keep":[1,2]})";
  for (std::string coding : {"gzip", "deflate", "br", "gzip, br"}) {
    Redactor r = JsonRedactor({"/token"});
    Exchange x = Post("/");
    absl::StatusOr<std::string> enc = EncodeContent(json, coding);
    ASSERT_TRUE(enc.ok()) << enc.status();
    x.response->headers = {{"Content-Type", "application/problem+json"},
                           {"Content-Encoding", coding},
                           {"Content-Length", std::to_string(enc->size())}};
    x.response->body = BodyOf(*enc);
    EXPECT_EQ(r.Apply(&x), 1u) << coding;
    const Body& b = x.response->body;
    EXPECT_EQ(b.length, b.data.size());
    EXPECT_FALSE(b.truncated);
    EXPECT_EQ(Field(x.response->headers, "Content-Length"), std::to_string(b.data.size()));
    if (coding == "gzip") {
      EXPECT_EQ(b.data.substr(0, 2), "\x1f\x8b") << "still gzip";
    }
    absl::StatusOr<DecodedContent> dec = DecodeContent(b.data, coding);
    ASSERT_TRUE(dec.ok()) << coding << ": " << dec.status();
    EXPECT_TRUE(dec->complete);
    EXPECT_EQ(dec->data, R"({"token":")" + r.Redact("abc") + R"(","keep":[1,2]})");
  }
}

// What cannot be examined is dropped, flagged in the exchange's reason and counted.
TEST(RedactJson, BodiesThatCannotBeExaminedAreDroppedAndFlagged) {
  struct Case {
    std::string name, type, coding, body;
    bool truncated;
    std::string why;  // "" = left alone
  };
  const std::string big = R"({"token":")" + std::string(100000, 'x') + R"("})";
  const std::string gz_big = *EncodeContent(big, "gzip");
  const std::string deep = std::string(300, '[') + std::string(300, ']');
  const Case cases[] = {
      {"over the cap", "application/json", "gzip", gz_big, false,
       "it decodes to more than the cap of 4096 bytes"},
      {"over the cap, any type", "text/plain", "gzip", gz_big, false,
       "it decodes to more than the cap of 4096 bytes"},
      {"cut at the body limit", "application/json", "", R"({"token":"ab)", true,
       "a JSON body cut short (stored 12 of 112 bytes) cannot be checked whole"},
      {"cut, looks like JSON", "", "", R"({"token":"ab)", true,
       "a JSON body cut short (stored 12 of 112 bytes) cannot be checked whole"},
      {"does not parse", "application/json", "", "{not json", false, "it does not parse as JSON"},
      // nlohmann's parser stops at a NUL byte: what follows one must not pass unseen.
      {"NUL inside", "application/json", "", std::string("{\"a\":1}\0{\"token\":\"s\"}", 22),
       false, "it does not parse as JSON"},
      {"too deep", "application/json", "", deep, false, "its JSON nests deeper than 256 levels"},
      {"not gzip", "application/json", "gzip", "plain bytes", false, "it does not decode ("},
      {"unknown coding", "application/json", "zstd", "whatever", false, "it does not decode ("},
      // Duplicate names: nlohmann keeps the last "user", so "/user/password" would match
      // nothing and the stored bytes, secret and all, would stay.
      {"repeated member name", "application/json", "",
       R"({"user":{"password":"hunter2"},"user":null})", false,
       "an object in its JSON repeats a member name"},
      {"repeated name, any type", "text/plain", "", R"([{"a":1,"b":2,"a":3}])", false,
       "an object in its JSON repeats a member name"},
      // Looks like JSON, another type, does not parse (a trailing comma, RFC 8259 section 4).
      {"looks like JSON, does not parse", "text/plain", "", R"({"password":"x",})", false,
       "it does not parse as JSON"},
      {"html", "text/html", "", "[not json, a page", false, "it does not parse as JSON"},
      {"html, not JSON-looking", "text/html", "", "<p>{\"token\":1}</p>", false, ""},
      {"html, cut", "text/html", "", "<html>", true, ""},
  };
  for (const Case& c : cases) {
    Redactor r = JsonRedactor({"/token"}, 4096);
    Exchange x = Post("/");
    x.completion = Completion::kGap;
    x.reason = "gap in the response";
    x.response->headers.clear();
    if (!c.type.empty()) x.response->headers.push_back({"Content-Type", c.type});
    if (!c.coding.empty()) x.response->headers.push_back({"Content-Encoding", c.coding});
    x.response->body = BodyOf(c.body);
    if (c.truncated) {
      x.response->body.truncated = true;
      x.response->body.length = c.body.size() + 100;
    }
    const Body before = x.response->body;
    RedactionStats st;
    r.Apply(&x, &st);
    if (c.why.empty()) {
      EXPECT_EQ(x.response->body, before) << c.name;
      EXPECT_EQ(st.bodies_dropped, 0u) << c.name;
      EXPECT_EQ(x.reason, "gap in the response") << c.name;
      continue;
    }
    EXPECT_EQ(st.bodies_dropped, 1u) << c.name;
    EXPECT_TRUE(x.response->body.data.empty()) << c.name;
    EXPECT_TRUE(x.response->body.truncated) << c.name;
    EXPECT_EQ(x.response->body.length, before.length) << c.name;
    EXPECT_TRUE(
        x.reason.starts_with("gap in the response; response body dropped by redaction: " + c.why))
        << c.name << ": " << x.reason;
  }
  // A request's form cut at the body limit, with no reason before it.
  RedactionRules rules;
  rules.query_params = {"password"};
  Redactor r(rules, kKey);
  Exchange x = Post("/");
  x.request->headers = {{"content-type", "application/x-www-form-urlencoded"}};
  x.request->body = BodyOf("user=ann&password=hun");
  x.request->body.truncated = true;
  RedactionStats st;
  r.Apply(&x, &st);
  EXPECT_EQ(st.bodies_dropped, 1u);
  EXPECT_EQ(x.reason,
            "request body dropped by redaction: a form cut short (stored 21 bytes, the rest not "
            "seen) cannot be checked whole");
  // A JSON-looking body of another type is examined; one without the field is left as it was.
  Redactor j = JsonRedactor({"/token"});
  Exchange y = Post("/");
  y.response->headers = {{"Content-Type", "text/plain"}};
  y.response->body = BodyOf(" {\"token\": \"abc\"}");
  EXPECT_EQ(j.Apply(&y), 1u);
  EXPECT_EQ(y.response->body.data, "{\"token\":\"" + j.Redact("abc") + "\"}");
  Exchange z = Post("/");
  z.response->body = BodyOf("{\"other\": 1}");
  EXPECT_EQ(j.Apply(&z), 0u);
  EXPECT_EQ(z.response->body.data, "{\"other\": 1}") << "unchanged bytes, not re-serialized";
}

TEST(RedactionFlags, BuildCheckAndDescribe) {
  testing::ScopedTempDir d("redact_test");
  RedactionFlags off;  // tapfilter with no redaction flag
  absl::StatusOr<std::optional<Redactor>> r = BuildRedactor(off);
  ASSERT_TRUE(r.ok());
  EXPECT_FALSE(r->has_value());

  RedactionFlags f;
  f.headers = {"X-Secret, x-other", "Authorization"};
  f.query_params = {"Session"};
  f.json_fields = {"/password", "/users/*/token"};
  r = BuildRedactor(f);
  ASSERT_TRUE(r.ok()) << r.status();
  ASSERT_TRUE(r->has_value()) << "a redaction flag turns redaction on";
  RedactionPolicy p = (*r)->policy();
  std::vector<std::string> headers = DefaultRedactedHeaders();
  headers.push_back("x-secret");
  headers.push_back("x-other");
  std::vector<std::string> params = DefaultRedactedQueryParams();
  params.push_back("session");
  EXPECT_EQ(p, (RedactionPolicy{true, headers, false, params, {"/password", "/users/*/token"}}));

  RedactionFlags taprec;
  taprec.on_by_default = true;
  r = BuildRedactor(taprec);
  ASSERT_TRUE(r.ok() && r->has_value());
  EXPECT_EQ((*r)->policy(), DefaultRedactionPolicy());

  auto flags = [](std::function<void(RedactionFlags&)> set) {
    RedactionFlags f;
    set(f);
    return f;
  };
  const std::pair<RedactionFlags, std::string> bad[] = {
      {flags([](RedactionFlags& f) { f.headers = {"x y"}; }),
       "--redact-header \"x y\": not a header field name (a token, RFC 9110 section 5.6.2)"},
      {flags([](RedactionFlags& f) { f.headers = {"a,"}; }),
       "--redact-header \"\": not a header field name (a token, RFC 9110 section 5.6.2)"},
      {flags([](RedactionFlags& f) { f.query_params = {""}; }),
       "--redact-query-param: an empty parameter name"},
      {flags([](RedactionFlags& f) { f.json_fields = {"password"}; }),
       "--redact-json-field JSON pointer \"password\": must be empty or start with \"/\" (RFC "
       "6901 section 3)"},
      {flags([](RedactionFlags& f) {
         f.on_by_default = f.no_redact = true;
         f.query_params = {"x"};
       }),
       "--redact-query-param goes with redaction; --no-redact turns it off"},
      {flags([](RedactionFlags& f) {
         f.on_by_default = f.no_redact = true;
         f.key_file = "k";
       }),
       "--redact-key-file goes with redaction; --no-redact turns it off"},
      {flags([&](RedactionFlags& f) { f.key_file = d.path() + "/missing"; }),
       "--redact-key-file " + d.path() + "/missing: no such file"},
  };
  for (const auto& [flags, message] : bad) {
    absl::StatusOr<std::optional<Redactor>> b = BuildRedactor(flags);
    ASSERT_FALSE(b.ok()) << message;
    EXPECT_EQ(b.status().message(), message);
  }
  RedactionFlags no;
  no.on_by_default = true;
  no.no_redact = true;
  r = BuildRedactor(no);
  ASSERT_TRUE(r.ok());
  EXPECT_FALSE(r->has_value());

  // One key file, two redactors (two runs): equal secrets, equal markers; keyed in the policy.
  RedactionFlags keyed;
  keyed.redact = true;
  keyed.key_file = Write(d.path() + "/key", std::string(32, 'k'), 0600);
  absl::StatusOr<std::optional<Redactor>> a = BuildRedactor(keyed), b = BuildRedactor(keyed);
  ASSERT_TRUE(a.ok() && b.ok());
  EXPECT_EQ((*a)->Redact("abc"), (*b)->Redact("abc"));
  EXPECT_TRUE((*a)->policy().keyed);
  EXPECT_NE(BuildRedactor(taprec).value()->Redact("abc"),
            BuildRedactor(taprec).value()->Redact("abc"))
      << "without a key file, each run has its own random key";
}

// The policy the header records (format 1.2): both new lists survive the FlatBuffer; a
// header-only policy encodes as 1.1 did (no empty vectors), and reads back with empty lists.
TEST(RedactionPolicy, RecordedInTheHeader) {
  CaptureMetadata m = testing::SampleMetadata();
  m.redaction = RedactionPolicy{
      true, {"authorization"}, true, {"token", "api_key"}, {"/password", "/users/*/token"}};
  CaptureMetadata back;
  ASSERT_TRUE(DecodeCaptureMetadata(EncodeCaptureMetadata(m), &back));
  EXPECT_EQ(back.redaction, m.redaction);
  CaptureMetadata old = testing::SampleMetadata();
  old.redaction = RedactionPolicy{true, {"authorization", "cookie"}, false, {}, {}};
  const std::string bytes = EncodeCaptureMetadata(old);
  ASSERT_TRUE(DecodeCaptureMetadata(bytes, &back));
  EXPECT_EQ(back.redaction, old.redaction);
  m.redaction.query_params.clear();
  m.redaction.json_fields.clear();
  m.redaction.headers = old.redaction.headers;
  m.redaction.keyed = false;
  EXPECT_EQ(EncodeCaptureMetadata(m), bytes);
}

// Every zstd frame in `file`, found by its magic number (RFC 8878 section 3.1.1) and
// decompressed with libzstd directly, not through the Reader: the bytes a reader of the file
// could see.
std::string DecompressEveryFrame(const std::string& file, int* frames) {
  std::string out;
  *frames = 0;
  const std::string magic = "\x28\xb5\x2f\xfd";
  for (size_t at = file.find(magic); at != std::string::npos; at = file.find(magic, at + 1)) {
    const char* p = file.data() + at;
    size_t n = ZSTD_findFrameCompressedSize(p, file.size() - at);
    if (ZSTD_isError(n)) continue;
    unsigned long long size = ZSTD_getFrameContentSize(p, n);
    if (size == ZSTD_CONTENTSIZE_ERROR || size == ZSTD_CONTENTSIZE_UNKNOWN || size > (64u << 20)) {
      continue;
    }
    std::string frame(size, '\0');
    size_t got = ZSTD_decompress(frame.data(), frame.size(), p, n);
    if (ZSTD_isError(got)) continue;
    frame.resize(got);
    out += frame;
    ++*frames;
  }
  return out;
}

size_t Count(std::string_view hay, std::string_view needle) {
  size_t n = 0;
  for (size_t at = hay.find(needle); at != std::string_view::npos; at = hay.find(needle, at + 1)) {
    ++n;
  }
  return n;
}

// Redaction's own decode cap (4 MiB, not -V's 64 MiB): the sidecar redacts on its capture
// thread, so a small gzip body inflating to 5 MiB is dropped unexamined; 3 MiB is redacted.
TEST(RedactJson, DefaultDecodeCapIsFourMebibytes) {
  RedactionRules defaults;
  EXPECT_EQ(defaults.decode_cap, size_t{4} << 20);
  for (size_t pad : {size_t{3} << 20, size_t{5} << 20}) {
    const std::string json = R"({"pad":")" + std::string(pad, ' ') + R"(","token":"hunter2"})";
    Exchange x = Post("/");
    x.response->headers.push_back({"Content-Encoding", "gzip"});
    x.response->body = BodyOf(*EncodeContent(json, "gzip"));
    EXPECT_LT(x.response->body.data.size(), 10u << 10) << "a small body on the wire";
    RedactionRules rules;
    rules.json_fields = {*ParseJsonPointer("/token")};
    RedactionStats st;
    Redactor(rules, kKey).Apply(&x, &st);
    if (pad > (size_t{4} << 20)) {
      EXPECT_EQ(st.bodies_dropped, 1u);
      EXPECT_TRUE(x.response->body.data.empty());
      EXPECT_EQ(x.reason,
                "response body dropped by redaction: it decodes to more than the cap of 4194304 "
                "bytes");
    } else {
      EXPECT_EQ(st.bodies_dropped, 0u);
      EXPECT_EQ(st.json_values, 1u);
      EXPECT_EQ(x.reason, "");
    }
  }
}

// An object of 50,000 members: building it with nlohmann's ordered_json costs O(N^2) (80,000
// took 7.6 s), so over kMaxJsonMembers the body is dropped and flagged, not parsed. (The time is
// bench/'s to measure; here the outcome.)
TEST(RedactJson, ObjectWithTooManyMembersIsDropped) {
  std::string many = "{\"token\":\"hunter2\"";
  for (int i = 0; i < 50000; ++i) many += ",\"k" + std::to_string(i) + "\":0";
  many += "}";
  ASSERT_TRUE(nlohmann::json::accept(many));  // JSON text, only large
  Exchange x = Post("/");
  x.response->body = BodyOf(many);
  RedactionStats st;
  JsonRedactor({"/token"}).Apply(&x, &st);
  EXPECT_EQ(st.bodies_dropped, 1u);
  EXPECT_EQ(st.json_values, 0u);
  EXPECT_TRUE(x.response->body.data.empty());
  EXPECT_TRUE(x.response->body.truncated);
  EXPECT_EQ(x.response->body.length, many.size());
  EXPECT_EQ(x.reason,
            "response body dropped by redaction: an object in its JSON has more than 10000 members");
  // At the cap exactly it is parsed and redacted.
  std::string at_cap = "{\"token\":\"hunter2\"";
  for (int i = 1; i < 10000; ++i) at_cap += ",\"k" + std::to_string(i) + "\":0";
  at_cap += "}";
  Exchange y = Post("/");
  y.response->body = BodyOf(at_cap);
  RedactionStats st2;
  Redactor r = JsonRedactor({"/token"});
  r.Apply(&y, &st2);
  EXPECT_EQ(st2.bodies_dropped, 0u);
  EXPECT_EQ(st2.json_values, 1u);
  nlohmann::json got = nlohmann::json::parse(y.response->body.data, nullptr, false);
  ASSERT_FALSE(got.is_discarded());
  EXPECT_EQ(got.size(), 10000u);
  EXPECT_EQ(got["token"], r.Redact("hunter2"));
}

// The issue's test: a secret planted in headers, query strings, a form and JSON bodies
// (identity, gzip, deflate, br), written to a file with redaction, occurs nowhere in the file's
// decompressed bytes nor in its bodies decoded; without redaction the same scan finds it.
TEST(RedactFile, PlantedSecretOccursNowhereInTheDecompressedFile) {
  const std::string secret = "S3cr3t-Pl4nted-T0ken";
  std::vector<Exchange> xs;
  auto json_response = [&](std::string coding, std::string json) {
    Exchange x = Post("/api?token=" + secret + "&q=1");
    x.request->headers = {{"Authorization", "Bearer " + secret},
                          {"Cookie", "sid=" + secret},
                          {"Referer", "http://127.0.0.1/home?access_token=" + secret},
                          {"Content-Type", "application/json"}};
    x.request->body = BodyOf(R"({"user":"ann","password":")" + secret + R"("})");
    std::string body = coding.empty() ? json : *EncodeContent(json, coding);
    x.response->headers = {{"Content-Type", "application/json; charset=utf-8"},
                           {"Set-Cookie", "sid=" + secret + "; HttpOnly"},
                           {"Content-Length", std::to_string(body.size())}};
    if (!coding.empty()) x.response->headers.push_back({"Content-Encoding", coding});
    x.response->body = BodyOf(body);
    return x;
  };
  const std::string json =
      R"({"data":{"token":")" + secret + R"(","id":7},"items":[{"sig":")" + secret + R"("}]})";
  for (std::string coding : {"", "gzip", "deflate", "br"})
    xs.push_back(json_response(coding, json));
  Exchange form = Post("/login");
  form.request->headers = {{"Content-Type", "application/x-www-form-urlencoded"}};
  form.request->body = BodyOf("user=ann&password=" + secret);
  form.response->status = 302;
  form.response->headers = {{"Location", "/home#access_token=" + secret}};
  xs.push_back(form);
  // A repeated member name hiding the secret from the pointer: nlohmann keeps the last "data".
  xs.push_back(json_response("", R"({"data":{"token":")" + secret + R"("},"data":null})"));
  // JSON-looking text of another type that does not parse: the pointers cannot be applied.
  Exchange plain = json_response("", "");
  plain.response->headers = {{"Content-Type", "text/plain"}};
  plain.response->body = BodyOf(R"({"data":{"token":")" + secret + R"("},})");
  xs.push_back(plain);
  // A gzip bomb with the secret inside: over the cap, dropped.
  xs.push_back(json_response(
      "gzip", R"({"pad":")" + std::string(200000, ' ') + R"(","token":")" + secret + R"("})"));

  const std::string plain_file = testing::WriteToString(xs);
  RedactionFlags flags;
  flags.redact = true;
  flags.json_fields = {"/data/token", "/items/*/sig", "/password"};
  std::optional<Redactor> r = *BuildRedactor(flags);
  RedactionRules rules;  // the same rules, a smaller cap for the bomb
  rules.headers = r->headers();
  rules.query_params = r->query_params();
  rules.json_fields = r->json_fields();
  rules.decode_cap = 64 << 10;
  Redactor redactor(rules, r->key());
  RedactionStats st;
  for (Exchange& x : xs) redactor.Apply(&x, &st);
  EXPECT_EQ(st.bodies_dropped, 3u);
  const std::string file = testing::WriteToString(xs);
  ASSERT_FALSE(file.empty());

  auto decoded_bodies = [](const std::string& f) {
    testing::ReadResult rr = testing::ReadAll(f);
    EXPECT_TRUE(rr.status.ok()) << rr.status;
    std::string all;
    for (const Exchange& x : rr.exchanges) {
      for (const auto* m : {&x.response->headers, &x.request->headers}) {
        const Body& b = m == &x.response->headers ? x.response->body : x.request->body;
        absl::StatusOr<DecodedContent> d = DecodeContent(
            b.data, Field(*m, "Content-Encoding") == "<none>" ? "" : Field(*m, "Content-Encoding"));
        if (d.ok()) all += d->data;
      }
    }
    return all;
  };
  int frames = 0;
  // The scanner finds the secret where it was not redacted.
  EXPECT_GT(Count(DecompressEveryFrame(plain_file, &frames), secret), 10u);
  EXPECT_GT(Count(decoded_bodies(plain_file), secret), 10u);

  EXPECT_EQ(Count(file, secret), 0u);
  const std::string bytes = DecompressEveryFrame(file, &frames);
  EXPECT_GE(frames, 2) << "the meta and body frames of the segment";
  EXPECT_EQ(Count(bytes, secret), 0u);
  EXPECT_EQ(Count(decoded_bodies(file), secret), 0u);
  // Equal secrets, equal markers: the query, form, fragment and JSON values of the secret all
  // became one marker.
  EXPECT_GE(Count(bytes + decoded_bodies(file), redactor.Redact(secret)), 20u);
  testing::ReadResult rr = testing::ReadAll(file);
  ASSERT_EQ(rr.exchanges.size(), xs.size());
  EXPECT_EQ(rr.exchanges.back().reason,
            "response body dropped by redaction: it decodes to more than the cap of 65536 bytes");
}

}  // namespace
}  // namespace tapkit
