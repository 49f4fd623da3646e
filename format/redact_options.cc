#include "format/redact_options.h"

#include <boost/program_options.hpp>

namespace tapkit {

namespace po = boost::program_options;

void AddRedactionOptions(po::options_description* options, RedactionFlags* flags) {
  auto add = options->add_options();
  if (flags->on_by_default) {
    add("no-redact", po::bool_switch(&flags->no_redact),
        "keep secrets as they are (header values such as authorization and cookie, query "
        "parameters such as token and api_key)");
  } else {
    add("redact", po::bool_switch(&flags->redact),
        "replace secrets by keyed markers: the values of authorization, proxy-authorization, "
        "cookie, set-cookie, x-api-key, x-auth-token and x-csrf-token header fields and of the "
        "query parameters access_token, token, api_key, apikey, key, password, secret, sig and "
        "signature");
  }
  add("redact-header", po::value(&flags->headers)->composing()->value_name("NAME"),
      "also redact this header field's values (repeatable, or NAME,NAME)");
  add("redact-query-param", po::value(&flags->query_params)->composing()->value_name("NAME"),
      "also redact this query parameter (compared percent-decoded, in any case) in the request "
      "target, Referer, Location and form bodies (repeatable, or NAME,NAME)");
  add("redact-json-field", po::value(&flags->json_fields)->composing()->value_name("POINTER"),
      "redact this field of JSON request and response bodies: an RFC 6901 JSON pointer such as "
      "/password or /users/0/token, with * for every member or element (repeatable)");
  add("redact-key-file", po::value(&flags->key_file)->value_name("FILE"),
      "HMAC key for the markers (16 bytes to 64 KiB, mode 0600; default: random, never "
      "stored): equal secrets get equal markers across captures made with the same key");
}

}  // namespace tapkit
