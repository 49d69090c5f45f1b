#!/usr/bin/python3
"""Ansible module: wait until every classic mirrored queue is synchronised, actively."""

DOCUMENTATION = r"""
---
module: rabbitmq_mirror_sync
short_description: Wait until every classic mirrored queue has all its mirrors synchronised
description:
  - Polls C(rabbitmqctl list_queues) in every vhost. A queue whose mirrors stay
    unsynchronised for I(grace) seconds gets C(rabbitmqctl sync_queue), again every
    I(grace) seconds while it stays behind.
  - Fails at I(timeout) naming every queue still behind, its synchronised and
    unsynchronised mirrors, its depth, and the broker's answer to the sync requests.
  - The judgement is in module_utils/warren_mirror_sync.py (pure, unit-tested).
options:
  timeout:
    description: Seconds to wait in all (the role passes rabbitmq_cluster_sync_timeout).
    type: int
    required: true
  grace:
    description: Seconds a queue may stay behind before sync_queue is requested.
    type: int
    default: 30
  poll_interval:
    description: Seconds between two reads of the queues.
    type: float
    default: 2
  timeout_name:
    description: Name of the variable that set I(timeout), quoted in the failure message.
    type: str
    default: rabbitmq_cluster_sync_timeout
author: warren
"""

EXAMPLES = r"""
- name: Wait until every mirrored queue is synchronised again
  rabbitmq_mirror_sync:
    timeout: "{{ rabbitmq_cluster_sync_timeout }}"
    grace: "{{ rabbitmq_cluster_sync_grace }}"
"""

RETURN = r"""
sync_requests:
  description: The sync_queue requests sent, with the broker's answers.
  type: list
  returned: always
waited:
  description: Seconds waited.
  type: float
  returned: always
"""

import csv
import io
import json
import subprocess
import time

from ansible.module_utils.basic import AnsibleModule
from ansible.module_utils.warren_mirror_sync import SyncWait, lagging

QUEUE_COLUMNS = ["name", "type", "slave_pids", "synchronised_slave_pids", "messages"]
READ_TIMEOUT = 60.0


def rabbitmqctl(args, timeout):
    """(ok, stdout or the error text) of one rabbitmqctl call."""
    try:
        proc = subprocess.run(["rabbitmqctl", *args], stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                              text=True, timeout=timeout, check=False)
    except subprocess.TimeoutExpired:
        return False, f"rabbitmqctl {' '.join(args)}: no answer within {timeout:.0f} s"
    if proc.returncode != 0:
        detail = (proc.stderr.strip() or proc.stdout.strip()).splitlines()
        return False, f"rabbitmqctl {' '.join(args)} exited {proc.returncode}: {' '.join(detail)[-400:]}"
    return True, proc.stdout


def read_vhosts(timeout):
    """The vhost names, or (None, error)."""
    ok, out = rabbitmqctl(["list_vhosts", "--quiet", "--formatter", "json", "name"], timeout)
    return ([row["name"] for row in json.loads(out or "[]")], "") if ok else (None, out)


def read_lags(vhosts, timeout):
    """This moment's lagging queues in `vhosts`, or (None, error)."""
    lags = []
    for vhost in vhosts:
        # CSV: the JSON formatter prints pids without their node names.
        ok, out = rabbitmqctl(["list_queues", "--quiet", "--formatter", "csv", "-p", vhost, *QUEUE_COLUMNS],
                              timeout)
        if not ok:
            return None, out
        lags += lagging(list(csv.DictReader(io.StringIO(out))), vhost)
    return lags, ""


def main():
    module = AnsibleModule(
        argument_spec={
            "timeout": {"type": "int", "required": True},
            "grace": {"type": "int", "default": 30},
            "poll_interval": {"type": "float", "default": 2.0},
            "timeout_name": {"type": "str", "default": "rabbitmq_cluster_sync_timeout"},
        },
        supports_check_mode=False,
    )
    p = module.params
    try:
        wait = SyncWait(time.monotonic(), p["grace"], p["timeout"], p["timeout_name"])
    except ValueError as exc:
        module.fail_json(msg=f"rabbitmq_mirror_sync: {exc}")
    log = []
    # Every rabbitmqctl call boots an Erlang VM (a CPU-second or more): the vhosts
    # are read once, the queues once per poll.
    vhosts = None
    while True:
        # A read is not cut short by the deadline (under load one rabbitmqctl can
        # take many seconds): the wait may end one read late, but with an answer.
        if vhosts is None:
            vhosts, error = read_vhosts(READ_TIMEOUT)
        lags, error = read_lags(vhosts, READ_TIMEOUT) if vhosts is not None else (None, error)
        now = time.monotonic()
        decision = wait.step(now, lags, error)
        if decision.kind == "done":
            module.exit_json(changed=bool(log), sync_requests=log, waited=round(now - wait.started, 1))
        if decision.kind == "give_up":
            module.fail_json(msg=decision.message, sync_requests=log, waited=round(now - wait.started, 1),
                             behind=[lag.describe() for lag in (wait.last_lags or [])])
        for lag in decision.sync:
            # sync_queue returns when the sync is done or refused; bounded so that a
            # blocked queue cannot hold the wait past its timeout.
            ok, answer = rabbitmqctl(["sync_queue", "-p", lag.vhost, lag.name],
                                     min(max(wait.started + wait.timeout - time.monotonic(), 1.0), 60.0))
            answer = answer.strip() or "ok"
            wait.requested(lag.key, time.monotonic(), answer)
            log.append({"queue": lag.name, "vhost": lag.vhost, "at": round(time.monotonic() - wait.started, 1),
                        "behind": lag.describe(), "answer": answer, "ok": ok})
        time.sleep(p["poll_interval"])


if __name__ == "__main__":
    main()
