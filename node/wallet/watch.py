"""Following a job to its end: poll `GET /jobs/{id}` and show each stage it passed.

    queued -> assigned -> committed -> accepted | rejected | failed | expired | undecided

The stages are read from the job document itself (assigned_height, committed_height,
settled_height), so a stage that came and went between two polls is still shown, in
order. The display is click's progress bar on stderr (click is already a dependency): on a
terminal one line that moves, elsewhere one line per stage.
"""

from __future__ import annotations

import sys
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any

import click

from node.wallet.client import NodeClient
from node.wallet.errors import JobFailed, WalletError

FINAL = ("accepted", "rejected", "failed", "expired", "undecided")
STAGES = ("queued", "assigned", "committed")  # bar positions 0..2; a final status is 3


def short(text: str | None, keep: int = 12) -> str:
    return "-" if not text else text if len(text) <= keep + 1 else text[:keep] + "…"


def events(job: dict[str, Any]) -> list[str]:
    """One line per stage the job has reached, oldest first."""
    lines = [f"queued at height {job.get('submitted_height')} ({job.get('units')} unit(s), "
             f"escrow {job.get('escrow')} ujev)"]
    if job.get("provider"):
        lines.append(f"assigned at height {job.get('assigned_height')} to "
                     f"{short(job['provider'], 16)} at {job.get('price')} ujev/unit, "
                     f"deadline height {job.get('deadline_height')}")
    if job.get("root"):
        lines.append(f"committed at height {job.get('committed_height')}, root "
                     f"{short(job['root'], 16)}")
    if job.get("status") in FINAL:
        lines.append(final_line(job))
    return lines


def final_line(job: dict[str, Any]) -> str:
    status, outcome = job.get("status"), job.get("outcome") or ""
    money = f"refunded {job.get('refunded')} ujev"
    if status == "accepted":
        cost = (job.get("escrow") or 0) - (job.get("refunded") or 0)
        money = (f"cost {cost} ujev (provider got {job.get('paid')} + {job.get('reward')} "
                 f"minted), {money}")
    elif status in ("rejected", "failed"):
        money += f", provider slashed {job.get('slashed')} ujev"
    why = f" ({outcome})" if outcome and outcome != status else ""
    return f"{status}{why} at height {job.get('settled_height')}: {money}{verdicts(job)}"


def verdicts(job: dict[str, Any]) -> str:
    committee = job.get("committee") or []
    if not committee:
        return ""
    votes = job.get("verdicts") or []
    valid = sum(1 for v in votes if v.get("valid"))
    return f"; verdicts {len(votes)}/{len(committee)} ({valid} valid)"


def position(job: dict[str, Any]) -> int:
    status = job.get("status")
    return len(STAGES) if status in FINAL else STAGES.index(status) if status in STAGES else 0


def label(job_id: str, job: dict[str, Any]) -> str:
    line = events(job)[-1]
    if job.get("status") == "committed":
        line += verdicts(job)
    return f"job {short(job_id)} {line}"


def failure(job_id: str, job: dict[str, Any]) -> JobFailed | None:
    """The error `--watch` exits with (code 6) when the job did not end accepted."""
    status = job.get("status")
    if status == "accepted":
        return None
    reasons = sorted({v.get("reason", "") for v in job.get("verdicts") or []
                      if not v.get("valid") and v.get("reason")})
    detail = f"; invalid verdicts: {', '.join(reasons)}" if reasons else ""
    return JobFailed(f"job {job_id} {status}: {job.get('outcome') or status}, refunded "
                     f"{job.get('refunded')} ujev{detail}")


class JobProgress:
    """Call with each polled job document; draws click's progress bar on stderr (created
    at the first document, so nothing is drawn for a job that is never found)."""

    def __init__(self) -> None:
        self.bar: Any = None
        self.seen = 0

    def __call__(self, job_id: str, job: dict[str, Any]) -> None:
        lines = events(job)
        if self.bar is None:
            self.bar = click.progressbar(
                length=len(STAGES), label=f"job {short(job_id)} {lines[0]}",
                file=sys.stderr, show_eta=False, show_percent=False,
                show_pos=False, bar_template="[%(bar)s] %(label)s", width=12)
            self.bar.__enter__()
            self.seen = 1
        for line in lines[self.seen:-1]:  # stages passed between two polls
            self.bar.label = f"job {short(job_id)} {line}"
            self.bar.render_progress()
        self.seen = len(lines)
        self.bar.label = label(job_id, job)
        step = position(job) - self.bar.pos
        if step > 0:
            self.bar.update(step)  # moves the bar and draws it
        else:
            self.bar.render_progress()

    def close(self) -> None:
        if self.bar is not None:
            self.bar.__exit__(None, None, None)
            self.bar = None


@contextmanager
def progress_display(enabled: bool = True) -> Iterator[Callable[[str, dict[str, Any]], None]]:
    """A function to call with each polled job document (a no-op when not `enabled`)."""
    if not enabled:
        yield lambda job_id, job: None
        return
    progress = JobProgress()
    try:
        yield progress
    finally:
        progress.close()


def watch_job(find: Callable[[], dict[str, Any] | None], job_id: str,
              show: Callable[[str, dict[str, Any]], None], sleep: Callable[[float], None],
              clock: Callable[[], float], interval: float, timeout: float | None
              ) -> dict[str, Any]:
    """Poll until the job is final; the final document. `find` returns None while the
    job's SubmitJob waits for a block (and raises when there is no such job)."""
    start = clock()
    last: dict[str, Any] | None = None
    while True:
        job = find()
        if job is not None and job != last:
            show(job_id, job)
            last = job
            if job.get("status") in FINAL:
                return job
        if timeout is not None and clock() - start >= timeout:
            where = last.get("status") if last else "not in a block"
            raise WalletError(f"job {job_id} is still {where} after {timeout:g} s; watch it "
                              f"again with: jevons wallet job status {job_id} --watch")
        sleep(interval)


def find_job(client: NodeClient, job_id: str) -> dict[str, Any] | None:
    """The job's document; None while its SubmitJob is pending; WalletError when there is
    no such job (or the hash is another kind of transaction)."""
    for _ in range(2):  # a block may commit the SubmitJob between the two reads
        job = client.job(job_id)
        if job is not None:
            return job
        tx_doc = client.tx(job_id)
        if tx_doc is not None and tx_doc.get("kind") != "submit_job":
            raise WalletError(f"{job_id} is a {tx_doc.get('kind')} transaction, not a job")
        if tx_doc is None:
            break
        if tx_doc.get("status") != "committed":
            return None
    raise WalletError(f"no job {job_id} on {client.url}: neither on chain nor pending; check "
                      "the id (the hash of its SubmitJob transaction) and --node")


def follow(client: NodeClient, job_id: str, interval: float,
           timeout: float | None) -> dict[str, Any]:
    """Poll the job until it is final, drawing the progress display on stderr."""
    with progress_display() as show:
        return watch_job(lambda: find_job(client, job_id), job_id, show, time.sleep,
                         time.monotonic, interval, timeout)
