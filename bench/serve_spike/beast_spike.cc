// Spike: Boost.Beast HTTP/1.1 server answering GET /a /b /c (bodies.h) with keep-alive and
// Content-Length. One io_context on one thread (async accept/read/write); stops on SIGTERM/SIGINT
// via asio::signal_set. Usage: beast_spike ADDR PORT
#include <boost/asio.hpp>
#include <boost/beast/core.hpp>
#include <boost/beast/http.hpp>
#include <cstdio>
#include <memory>

#include "bodies.h"

namespace asio = boost::asio;
namespace beast = boost::beast;
namespace http = beast::http;
using tcp = asio::ip::tcp;

class Session : public std::enable_shared_from_this<Session> {
 public:
  explicit Session(tcp::socket s) : stream_(std::move(s)) {}
  void Read() {
    req_ = {};
    http::async_read(stream_, buf_, req_,
                     [self = shared_from_this()](beast::error_code ec, std::size_t) {
                       if (!ec) self->Answer();
                     });
  }

 private:
  void Answer() {
    std::string_view body = serve_spike::BodyFor(
        std::string_view(req_.target().data(), req_.target().size()));
    res_ = {};
    res_.version(11);
    res_.result(body.empty() ? http::status::not_found : http::status::ok);
    res_.set(http::field::content_type, "text/plain");
    res_.body().assign(body.data(), body.size());
    res_.keep_alive(req_.keep_alive());
    res_.prepare_payload();
    http::async_write(stream_, res_, [self = shared_from_this()](beast::error_code ec, std::size_t) {
      if (ec || !self->res_.keep_alive()) {
        beast::error_code ignored;
        self->stream_.shutdown(tcp::socket::shutdown_send, ignored);
        return;
      }
      self->Read();
    });
  }
  tcp::socket stream_;
  beast::flat_buffer buf_;
  http::request<http::string_body> req_;
  http::response<http::string_body> res_;
};

static void Accept(tcp::acceptor& acc) {
  acc.async_accept([&acc](beast::error_code ec, tcp::socket s) {
    if (ec) return;
    s.set_option(tcp::no_delay(true));
    std::make_shared<Session>(std::move(s))->Read();
    Accept(acc);
  });
}

int main(int argc, char** argv) {
  if (argc != 3) { std::fprintf(stderr, "usage: beast_spike ADDR PORT\n"); return 2; }
  beast::error_code ec;
  auto addr = asio::ip::make_address(argv[1], ec);
  if (ec) { std::fprintf(stderr, "beast_spike: bad address %s\n", argv[1]); return 2; }
  asio::io_context ioc(1);
  tcp::acceptor acc(ioc);
  tcp::endpoint ep(addr, static_cast<unsigned short>(std::atoi(argv[2])));
  acc.open(ep.protocol(), ec);
  if (!ec) acc.set_option(asio::socket_base::reuse_address(true), ec);
  if (!ec) acc.bind(ep, ec);
  if (!ec) acc.listen(asio::socket_base::max_listen_connections, ec);
  if (ec) { std::fprintf(stderr, "beast_spike: listen %s:%s: %s\n", argv[1], argv[2], ec.message().c_str()); return 2; }
  asio::signal_set sigs(ioc, SIGTERM, SIGINT);
  sigs.async_wait([&](beast::error_code, int) { ioc.stop(); });
  Accept(acc);
  ioc.run();
  return 0;
}
