"""The mirror-sync judgement of rolling_restart.yml (pure; no broker, no containers).

The module rabbitmq_mirror_sync feeds `rabbitmqctl list_queues` rows into it; the
converge suite runs it against a real cluster (test_converge.py)."""

import importlib.util
import itertools
import random

import pytest

from conftest import ANSIBLE_DIR

_spec = importlib.util.spec_from_file_location(
    "warren_mirror_sync", ANSIBLE_DIR / "roles/rabbitmq_cluster/module_utils/warren_mirror_sync.py")
ms = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(ms)

P1, P2, P3 = "<rabbit@rabbit1.1733040000.1234.0>", "<rabbit@rabbit2.1733040000.99.0>", "<rabbit@rabbit3.5.6>"


def cell(pids):
    """A pid list as `list_queues --formatter csv` prints it ("" for none)."""
    return "[" + ", ".join(pids) + "]" if pids else ""


def row(name, mirrors, synced, messages=7, qtype="classic"):
    """One csv.DictReader row of `list_queues --formatter csv` (every value a string)."""
    return {"name": name, "type": qtype, "slave_pids": cell(mirrors), "synchronised_slave_pids": cell(synced),
            "messages": str(messages)}


def test_node_names_from_pids():
    assert ms.node_of(P1) == "rabbit@rabbit1"
    assert ms.node_of(P3) == "rabbit@rabbit3"
    assert ms.node_of("<rabbit@db-1.example.com.1733040000.77.0>") == "rabbit@db-1.example.com"
    assert ms.node_of("strange") == "strange"
    assert ms.lagging([row("q", [P1, P2], [P2])], "/")[0].mirrors == ("rabbit@rabbit1", "rabbit@rabbit2")


def test_lagging_picks_only_classic_queues_with_unsynchronised_mirrors():
    rows = [
        row("in-sync", [P1, P2], [P2, P1]),
        row("behind", [P1, P2], [P2], messages=5687),
        row("no-mirrors", [], []),
        row("quorum", [], [], qtype="quorum"),
        row("all-behind", [P1, P2], []),
    ]
    lags = ms.lagging(rows, "/")
    assert [lag.name for lag in lags] == ["behind", "all-behind"]
    assert lags[0].unsynchronised == ("rabbit@rabbit1",)
    text = lags[0].describe()
    assert "queue 'behind' in vhost '/'" in text and "1 of 2 mirrors synchronised" in text
    assert "rabbit@rabbit1" in text and "5687 messages" in text
    assert lags[1].unsynchronised == ("rabbit@rabbit1", "rabbit@rabbit2")


def lag(name, messages=3):
    return ms.Lag(vhost="/", name=name, mirrors=("rabbit@rabbit1", "rabbit@rabbit2"),
                  synchronised=("rabbit@rabbit2",), messages=messages)


def test_nothing_behind_is_done_at_once():
    assert ms.SyncWait(0, grace=30, timeout=600).step(0, []).kind == "done"


def test_sync_is_requested_after_the_grace_period_and_again_every_grace_period():
    w = ms.SyncWait(0, grace=10, timeout=600)
    assert w.step(0, [lag("q")]).kind == "wait"
    assert w.step(9, [lag("q")]).kind == "wait"
    d = w.step(10, [lag("q")])
    assert d.kind == "sync" and [x.name for x in d.sync] == ["q"]
    w.requested(("/", "q"), 10, "Synchronising queue 'q' in vhost '/'")
    assert w.step(15, [lag("q")]).kind == "wait", "not again within the grace period"
    assert w.step(20, [lag("q")]).kind == "sync"
    assert w.step(21, []).kind == "done"


def test_a_queue_that_catches_up_and_falls_behind_gets_a_new_grace_period():
    w = ms.SyncWait(0, grace=10, timeout=600)
    w.step(0, [lag("q")])
    w.step(5, [])
    assert w.step(12, [lag("q")]).kind == "wait"
    assert w.step(22, [lag("q")]).kind == "sync"


def test_the_verdict_names_every_queue_how_far_behind_and_the_brokers_answer():
    w = ms.SyncWait(0, grace=10, timeout=40, timeout_name="rabbitmq_cluster_sync_timeout")
    w.step(0, [lag("a", 12), lag("b")])
    w.step(30, [lag("a", 12), lag("b")])
    w.requested(("/", "a"), 30, "Error: pending_acks\n")
    d = w.step(40, [lag("a", 12), lag("b")])
    assert d.kind == "give_up"
    assert "2 mirrored queue(s) still not synchronised after 40 s" in d.message
    assert "rabbitmq_cluster_sync_timeout = 40 s" in d.message
    assert "queue 'a' in vhost '/'" in d.message and "queue 'b' in vhost '/'" in d.message
    assert "12 messages" in d.message and "behind: rabbit@rabbit1" in d.message
    assert "requested 1 time(s), last answer: Error: pending_acks" in d.message
    assert "retries" not in d.message and "attempts" not in d.message


def test_a_failing_read_waits_then_gives_up_with_the_error():
    w = ms.SyncWait(0, grace=10, timeout=20)
    assert w.step(5, None, "rabbitmqctl list_queues exited 69: nodedown").kind == "wait"
    d = w.step(20, None, "rabbitmqctl list_queues exited 69: nodedown")
    assert d.kind == "give_up" and "nodedown" in d.message and "20 s" in d.message


def test_a_read_failing_at_the_timeout_still_names_the_queues_last_seen_behind():
    """Seen under load: the last list_queues before the timeout did not answer; the
    verdict must still name the queue, with the read error."""
    w = ms.SyncWait(0, grace=600, timeout=20)
    w.step(3, [lag("wans-manual-sync", 50)])
    d = w.step(23, None, "rabbitmq_mirror_sync: list_queues: no answer within 60 s")
    assert d.kind == "give_up"
    assert "queue 'wans-manual-sync' in vhost '/'" in d.message and "50 messages" in d.message
    assert "the last read failed: rabbitmq_mirror_sync: list_queues: no answer within 60 s" in d.message
    assert "behind for 20 s" in d.message


@pytest.mark.parametrize("grace,timeout", [(-1, 10), (5, 0)])
def test_bad_settings_are_refused_naming_them(grace, timeout):
    with pytest.raises(ValueError, match="grace must be >= 0 and timeout > 0"):
        ms.SyncWait(0, grace=grace, timeout=timeout)


def test_model_random_polls():
    """Against a model over random poll sequences: done exactly when nothing is behind;
    give_up only at or after the timeout; a sync request only for a queue behind for at
    least the grace period, and never twice for one queue within a grace period."""
    rnd = random.Random(21)
    for _ in range(300):
        grace, timeout = rnd.randint(0, 15), rnd.randint(1, 60)
        w = ms.SyncWait(0, grace=grace, timeout=timeout)
        behind_since, last_req = {}, {}
        for t in itertools.accumulate(rnd.uniform(0.5, 4) for _ in range(40)):
            names = sorted(n for n in "abc" if rnd.random() < 0.6)
            behind_since = {n: behind_since.get(n, t) for n in names}
            d = w.step(t, [lag(n) for n in names])
            if not names:
                assert d.kind == "done"
                break
            if t >= timeout:
                assert d.kind == "give_up" and all(f"queue '{n}'" in d.message for n in names)
                break
            assert d.kind in ("wait", "sync")
            due = {n for n in names if t - behind_since[n] >= grace
                   and (n not in last_req or t - last_req[n] >= max(grace, 1))}
            assert {x.name for x in d.sync} == due
            assert (d.kind == "sync") == bool(due)
            for x in d.sync:
                last_req[x.name] = t
                w.requested(x.key, t, "ok")
