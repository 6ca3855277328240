"""This run's id: the one decision of which id names a run on the hosts.

Two places name a run and must agree: its lease on each host (plugins/module_utils/run_gate.py
``identity``, on the controller) and its maintenance windows (the flag and the log written by
opsplay.ops.maintenance_mode_window on the host, which the dead-man switch closes). Both ask
``of_this_run``:

1. the first run id given that is not blank: opsplay's own (``opsplay_run_id``; the lease may
   name first the run it takes over, ``opsplay_lease_run_id``), as given;
2. else ``awx-JOB_ID`` for an AWX job: the first job id given that is not blank (AWX's
   ``awx_job_id``, else ``tower_job_id``, which older AWX and Tower set instead), stripped;
3. else "": a plain ansible-playbook run has none (the lease then makes one of its own).

Small and dependency-free on purpose: it is shipped to the host with each module that imports it.
"""

from __future__ import annotations

from collections.abc import Iterable

AWX_PREFIX = "awx-"


def _first(values: Iterable[object]) -> str | None:
    """The first value that is not None and not blank, as text (unstripped)."""
    for value in values:
        if value is None:
            continue
        text = str(value)
        if text.strip():
            return text
    return None


def of_this_run(run_ids: Iterable[str | None], awx_job_ids: Iterable[object] = ()) -> str:
    """This run's id: the first run id given, else ``awx-JOB_ID`` from the first job id given,
    else "" (blank values and None are skipped)."""
    run_id = _first(run_ids)
    if run_id is not None:
        return run_id
    job_id = _first(awx_job_ids)
    if job_id is not None:
        return AWX_PREFIX + job_id.strip()
    return ""
