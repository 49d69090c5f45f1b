"""When is a rolling restart allowed to go on: the sync judgement of classic mirrored queues.

Pure (no IO, time passed in), so that it is tested without a broker; the module
rabbitmq_mirror_sync runs `rabbitmqctl` and feeds the rows in.

A restarted node comes back with empty mirrors. With `ha-sync-mode: automatic`
the master synchronises them, but not always: a queue with `ha-sync-mode: manual`
waits for an operator, a master with unacknowledged deliveries refuses to sync,
and rabbitmq-server#8974 leaves mirrors listed as unsynchronised after the master
logged "all mirrors already synced". Waiting passively for such a queue only ends
at the timeout with nothing learned. So the wait is active: a queue that stays
behind for a grace period gets `rabbitmqctl sync_queue`, again every grace period,
and when the timeout comes the verdict names every queue still behind, how far
behind and what the broker answered to the sync requests.
"""

import re
from dataclasses import dataclass, field

# A pid as `list_queues --formatter csv` prints it: <rabbit@host.CREATION.ID.SERIAL>
# (the JSON formatter hides the node: #PID<12694.4248.0>); the node name is what
# precedes the numbers.
_PID = re.compile(r"^<(?P<node>.+?)(?:\.\d+){2,3}>$")
_PIDS = re.compile(r"<[^<>]*>")


def node_of(pid):
    """The node name in a pid string; the pid itself when it has another shape."""
    match = _PID.match(str(pid))
    return match.group("node") if match else str(pid)


def _nodes(value):
    """Node names of a pid list: a CSV cell "[<a.1.2.3>, <b.4.5.6>]" or a list.
    A classic queue without mirrors has an empty cell."""
    pids = value if isinstance(value, list) else _PIDS.findall(str(value or ""))
    return [node_of(p) for p in pids]


def _count(value):
    try:
        return int(value)
    except (TypeError, ValueError):
        return 0


@dataclass(frozen=True)
class Lag:
    """One classic mirrored queue whose mirrors are not all synchronised."""

    vhost: str
    name: str
    mirrors: tuple
    synchronised: tuple
    messages: int

    @property
    def key(self):
        return (self.vhost, self.name)

    @property
    def unsynchronised(self):
        return tuple(n for n in self.mirrors if n not in self.synchronised)

    def describe(self):
        return (
            f"queue '{self.name}' in vhost '{self.vhost}': {len(self.synchronised)} of "
            f"{len(self.mirrors)} mirrors synchronised (behind: {', '.join(self.unsynchronised)}; "
            f"the queue holds {self.messages} messages, a mirror that is behind lacks those "
            f"published before it joined)"
        )


def lagging(rows, vhost):
    """The queues of one vhost whose mirrors are not all synchronised.

    rows: dicts from `rabbitmqctl list_queues --formatter csv name type
    slave_pids synchronised_slave_pids messages`. Quorum and stream queues (no
    slave_pids) and classic queues without mirrors are never behind."""
    out = []
    for row in rows:
        if row.get("type", "classic") != "classic":
            continue
        mirrors = _nodes(row.get("slave_pids"))
        synchronised = _nodes(row.get("synchronised_slave_pids"))
        if mirrors and set(mirrors) - set(synchronised):
            out.append(Lag(vhost=vhost, name=str(row.get("name")), mirrors=tuple(mirrors),
                           synchronised=tuple(synchronised), messages=_count(row.get("messages"))))
    return out


@dataclass
class Decision:
    """What the wait does next: 'done', 'wait', 'sync' (request sync_queue for
    `sync`, then wait) or 'give_up' (fail with `message`)."""

    kind: str
    sync: list = field(default_factory=list)
    message: str = ""


@dataclass
class Request:
    at: float
    answer: str = ""


class SyncWait:
    """The state of one wait: when each queue was first seen behind, which sync
    requests went out and what the broker answered.

    grace: how long a queue may stay behind before sync_queue is requested (and
    the interval between repeated requests); timeout: when the wait gives up;
    timeout_name: the variable that sets it, for the verdict."""

    def __init__(self, started, grace, timeout, timeout_name="rabbitmq_cluster_sync_timeout"):
        if grace < 0 or timeout <= 0:
            raise ValueError(f"grace must be >= 0 and timeout > 0 seconds (got grace={grace}, timeout={timeout})")
        self.started = started
        self.grace = grace
        self.timeout = timeout
        self.timeout_name = timeout_name
        self.behind_since = {}
        self.requests = {}
        self.last_error = ""
        self.last_lags = None

    def step(self, now, lags, error=""):
        """lags: this poll's lagging queues, or None when the poll failed (`error`).
        A failed poll changes nothing; at the timeout the verdict names the queues of
        the last poll that worked."""
        if lags is None:
            self.last_error = error
            if now - self.started < self.timeout:
                return Decision("wait")
            return self._give_up(now, self.last_lags or [])
        self.last_error = ""
        self.last_lags = lags
        current = {lag.key for lag in lags}
        # A queue that caught up and falls behind again starts a new grace period.
        self.behind_since = {k: t for k, t in self.behind_since.items() if k in current}
        for lag in lags:
            self.behind_since.setdefault(lag.key, now)
        if not lags:
            return Decision("done")
        if now - self.started >= self.timeout:
            return self._give_up(now, lags)
        due = [lag for lag in lags if self._due(lag.key, now)]
        return Decision("sync", sync=due) if due else Decision("wait")

    def requested(self, key, now, answer):
        """Record a sync_queue request and the broker's answer (output or error)."""
        self.requests.setdefault(key, []).append(Request(at=now, answer=answer.strip()))

    def _due(self, key, now):
        if now - self.behind_since[key] < self.grace:
            return False
        sent = self.requests.get(key)
        return not sent or now - sent[-1].at >= max(self.grace, 1)

    def _give_up(self, now, lags):
        waited = now - self.started
        if not lags:
            return Decision("give_up", message=(
                f"mirror sync could not be read for {waited:.0f} s ({self.timeout_name} = "
                f"{self.timeout:g} s): {self.last_error or 'no answer'}"))
        parts = []
        if self.last_error:
            parts.append(f"the last read failed: {self.last_error}")
        for lag in lags:
            sent = self.requests.get(lag.key, [])
            behind = now - self.behind_since.get(lag.key, now)
            text = f"{lag.describe()}, behind for {behind:.0f} s"
            if sent:
                answer = sent[-1].answer or "no output"
                text += f"; sync_queue requested {len(sent)} time(s), last answer: {answer}"
            else:
                text += "; sync_queue not requested yet (within the grace period)"
            parts.append(text)
        return Decision("give_up", message=(
            f"{len(lags)} mirrored queue(s) still not synchronised after {waited:.0f} s "
            f"({self.timeout_name} = {self.timeout:g} s): " + " | ".join(parts)))
