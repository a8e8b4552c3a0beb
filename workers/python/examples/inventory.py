#!/usr/bin/env python3
"""inventory: stock per SKU, one actor per SKU (the request's key).

    {"op": "stock", "qty": N}  set the stock to N; replies N
    {"op": "buy",   "qty": N}  take N (N >= 1); replies what is left, or
                               error out_of_stock when fewer than N remain
                               (the stock never goes below zero)
    {"op": "get"}              replies the stock

Every change is published on channel stock:<sku> as {"sku": SKU,
"stock": N} (fire and forget). The stock lives in the actor's memory: it
is gone when the actor is passivated or its key moves to another worker,
so a real service would load it in start() and store it on change.

    python3 inventory.py --gateway tcp://127.0.0.1:7001 [--gateway ...]
"""

import argparse
import logging
import os
import re
import sys

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), ".."))

from wsgate_worker import Service, ServiceError, Worker  # noqa: E402

SKU_RE = re.compile(r"[A-Za-z0-9_.:@/=+-]{1,120}\Z")  # so that stock:<sku> is a channel


def quantity(data, least):
    qty = data.get("qty")
    if not isinstance(qty, int) or isinstance(qty, bool) or not least <= qty <= 2**53:
        raise ServiceError("bad_request", "qty must be an integer >= %d" % least)
    return qty


class Inventory(Service):
    retry_safe = False  # a buy sent twice would sell twice

    def start(self, ctx):
        self.stock = 0

    def handle(self, ctx, msg):
        if msg.private or not SKU_RE.match(msg.key):
            raise ServiceError("bad_request", "the key must be a SKU of [A-Za-z0-9_.:@/=+-]")
        data = msg.data
        if not isinstance(data, dict):
            raise ServiceError("bad_request", 'data must be {"op": "stock"|"buy"|"get", ...}')
        op = data.get("op")
        if op == "get":
            return self.stock
        if op == "stock":
            self.set(ctx, quantity(data, 0))
            return self.stock
        if op == "buy":
            qty = quantity(data, 1)
            if qty > self.stock:
                raise ServiceError("out_of_stock", "%d left" % self.stock)
            self.set(ctx, self.stock - qty)
            return self.stock
        raise ServiceError("bad_request", "unknown op %r" % (op,))

    def set(self, ctx, n):
        if n != self.stock:
            self.stock = n
            ctx.publish("stock:" + ctx.key, {"sku": ctx.key, "stock": n})


def main(argv=None):
    ap = argparse.ArgumentParser(description="wsgate worker: the inventory service")
    ap.add_argument("--gateway", action="append", help="gateway backend endpoint, repeatable "
                    "(tcp://127.0.0.1:7001)")
    ap.add_argument("--id", help="worker id (<hostname>-<pid>)")
    ap.add_argument("--service", default="inventory", help="the service name (inventory)")
    ap.add_argument("--hello-ms", type=int, default=1000)
    ap.add_argument("--drain-ms", type=int, default=10000)
    ap.add_argument("--idle-ms", type=int, default=60000)
    ap.add_argument("--mailbox-max", type=int, default=1024)
    ap.add_argument("--max-actors", type=int, default=100000)
    ap.add_argument("--curve-secret-file", help="CURVE: this worker's secret key file")
    ap.add_argument("--curve-server-key", help="CURVE: the gateways' public key (Z85)")
    ap.add_argument("-v", "--verbose", action="store_true")
    a = ap.parse_args(argv)
    logging.basicConfig(level=logging.DEBUG if a.verbose else logging.INFO,
                        format="inventory[%(process)d]: %(message)s")
    curve = None
    if a.curve_secret_file or a.curve_server_key:
        if not (a.curve_secret_file and a.curve_server_key):
            ap.error("--curve-secret-file and --curve-server-key go together")
        curve = {"secret_key": a.curve_secret_file, "server_key": a.curve_server_key}
    w = Worker(a.gateway or ["tcp://127.0.0.1:7001"], worker_id=a.id,
               services={a.service: Inventory}, hello_ms=a.hello_ms, drain_ms=a.drain_ms,
               curve=curve, mailbox_max=a.mailbox_max, max_actors=a.max_actors,
               idle_ms=a.idle_ms)
    return w.run()


if __name__ == "__main__":
    sys.exit(main())
