#!/usr/bin/env python3
"""Confirming AMQP publisher used by lb/bench/run for the failover outage.

One message in flight at a time (publish, wait for the broker's confirm),
persistent, mandatory, a unique id per message.  On any error it reconnects
through the same endpoint at once (5 ms pause, no backoff) and resends the
id that was not confirmed (with several --host values, pika tries them in
order: client-side failover, the "direct" baseline), so the gap between confirms is what the endpoint
and the broker cost, not the client's retry policy.

Prints "ready" on stdout after the first confirm, runs until --duration has
passed, then writes a JSON report to --out: every confirm as [id, t] with t
= time.monotonic() (CLOCK_MONOTONIC, comparable across processes) and every
error as [t, text].
"""

import argparse
import json
import sys
import time

import pika


def main():
    p = argparse.ArgumentParser()
    p.add_argument("--host", required=True, help="HOST or HOST,HOST,... (tried in order)")
    p.add_argument("--port", type=int, required=True)
    p.add_argument("--user", required=True)
    p.add_argument("--password", required=True)
    p.add_argument("--queue", required=True)
    p.add_argument("--duration", type=float, required=True)
    p.add_argument("--out", required=True)
    p.add_argument("--persistent", action="store_true", help="delivery_mode 2 (fsync before confirm)")
    a = p.parse_args()

    params = [pika.ConnectionParameters(
        host=h, port=a.port, virtual_host="/",
        credentials=pika.PlainCredentials(a.user, a.password),
        heartbeat=5, socket_timeout=2, stack_timeout=5, blocked_connection_timeout=10,
        connection_attempts=1,
    ) for h in a.host.split(",")]
    props = pika.BasicProperties(delivery_mode=2 if a.persistent else 1)
    deadline = time.monotonic() + a.duration
    confirms, errors = [], []
    next_id, conn, ready = 0, None, False
    while time.monotonic() < deadline:
        try:
            if conn is None:
                conn = pika.BlockingConnection(params)
                ch = conn.channel()
                ch.confirm_delivery()
                ch.queue_declare(a.queue, passive=True)  # made by the bench, mirrored
            while time.monotonic() < deadline:
                ch.basic_publish("", a.queue, str(next_id).encode(), props, mandatory=True)
                confirms.append([next_id, time.monotonic()])
                next_id += 1
                if not ready:
                    ready = True
                    print("ready", flush=True)
        except Exception as e:  # noqa: BLE001 - any failure means: reconnect
            errors.append([time.monotonic(), f"{type(e).__name__}: {e}"[:200]])
            try:
                if conn is not None:
                    conn.close()
            except Exception:  # noqa: BLE001
                pass
            conn = None
            time.sleep(0.005)
    try:
        if conn is not None:
            conn.close()
    except Exception:  # noqa: BLE001
        pass
    with open(a.out, "w") as f:
        json.dump({"confirms": confirms, "errors": errors, "sent_ids": next_id}, f)
    return 0


if __name__ == "__main__":
    sys.exit(main())
