#!/usr/bin/env python3
"""The service bench/serve_vs_nginx.sh records: an nginx (1 worker) with 20 GET routes of a shop
API, to be captured with tcpdump while curl asks each route once, then served back by
`tapreplay --serve` and by nginx from a generated config (bench/serve_nginx_conf.py).

    bench/serve_site.py WORK ADDR PORT
        writes WORK/site/nginx.conf, WORK/site/www/* and WORK/site/urls (one URL a line)

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
import sys

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


def main(argv):
    if len(argv) != 4:
        sys.exit(__doc__)
    work, addr, port = argv[1], argv[2], int(argv[3])
    site = os.path.abspath(os.path.join(work, "site"))
    www = os.path.join(site, "www")
    os.makedirs(www, exist_ok=True)
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
                     "return 404 '{\"error\":\"no such user\",\"id\":999}\\n'; }")
    locations.append("    location = /api/v1/ping { return 204; }")
    urls += ["/healthz", "/api/v1/users/999", "/api/v1/ping"]
    user = "user root root;" if os.geteuid() == 0 else ""
    conf = f"""{user}
worker_processes 1;
daemon on;
pid {site}/nginx.pid;
error_log {site}/error.log;
events {{ worker_connections 1024; }}
http {{
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
    with open(os.path.join(site, "nginx.conf"), "w") as f:
        f.write(conf)
    with open(os.path.join(site, "urls"), "w") as f:
        f.write("".join(f"http://{addr}:{port}{u}\n" for u in urls))


if __name__ == "__main__":
    main(sys.argv)
