// Http1Connection's pairing rules (http1.cc, "Pairing"; docs/capture.md), scenario by scenario,
// on a simulated connection: each message is written as one TCP segment whose stream offset and
// acknowledgement number are those a real peer would send (the ACK covers everything the sender
// had received of the other direction). Deleting a message from what the parser is given is a
// lost segment; the rest of the stream keeps its offsets, as TCP sequence numbers would.
#include <gtest/gtest.h>

#include <string>
#include <vector>

#include "sidecar/http1.h"

namespace tapkit {
namespace {

std::string Req(const std::string& path) {
  return "GET " + path + " HTTP/1.1\r\nHost: example\r\n\r\n";
}
std::string Rsp(const std::string& body, int status = 200) {
  return "HTTP/1.1 " + std::to_string(status) +
         " X\r\nContent-Length: " + std::to_string(body.size()) + "\r\n\r\n" + body;
}

// A connection seen by a passive observer: Send() advances the sender's stream; the bytes reach
// the parser unless `lost`, in which case the parser gets a gap there instead.
struct Wire {
  std::vector<Exchange> got;
  uint64_t ids = 1;
  Http1Counters counters;
  Http1Connection conn{Exchange{},
                       Http1Options{},
                       &ids,
                       [this](Exchange&& x) { got.push_back(std::move(x)); },
                       &counters,
                       /*client_at_start=*/true,
                       /*server_at_start=*/true};
  uint64_t client_off = 0, server_off = 0, ts = 1000;
  // The client sends `m` having received everything the server sent so far.
  void Client(const std::string& m, bool lost = false) { ClientAcking(m, server_off, lost); }
  void ClientAcking(const std::string& m, uint64_t ack, bool lost = false) {
    if (lost) {
      conn.OnClientGap(client_off, m.size(), ++ts);
    } else {
      conn.OnClientData(Bytes(m),
                        StreamPosition{++ts, client_off, static_cast<int64_t>(ack), std::nullopt});
    }
    client_off += m.size();
  }
  void Server(const std::string& m, bool lost = false) { ServerAcking(m, client_off, lost); }
  void ServerAcking(const std::string& m, uint64_t ack, bool lost = false) {
    if (lost) {
      conn.OnServerGap(server_off, m.size(), ++ts);
    } else {
      conn.OnServerData(Bytes(m),
                        StreamPosition{++ts, server_off, static_cast<int64_t>(ack), std::nullopt});
    }
    server_off += m.size();
  }
  static std::span<const uint8_t> Bytes(const std::string& m) {
    return {reinterpret_cast<const uint8_t*>(m.data()), m.size()};
  }
  void Close() { conn.Close(Completion::kNoResponse, "closed", ++ts); }
  // "path status completion" for each exchange, in the order written.
  std::vector<std::string> Summary() const {
    std::vector<std::string> out;
    for (const Exchange& x : got) {
      out.push_back((x.request ? x.request->path : std::string("-")) + " " +
                    (x.response ? std::to_string(x.response->status) + ":" + x.response->body.data
                                : std::string("-")) +
                    " " + std::string(CompletionName(x.completion)));
    }
    return out;
  }
};

// Ten requests, each sent after the previous response; the third response's segment is lost.
// GoReplay-style arrival order would give requests 3..9 the next request's response.
TEST(Pairing, SequentialThirdResponseLost) {
  Wire w;
  for (int i = 1; i <= 10; ++i) {
    w.Client(Req("/" + std::to_string(i)));
    w.Server(Rsp("r" + std::to_string(i)), /*lost=*/i == 3);
  }
  w.Close();
  std::vector<std::string> want;
  for (int i = 1; i <= 10; ++i) {
    want.push_back(
        "/" + std::to_string(i) + " " +
        (i == 3 ? "- gap" : std::to_string(200) + ":r" + std::to_string(i) + " complete"));
  }
  EXPECT_EQ(w.Summary(), want);
  EXPECT_EQ(w.counters.responses_lost, 1u);
  EXPECT_EQ(w.counters.ambiguous_responses, 0u);
}

// The third request's segment is lost: its response has no request; nothing else moves.
TEST(Pairing, SequentialThirdRequestLost) {
  Wire w;
  for (int i = 1; i <= 5; ++i) {
    w.Client(Req("/" + std::to_string(i)), /*lost=*/i == 3);
    w.Server(Rsp("r" + std::to_string(i)));
  }
  w.Close();
  EXPECT_EQ(w.Summary(), (std::vector<std::string>{"/1 200:r1 complete", "/2 200:r2 complete",
                                                   "- 200:r3 no-request", "/4 200:r4 complete",
                                                   "/5 200:r5 complete"}));
  EXPECT_EQ(w.counters.requests_lost, 1u);
}

// Three requests in one segment (pipelining); the second response is lost.
TEST(Pairing, PipelinedSecondResponseLost) {
  Wire w;
  w.Client(Req("/a") + Req("/b") + Req("/c"));
  w.Server(Rsp("A"));
  w.Server(Rsp("B"), /*lost=*/true);
  w.Server(Rsp("C"));
  w.Close();
  EXPECT_EQ(w.Summary(),
            (std::vector<std::string>{"/a 200:A complete", "/b - gap", "/c 200:C complete"}));
}

// Pipelined requests with holes in both directions, acknowledgements covering several
// messages: the response after the holes may answer /b (its own lost, /a's too) or /c.
TEST(Pairing, PipelinedHolesBothWaysAreAmbiguous) {
  Wire w;
  w.Client(Req("/a") + Req("/b"));
  w.Client(Req("/x"), /*lost=*/true);  // a request the capture lost, pipelined behind them
  w.Client(Req("/c"));
  w.Server(Rsp("A"), /*lost=*/true);
  w.Server(Rsp("B"));
  w.Server(Rsp("X"));
  w.Server(Rsp("C"));
  w.Close();
  // Nothing is complete with a response that is not its own.
  for (const Exchange& x : w.got) {
    if (x.completion != Completion::kComplete) continue;
    ASSERT_TRUE(x.request && x.response);
    EXPECT_EQ("/" + std::string(1, static_cast<char>(x.response->body.data[0] - 'A' + 'a')),
              x.request->path);
  }
  EXPECT_GT(w.counters.ambiguous_responses, 0u);
  EXPECT_FALSE(w.got.empty());
}

// A server's unsolicited 408 before the next request arrived: its ACK does not cover the
// request, so it answers none; the request then gets its own response.
TEST(Pairing, UnsolicitedResponseAnswersNoRequest) {
  Wire w;
  w.Client(Req("/1"));
  w.Server(Rsp("r1"));
  w.Server(Rsp("timeout", 408));  // sent before the server had received /2
  w.ClientAcking(Req("/2"), w.server_off - Rsp("timeout", 408).size());  // crossed on the wire
  w.Server(Rsp("r2"));
  w.Close();
  EXPECT_EQ(w.Summary(), (std::vector<std::string>{"/1 200:r1 complete", "- 408:timeout no-request",
                                                   "/2 200:r2 complete"}));
}

// A 1xx carrying Content-Length has no body (RFC 9112 section 6.3): the bytes after its header
// section are the final response, not its body.
TEST(Pairing, InterimWithContentLengthHasNoBody) {
  Wire w;
  w.Client(Req("/hints"));
  w.Server("HTTP/1.1 103 Early Hints\r\nLink: </s.css>\r\nContent-Length: 5\r\n\r\n");
  w.Server(Rsp("final"));
  w.Close();
  ASSERT_EQ(w.got.size(), 1u);
  ASSERT_EQ(w.got[0].interim.size(), 1u);
  EXPECT_EQ(w.got[0].interim[0].status, 103);
  EXPECT_EQ(w.got[0].response->status, 200);
  EXPECT_EQ(w.got[0].response->body.data, "final");
  EXPECT_EQ(w.got[0].completion, Completion::kComplete);
  EXPECT_EQ(w.counters.interim_with_body_header, 1u);
}

// An answer that is not HTTP/1 (HTTP/0.9, another protocol) is kept as the response's bytes.
TEST(Pairing, ReplyThatIsNotHttpIsKept) {
  Wire w;
  w.Client(Req("/"));
  w.Server("SSH-2.0-OpenSSH_9.2p1 Debian-2\r\n");
  w.Close();
  ASSERT_EQ(w.got.size(), 1u);
  const Exchange& x = w.got[0];
  EXPECT_EQ(x.completion, Completion::kMalformed);
  ASSERT_TRUE(x.response.has_value());
  EXPECT_EQ(x.response->status, 0);
  EXPECT_EQ(x.response->body.data, "SSH-2.0-OpenSSH_9.2p1 Debian-2\r\n");
  EXPECT_NE(x.reason.find("not HTTP/1"), std::string::npos) << x.reason;
  EXPECT_NE(x.reason.find("SSH-2.0"), std::string::npos) << x.reason;
}

// Transfer-Encoding: chunked and Content-Length on one message: read as chunked, flagged.
TEST(Pairing, ChunkedWithContentLengthIsFlagged) {
  Wire w;
  w.Client(
      "POST /s HTTP/1.1\r\nHost: x\r\nContent-Length: 4\r\nTransfer-Encoding: chunked\r\n\r\n"
      "3\r\nabc\r\n0\r\n\r\n");
  w.Server(Rsp("ok"));
  w.Close();
  ASSERT_EQ(w.got.size(), 1u);
  EXPECT_EQ(w.got[0].request->body.data, "abc");
  EXPECT_EQ(w.got[0].completion, Completion::kComplete);
  EXPECT_NE(w.got[0].reason.find("Transfer-Encoding: chunked and Content-Length"),
            std::string::npos)
      << w.got[0].reason;
  EXPECT_EQ(w.counters.chunked_with_length, 1u);
}

// The server answers before the declared body arrived, and the rest never comes: the request
// keeps the body bytes that did, its declared length, and is truncated.
TEST(Pairing, EarlyAnswerLeavesTheRequestTruncated) {
  Wire w;
  w.Client("POST /upload HTTP/1.1\r\nHost: x\r\nContent-Length: 10\r\n\r\nabc");
  w.Server(Rsp("too large", 413));
  w.Close();
  ASSERT_EQ(w.got.size(), 1u);
  const Exchange& x = w.got[0];
  EXPECT_EQ(x.completion, Completion::kTruncated) << x.reason;
  EXPECT_EQ(x.request->body.data, "abc");
  EXPECT_EQ(x.request->body.length, 10u);
  EXPECT_TRUE(x.request->body.truncated);
  EXPECT_EQ(x.response->status, 413);
}

// The same early answer, but the client sends the rest of the body: whole after all.
TEST(Pairing, EarlyAnswerThenTheRestIsComplete) {
  Wire w;
  w.Client("POST /upload HTTP/1.1\r\nHost: x\r\nContent-Length: 10\r\n\r\nabc");
  w.Server(Rsp("no", 401));
  w.Client("defghij");
  w.Close();
  ASSERT_EQ(w.got.size(), 1u);
  EXPECT_EQ(w.got[0].completion, Completion::kComplete) << w.got[0].reason;
  EXPECT_EQ(w.got[0].request->body.data, "abcdefghij");
}

// A header value cut by lost bytes is left out, never shown as a whole (shorter) value.
TEST(Pairing, FieldCutByAGapIsLeftOut) {
  Wire w;
  std::string head = "GET /p HTTP/1.1\r\nHost: 127.0";
  w.Client(head);
  w.Client(".0.1:8080\r\nAccept: */*\r\n\r\n", /*lost=*/true);
  w.Server(Rsp("x"));
  w.Close();
  ASSERT_FALSE(w.got.empty());
  const Exchange& x = w.got[0];
  ASSERT_TRUE(x.request.has_value());
  EXPECT_EQ(x.request->path, "/p");
  for (const Header& h : x.request->headers) EXPECT_NE(h.name, "Host") << h.value;
  EXPECT_NE(x.completion, Completion::kComplete);
  EXPECT_EQ(w.counters.partial_fields_dropped, 1u);
}

}  // namespace
}  // namespace tapkit

namespace tapkit {
namespace {

// A gap of no bytes (the fuzzer's, never the engine's) in the middle of a request's headers
// changes nothing; it once ended a message that had no request line yet.
TEST(Pairing, ZeroByteGapChangesNothing) {
  Wire w;
  w.Client("POST /first HTTP/1.1\r\nHost: x\r\nContent-Len");
  w.conn.OnClientGap(w.client_off, 0, ++w.ts);
  w.Client("gth: 2\r\n\r\nok");
  w.Server(Rsp("done"));
  w.Close();
  ASSERT_EQ(w.got.size(), 1u);
  EXPECT_EQ(w.got[0].request->body.data, "ok");
  EXPECT_EQ(w.got[0].completion, Completion::kComplete) << w.got[0].reason;
}

}  // namespace
}  // namespace tapkit
