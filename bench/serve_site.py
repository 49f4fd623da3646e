#!/usr/bin/env python3
"""The service bench/serve_vs_nginx.sh records: an nginx (1 worker) with 20 GET routes of a shop
API, to be captured with tcpdump while curl asks each route once, then served back by
`tapreplay --serve` and by nginx from a generated config (bench/serve_nginx_conf.py).

    bench/serve_site.py WORK ADDR PORT TAPREC
        writes WORK/site/nginx.conf, WORK/site/www/* and WORK/site/urls (one URL a line), starts
        that nginx, asks each route once with curl (one keep-alive connection, Accept-Encoding:
        gzip) while tcpdump records lo, stops nginx and tcpdump and writes WORK/rec.tap with
        `TAPREC -r`. Needs root (tcpdump). Prints a line on stderr with the kernel's drops.
Imported by bench/serve_nginx_conf_test.py (which keeps the recorded nginx running).

The routes (deterministic content):
  - 16 JSON documents, 200 B to 20 KB in geometric steps (users, products, orders, catalog,
    search...; two with a query string), served as static files with application/json;
  - /api/v1/catalog/full: a 20 KB JSON document served gzip-compressed (nginx's gzip filter,
    chunked on the wire: the capture stores the de-chunked gzip bytes);
  - /healthz: `return 200 "ok\\n"` (text/plain);
  - /api/v1/users/999: 404 with a small JSON error body;
  - /api/v1/ping: 204, no body.
"""

import json
import os
import random
import re
import signal
import subprocess
import sys
import time

from bench_support import nginx_main, stop_nginx

JSON_ROUTES = [
    ("/api/v1/users/1", "users-1.json"),
    ("/api/v1/users/2", "users-2.json"),
    ("/api/v1/users/3/profile", "profile.json"),
    ("/api/v1/config", "config.json"),
    ("/api/v1/carts/9", "cart.json"),
    ("/api/v1/orders/1001", "order.json"),
    ("/api/v1/products/17", "product.json"),
    ("/api/v1/inventory/warehouse-2", "inventory.json"),
    ("/api/v1/users/3/orders", "user-orders.json"),
    ("/api/v1/orders/1001/items", "order-items.json"),
    ("/api/v1/recommendations?user=3", "recommendations.json"),
    ("/api/v1/products/17/reviews", "reviews.json"),
    ("/api/v1/search?q=red+shoes", "search.json"),
    ("/api/v1/catalog/shirts", "shirts.json"),
    ("/api/v1/products", "products.json"),
    ("/api/v1/catalog/shoes", "shoes.json"),
]
GZIP_ROUTE = ("/api/v1/catalog/full", "catalog-full.json")
NOT_FOUND_BODY = '{"error":"no such user","id":999}\n'
WORDS = ["red", "blue", "canvas", "leather", "runner", "classic", "slim", "wool", "linen", "sport",
         "trail", "city", "summer", "winter", "organic", "vintage"]


def document(rng, size):
    """A JSON list of product-like records, about `size` bytes."""
    items, out = [], "[]"
    while len(out) < size:
        n = len(items) + 1
        items.append({"id": rng.randrange(1, 100000), "sku": f"SKU-{rng.randrange(10**8):08d}",
                      "name": " ".join(rng.choice(WORDS) for _ in range(3)),
                      "price": round(rng.uniform(3, 300), 2), "currency": "EUR",
                      "inStock": rng.random() < 0.8, "rating": round(rng.uniform(1, 5), 1),
                      "tags": rng.sample(WORDS, 2), "position": n})
        out = json.dumps({"items": items, "count": n}, separators=(",", ":"))
    return out + "\n"


def write_site(work, addr, port):
    """Writes the site under WORK/site; returns (conf path, route paths in order)."""
    site = os.path.abspath(os.path.join(work, "site"))
    www = os.path.join(site, "www")
    os.makedirs(www, exist_ok=True)
    os.chmod(work, 0o755)
    rng = random.Random(13)
    locations, urls = [], []
    for i, (route, name) in enumerate(JSON_ROUTES):
        size = round(200 * 100 ** (i / (len(JSON_ROUTES) - 1)))  # 200 B .. 20 KB
        with open(os.path.join(www, name), "w") as f:
            f.write(document(rng, size))
        locations.append(f"    location = {route.split('?')[0]} {{ alias {www}/{name}; "
                         "default_type application/json; }")
        urls.append(route)
    with open(os.path.join(www, GZIP_ROUTE[1]), "w") as f:
        f.write(document(rng, 20000))
    locations.append(f"    location = {GZIP_ROUTE[0]} {{ alias {www}/{GZIP_ROUTE[1]}; "
                     "default_type application/json; gzip on; gzip_types application/json; "
                     "gzip_min_length 0; }")
    urls.append(GZIP_ROUTE[0])
    locations.append('    location = /healthz { default_type text/plain; return 200 "ok\\n"; }')
    locations.append("    location = /api/v1/users/999 { default_type application/json; "
                     f"return 404 '{NOT_FOUND_BODY.strip()}\\n'; }}")
    locations.append("    location = /api/v1/ping { return 204; }")
    urls += ["/healthz", "/api/v1/users/999", "/api/v1/ping"]
    conf = nginx_main(site, connections=1024) + f"""http {{
  access_log off;
  types {{ }}
  client_body_temp_path {site}; proxy_temp_path {site}; fastcgi_temp_path {site};
  uwsgi_temp_path {site}; scgi_temp_path {site};
  server {{
    listen {addr}:{port};
{chr(10).join(locations)}
  }}
}}
"""
    path = os.path.join(site, "nginx.conf")
    with open(path, "w") as f:
        f.write(conf)
    with open(os.path.join(site, "urls"), "w") as f:
        f.write("".join(f"http://{addr}:{port}{u}\n" for u in urls))
    return path, urls


def expected_body(work, route):
    """The bytes the site serves on `route` (before gzip), from the files written."""
    www = os.path.join(work, "site", "www")
    for r, name in JSON_ROUTES + [GZIP_ROUTE]:
        if r == route:
            with open(os.path.join(www, name), "rb") as f:
                return f.read()
    return {"/healthz": b"ok\n", "/api/v1/users/999": NOT_FOUND_BODY.encode(),
            "/api/v1/ping": b""}[route]


def wait_http(url):
    end = time.monotonic() + 10
    while subprocess.run(["curl", "-s", "-o", "/dev/null", "--max-time", "1", url]).returncode:
        if time.monotonic() > end:
            sys.exit(f"serve_site: nothing answers {url}")
        time.sleep(0.05)


def record(work, addr, port, taprec, keep_running=False):
    """Writes and starts the site, records one curl request per route; returns WORK/rec.tap."""
    conf, urls = write_site(work, addr, port)
    subprocess.run(["nginx", "-c", conf], check=True)
    base = f"http://{addr}:{port}"
    wait_http(base + "/healthz")
    pcap, log = os.path.join(work, "rec.pcap"), os.path.join(work, "tcpdump.log")
    with open(log, "w") as err:
        dump = subprocess.Popen(["tcpdump", "-i", "lo", "-s", "0", "-B", "16384", "-w", pcap,
                                 f"host {addr} and tcp port {port}"], stderr=err)
    try:
        end = time.monotonic() + 10
        while "listening on" not in open(log).read():
            if time.monotonic() > end or dump.poll() is not None:
                sys.exit(f"serve_site: tcpdump did not start: {open(log).read()}")
            time.sleep(0.05)
        cmd = ["curl", "-s", "-S", "-H", "Accept-Encoding: gzip"]
        for u in urls:
            cmd += [base + u, "-o", "/dev/null"]
        subprocess.run(cmd, check=True)
        time.sleep(1.5)  # tcpdump hands packets over in blocks retired after at most 1 s
    finally:
        dump.send_signal(signal.SIGINT)
        dump.wait()
    if not keep_running:
        stop_nginx(os.path.join(work, "site", "nginx.pid"))
    tap = os.path.join(work, "rec.tap")
    # As root, keep root (-Z root, as the tests do): taprec otherwise drops to nobody, and a
    # process that changed its user cannot be examined by LeakSanitizer at exit in the ASan build.
    keep_root = ["-Z", "root"] if os.geteuid() == 0 else []
    done = subprocess.run([taprec, "-r", pcap, *keep_root, "-w", tap], stderr=subprocess.PIPE)
    if done.returncode != 0:  # show why (a sanitizer report in the ASan build, say)
        sys.exit(f"serve_site: taprec -r {pcap} exited {done.returncode}: "
                 f"{done.stderr.decode(errors='replace')[-4000:]}")
    drops = re.search(r"\d+ packets dropped by kernel", open(log).read())
    print(f"serve_site: recorded {len(urls)} routes of {base} to {tap} "
          f"({drops.group(0) if drops else 'kernel drops unknown'})", file=sys.stderr)
    return tap


def main(argv):
    if len(argv) != 5:
        sys.exit(__doc__)
    record(argv[1], argv[2], int(argv[3]), argv[4])


if __name__ == "__main__":
    main(sys.argv)
