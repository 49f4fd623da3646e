#!/usr/bin/env python3
"""nginx serving a capture's recorded responses on the recorded routes: the baseline that
`tapreplay --serve` is measured against (bench/serve_vs_nginx.sh, bench/README.md).

    bench/serve_nginx_conf.py CAPTURE.tap OUTDIR [--listen ADDR:PORT] [--tapcat PATH]
        reads the capture with `tapcat -o json` (docs/json.md: bodies as utf8 text or base64) and
        writes OUTDIR/nginx.conf, OUTDIR/bodies/rN (the recorded body bytes), OUTDIR/routes.json
        and OUTDIR/paths.lua (a wrk script cycling the routes evenly); then checks the config
        with `nginx -t`. Prints one line per route left out, and a summary, on stderr.
    bench/serve_nginx_conf.py --check OUTDIR URL_A URL_B
        asks both servers for every route with curl and compares status and body bytes (exit 1
        naming the route when they differ); header fields whose names differ are listed, not
        failed (Date and Server are expected to differ in value only).

The generated server, per distinct (method, path without the query) of the capture, serves the
first recorded answer (a route recorded several times, as a sequence, serves its first answer
only; the mock serves the sequence, so the bench's routes are each recorded once):
  - GET with a body and status 200: the body file by `alias`, Content-Type as `default_type`;
  - GET with a body and status 3xx-5xx: `return STATUS` and `error_page STATUS` to an internal
    location serving the file (nginx keeps the status);
  - an empty body, any method: `return STATUS ""` (`return STATUS` for 204 and 304);
  - other cases (a body with a 1xx/2xx other than 200, a body on another method than GET) are
    left out with a line saying so.
Header fields: the recorded ones, in order, with `add_header ... always`, except Content-Length,
Transfer-Encoding and the hop-by-hop fields (RFC 9110 section 7.6.1: Connection and the fields it
names, Keep-Alive, Proxy-Connection, TE, Trailer, Upgrade): nginx frames every answer with
Content-Length (a recorded chunked body is served de-chunked, as the mock does). Content-Type
becomes `default_type`. Date and Server cannot be removed from nginx's answers (nginx-light has no
headers-more module): nginx sends its own (the current time, cached per second; "nginx" with
server_tokens off) in place of the recorded ones, so both servers send one Date and one Server
field, of similar length. Last-Modified and ETag given by add_header replace nginx's own (its
headers filter has special setters for them; an empty Last-Modified removes the one nginx gives a
file when none was recorded; `etag off`). Accept-Ranges is served only when recorded (`max_ranges
0` keeps nginx from adding its own; neither server serves ranges). Recorded Content-Encoding is served as recorded with the stored bytes.
Query strings: nginx's exact locations ignore them, so two recorded requests differing only in
the query share the first one's answer (a line says so); the mock tells them apart.
"""

import argparse
import base64
import hashlib
import json
import os
import re
import subprocess
import sys
import tempfile

HOP_BY_HOP = {"connection", "keep-alive", "proxy-connection", "te", "trailer",
              "transfer-encoding", "upgrade"}
# Left to nginx, see above.
NGINX_OWN = {"content-length", "date", "server", "content-type"}
NO_BODY_STATUS = {204, 304}


def fail(msg):
    print(f"serve_nginx_conf: {msg}", file=sys.stderr)
    sys.exit(2)


def read_exchanges(tapcat, capture):
    """Yields the capture's exchanges as tapcat -o json objects (docs/json.md)."""
    proc = subprocess.Popen([tapcat, "-o", "json", capture], stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE)
    for n, line in enumerate(proc.stdout, 1):
        try:
            yield json.loads(line)
        except json.JSONDecodeError as e:
            proc.kill()
            fail(f"{capture}: tapcat -o json line {n}: {e}")
    err = proc.stderr.read().decode(errors="replace").strip()
    if proc.wait() != 0:
        fail(f"{capture}: tapcat exited {proc.returncode}: {err}")


def text_field(obj, key):
    """A string field of docs/json.md that may be base64 with a KEYEncoding sibling."""
    value = obj.get(key)
    if value is None:
        return None
    if obj.get(key + "Encoding") == "base64":
        return base64.b64decode(value)
    return value.encode()


def header_list(headers):
    out = []
    for h in headers:
        if h.get("encoding") == "base64":
            out.append((base64.b64decode(h["name"]), base64.b64decode(h["value"])))
        else:
            out.append((h["name"].encode(), h["value"].encode()))
    return out


def body_bytes(body):
    if body is None:
        return b"", False
    if "data" not in body:
        return None, True
    data = body["data"]
    raw = base64.b64decode(data) if body.get("encoding") == "base64" else data.encode()
    return raw, bool(body.get("truncated"))


def conf_string(value):
    """value as an nginx config string: double-quoted, with \\ and " escaped and every $ taken
    from the $tapkit_dollar variable (nginx has no escape for $ in a quoted string)."""
    if any(b < 0x20 or b == 0x7f for b in value):
        raise ValueError("control byte")
    s = value.decode("utf-8")
    s = s.replace("\\", "\\\\").replace('"', '\\"')
    s = s.replace("$", "${tapkit_dollar}")
    return f'"{s}"'


def build(args):
    out = os.path.abspath(args.outdir)
    bodies = os.path.join(out, "bodies")
    os.makedirs(bodies, exist_ok=True)
    routes = {}   # (method, path) -> route dict
    order = []
    skipped = []
    noted = set()  # targets already said to share another query's answer
    for ex in read_exchanges(args.tapcat, args.capture):
        req, resp = ex.get("request"), ex.get("response")
        if req is None or resp is None:
            continue
        method = text_field(req, "method").decode("latin-1")
        target = text_field(req, "path")
        path, _, query = target.partition(b"?")
        try:
            path_s = path.decode("ascii")
        except UnicodeDecodeError:
            skipped.append(f"{method} {target!r}: path not ASCII")
            continue
        key = (method, path_s)
        if key in routes:
            routes[key]["recorded"] += 1
            if target != routes[key]["target"].encode() and target not in noted:
                noted.add(target)
                print(f"serve_nginx_conf: {method} {target.decode(errors='replace')}: nginx "
                      f"serves {routes[key]['target']}'s answer (the query is not matched)",
                      file=sys.stderr)
            continue
        body, truncated = body_bytes(resp.get("body"))
        routes[key] = {"method": method, "target": target.decode("latin-1"), "path": path_s,
                       "status": resp["httpStatus"], "headers": header_list(resp["headers"]),
                       "body": body, "truncated": truncated, "recorded": 1}
        order.append(key)

    kept = []
    for key in order:
        r = routes[key]
        name = f"{r['method']} {r['target']}"
        if r["body"] is None:
            skipped.append(f"{name}: body not readable (damaged segment)")
            continue
        if r["truncated"]:
            skipped.append(f"{name}: body not stored whole")
            continue
        if not re.fullmatch(r"/[A-Za-z0-9._~!&'()*+,;=:@%/-]*", r["path"]):
            skipped.append(f"{name}: path with characters an nginx location would need quoted")
            continue
        has_body = len(r["body"]) > 0 and r["status"] not in NO_BODY_STATUS
        if has_body and r["method"] not in ("GET", "HEAD"):
            skipped.append(f"{name}: a body on {r['method']} (nginx serves files to GET only)")
            continue
        if has_body and r["status"] != 200 and r["status"] < 300:
            skipped.append(f"{name}: a body with status {r['status']} (nginx serves files with 200)")
            continue
        r["has_body"] = has_body
        kept.append(r)
    by_path = {}
    for r in kept:
        by_path.setdefault(r["path"], []).append(r)

    conf = [
        "# Generated by bench/serve_nginx_conf.py from " + os.path.abspath(args.capture),
        "# (see that script for what is served as recorded and what nginx sends itself).",
        "user root root;" if os.geteuid() == 0 else "",
        "worker_processes 1;",
        "daemon on;",
        f"pid {out}/nginx.pid;",
        f"error_log {out}/error.log;",
        "events { worker_connections 1024; }",
        "http {",
        "  access_log off;",
        "  keepalive_requests 1000000;",
        "  server_tokens off;",
        # The mock serves from memory; nginx gets its best: file descriptors cached (without the
        # cache, 16-19 us of CPU a request instead of 13), and pread(2) into its buffers rather than
        # sendfile(2) (9 us instead of 13 on these bodies of 3 B to 20 KB; bench/README.md).
        "  open_file_cache max=1000 inactive=600s;",
        "  sendfile off;",
        "  tcp_nodelay on;",
        "  types { }",
        "  etag off;",
        "  max_ranges 0;",
        f"  client_body_temp_path {out}/tmp;",
        f"  proxy_temp_path {out}/tmp; fastcgi_temp_path {out}/tmp;",
        f"  uwsgi_temp_path {out}/tmp; scgi_temp_path {out}/tmp;",
        '  geo $tapkit_dollar { default "$"; }',
        "  server {",
        f"    listen {args.listen};",
        "    location / { return 404; }",
    ]
    os.makedirs(os.path.join(out, "tmp"), exist_ok=True)
    index = []
    for n, r in enumerate(kept, 1):
        rid = f"r{n}"
        body_file = os.path.join(bodies, rid)
        if r["has_body"]:
            with open(body_file, "wb") as f:
                f.write(r["body"])
        ctype = b""
        fields = []
        for name, value in r["headers"]:
            lname = name.lower().decode("latin-1")
            if lname == "content-type" and not ctype:
                ctype = value
            if lname in HOP_BY_HOP or lname in NGINX_OWN:
                continue
            fields.append((name, value))
        # Fields named by Connection are hop-by-hop too.
        for name, value in r["headers"]:
            if name.lower() == b"connection":
                named = {t.strip().lower() for t in value.split(b",")}
                fields = [(n_, v) for n_, v in fields if n_.lower() not in named]
        try:
            adds = [f"add_header {conf_string(n_)} {conf_string(v)} always;" for n_, v in fields]
            ctype_s = conf_string(ctype)
        except (ValueError, UnicodeDecodeError):
            skipped.append(f"{r['method']} {r['target']}: a header field nginx cannot be given")
            continue
        r["id"] = rid
        index.append({"id": rid, "method": r["method"], "target": r["target"],
                      "status": r["status"], "bodyLength": len(r["body"]) if r["has_body"] else 0,
                      "sha256": hashlib.sha256(r["body"] if r["has_body"] else b"").hexdigest(),
                      "recorded": r["recorded"]})
        if r["has_body"] and not any(n_.lower() == b"last-modified" for n_, _ in fields):
            adds.append('add_header "Last-Modified" "" always;')  # not the file's
        r["adds"], r["ctype"] = adds, ctype_s

    for path, rs in by_path.items():
        rs = [r for r in rs if "id" in r]
        if not rs:
            continue
        conf.append(f"    location = {path} {{")
        get = next((r for r in rs if r["method"] in ("GET", "HEAD")), None)
        for r in rs:
            if r is get:
                continue
            # Other methods have empty bodies here (checked above).
            ret = (f"return {r['status']};" if r["status"] in NO_BODY_STATUS
                   else f'return {r["status"]} "";')
            conf.append(f"      if ($request_method = {r['method']}) {{ {ret} }}")
        if get is None:
            conf.append("      return 405;")
        elif not get["has_body"]:
            conf += [f"      default_type {get['ctype']};"] + [f"      {a}" for a in get["adds"]]
            conf.append(f"      return {get['status']};" if get["status"] in NO_BODY_STATUS
                        else f'      return {get["status"]} "";')
        elif get["status"] == 200:
            conf += [f"      alias {bodies}/{get['id']};", f"      default_type {get['ctype']};"]
            conf += [f"      {a}" for a in get["adds"]]
        else:
            conf += [f"      return {get['status']};",
                     f"      error_page {get['status']} /.tapkit/{get['id']};"]
            conf.append("    }")
            conf.append(f"    location = /.tapkit/{get['id']} {{")
            conf += ["      internal;", f"      alias {bodies}/{get['id']};",
                     f"      default_type {get['ctype']};"]
            conf += [f"      {a}" for a in get["adds"]]
        conf.append("    }")
    conf += ["  }", "}", ""]
    with open(os.path.join(out, "nginx.conf"), "w") as f:
        f.write("\n".join(conf))
    with open(os.path.join(out, "routes.json"), "w") as f:
        json.dump(index, f, indent=1)
        f.write("\n")
    # wrk: every route in turn on each connection, the requests formatted once (init).
    reqs = ", ".join(json.dumps([r["method"], r["target"]]).replace("[", "{").replace("]", "}")
                     for r in index)
    with open(os.path.join(out, "paths.lua"), "w") as f:
        f.write("-- Generated by bench/serve_nginx_conf.py: the routes in turn.\n"
                f"local routes = {{{reqs}}}\n"
                "local reqs = {}\nlocal i = 0\n"
                "function init(args)\n"
                "  for k, r in ipairs(routes) do reqs[k] = wrk.format(r[1], r[2]) end\n"
                "end\n"
                "function request()\n  i = i % #reqs + 1\n  return reqs[i]\nend\n")
    for line in skipped:
        print(f"serve_nginx_conf: left out {line}", file=sys.stderr)
    t = subprocess.run(["nginx", "-t", "-c", os.path.join(out, "nginx.conf")],
                       capture_output=True, text=True)
    if t.returncode != 0:
        fail(f"nginx -t {out}/nginx.conf: {t.stderr.strip()}")
    print(f"serve_nginx_conf: {len(index)} routes in {out}/nginx.conf ({len(skipped)} left out), "
          "nginx -t ok", file=sys.stderr)
    if not index:
        fail(f"{args.capture}: no route to serve")


def curl(url):
    """(status, header names sorted, body) as curl sees them: no decoding of the body's
    Content-Encoding, chunked framing undone; (None, [], error) when curl fails."""
    with tempfile.NamedTemporaryFile() as body:
        p = subprocess.run(["curl", "-s", "-S", "--max-time", "10", "-D", "-", "-o", body.name,
                            url], capture_output=True)
        if p.returncode != 0:
            return None, [], p.stderr
        data = body.read()
    head = p.stdout.decode("latin-1").split("\r\n")
    status = int(head[0].split()[1])
    names = sorted(line.split(":", 1)[0].lower() for line in head[1:] if ":" in line)
    return status, names, data


def check(outdir, url_a, url_b):
    with open(os.path.join(outdir, "routes.json")) as f:
        routes = json.load(f)
    bad = 0
    header_notes = set()
    for r in routes:
        if r["method"] != "GET":
            continue
        a = curl(url_a.rstrip("/") + r["target"])
        b = curl(url_b.rstrip("/") + r["target"])
        if a[0] is None or b[0] is None:
            print(f"serve_nginx_conf: GET {r['target']}: curl failed: "
                  f"{(a[2] if a[0] is None else b[2]).decode(errors='replace').strip()}",
                  file=sys.stderr)
            bad += 1
            continue
        if a[0] != b[0] or a[2] != b[2] or hashlib.sha256(a[2]).hexdigest() != r["sha256"] \
                or a[0] != r["status"]:
            print(f"serve_nginx_conf: GET {r['target']}: {url_a} answers {a[0]} with "
                  f"{len(a[2])} bytes, {url_b} {b[0]} with {len(b[2])} bytes "
                  f"(recorded {r['status']}, {r['bodyLength']} bytes)", file=sys.stderr)
            bad += 1
        if a[1] != b[1]:
            only_a = sorted(set(a[1]) - set(b[1]))
            only_b = sorted(set(b[1]) - set(a[1]))
            header_notes.add(f"only {url_a}: {', '.join(only_a) or '-'}; "
                             f"only {url_b}: {', '.join(only_b) or '-'}")
    for note in sorted(header_notes):
        print(f"serve_nginx_conf: header fields differ on some routes: {note}", file=sys.stderr)
    if bad:
        print(f"serve_nginx_conf: {bad} of {len(routes)} routes answer differently",
              file=sys.stderr)
        sys.exit(1)
    print(f"serve_nginx_conf: all {len(routes)} routes: same status and body bytes from "
          f"{url_a} and {url_b}", file=sys.stderr)


def main():
    if len(sys.argv) == 5 and sys.argv[1] == "--check":
        check(sys.argv[2], sys.argv[3], sys.argv[4])
        return
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("capture")
    p.add_argument("outdir")
    p.add_argument("--listen", default="127.0.102.1:8080")
    p.add_argument("--tapcat", default=os.path.join(os.path.dirname(__file__), "..", "build",
                                                    "tools", "tapcat"))
    args = p.parse_args()
    if not os.path.exists(args.capture):
        fail(f"{args.capture}: no such file")
    build(args)


if __name__ == "__main__":
    main()
