"""A confirming AMQP publisher in a thread, for "lost = 0" checks under faults.

Each message body is its sequence number. A number is recorded as confirmed only
after basic_publish returned in confirm mode (the broker confirmed it); a publish
interrupted by a connection loss is unconfirmed and the publisher reconnects. After
`stop()`, `lost(present)` is the confirmed numbers missing from `present`.
"""

import threading
import time

import pika


class ConfirmingPublisher:
    def __init__(self, endpoints, queue, user, password, interval=0.02):
        creds = pika.PlainCredentials(user, password)
        self.params = [pika.ConnectionParameters(host=e, port=5672, credentials=creds, socket_timeout=5,
                                                 blocked_connection_timeout=10, heartbeat=5) for e in endpoints]
        self.queue = queue
        self.interval = interval
        self.confirmed = []
        self.errors = []
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def start(self):
        self._thread.start()
        return self

    def stop(self, timeout=30):
        """Stop and wait; a publisher still running could confirm after the queue
        is read, which would count as a false "lost"."""
        self._stop.set()
        self._thread.join(timeout)
        assert not self._thread.is_alive(), f"the publisher did not stop within {timeout} s"

    def lost(self, present):
        return sorted(set(self.confirmed) - set(present))

    def _run(self):
        n = 0
        while not self._stop.is_set():
            try:
                conn = pika.BlockingConnection(self.params)
                ch = conn.channel()
                ch.confirm_delivery()
                while not self._stop.is_set():
                    ch.basic_publish("", self.queue, str(n).encode(), pika.BasicProperties(delivery_mode=2),
                                     mandatory=True)
                    self.confirmed.append(n)
                    n += 1
                    time.sleep(self.interval)
                conn.close()
            except Exception as exc:  # noqa: BLE001 - reconnect; the in-flight one is unconfirmed
                self.errors.append(repr(exc)[:200])
                n += 1
                self._stop.wait(0.5)


def drain(host, queue, user, password):
    """Every message body in `queue` (read directly from a broker) as ints; deletes the queue."""
    conn = pika.BlockingConnection(pika.ConnectionParameters(
        host=host, credentials=pika.PlainCredentials(user, password)))
    got = set()
    try:
        ch = conn.channel()
        while True:
            method, _, body = ch.basic_get(queue, auto_ack=True)
            if method is None:
                break
            got.add(int(body))
        ch.queue_delete(queue)
    finally:
        conn.close()
    return got
