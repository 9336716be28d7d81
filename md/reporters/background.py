"""Reporters run on a background thread, so formatting and file I/O overlap the next steps.

A report reads only the state it is given, and MD states are never modified in place
(every step makes new tensors), so the worker can turn state ``n`` into a log row or
a trajectory frame while the main thread computes step ``n + 1``. What a report needs
from the integrator (its reservoir energy, for the conserved quantity) is taken on
the main thread at that step. One worker keeps the reports in order, so the files are
exactly those written in the foreground. A reporter without ``due(step)`` is simply
called in the foreground.

Due reports are handed to the worker in batches, not one by one: waking a sleeping
thread costs far more than a fast model's step on a shared (virtualised) CPU, so the
main thread collects the reports of up to ``batch`` report steps, or of ``latency``
seconds, before it wakes the worker once for all of them. ``flush`` and ``close``
hand over whatever is pending, so restart files and stops see every report written.
"""

from __future__ import annotations

import queue
import threading
import time
from collections.abc import Callable, Sequence

import torch

from mlpot.md.integrators.base import Integrator
from mlpot.md.state import MDState


class IntegratorSnapshot:
    """What reporters ask an integrator, frozen at one step.

    Args:
        integrator: the running integrator.
        state: the state of that step.
    """

    def __init__(self, integrator: Integrator, state: MDState) -> None:
        reservoir = integrator.reservoir_energy(state)
        self.reservoir = reservoir.clone() if isinstance(reservoir, torch.Tensor) else reservoir
        self._conserved: tuple[MDState, torch.Tensor] | None = None

    def reservoir_energy(self, state: MDState) -> torch.Tensor | float:
        return self.reservoir

    def conserved_energy(self, state: MDState) -> torch.Tensor:
        """E_pot + E_kin + the reservoir of that step (the integrators' own formula),
        computed once for the step's state (the check's sample and the log share it)."""
        if self._conserved is None or self._conserved[0] is not state:
            self._conserved = (state, Integrator.conserved_energy(self, state))
        return self._conserved[1]


_STOP = object()


class BackgroundReporters:
    """Runs the ``report`` calls of ``reporters`` that are due on one worker thread.

    Args:
        reporters: the reporters (those without ``due`` run in the foreground).
        batch: report steps collected before the worker is woken.
        latency: seconds after which pending reports are handed over anyway (checked
            at each ``report`` call).
        backlog: batches handed over but not yet written before a hand-over waits for
            the worker (states hold device memory, so a slow writer must slow the run
            down rather than let the queue grow).
        background: False runs every job and report in place, with the integrator
            itself (no worker thread).

    ``flush()`` waits until every queued report is written; ``close()`` flushes and
    closes the reporters. An error raised by a reporter on the worker is raised again
    on the main thread at the next ``report``, ``flush`` or ``close``.
    """

    def __init__(self, reporters: Sequence[object], batch: int = 8,
                 latency: float = 1.0, backlog: int = 2, background: bool = True) -> None:
        if batch < 1 or backlog < 1:
            raise ValueError(f"batch and backlog must be >= 1, got {batch} and {backlog}")
        self.reporters = list(reporters)
        self.batch, self.latency = int(batch), float(latency)
        self.background = background
        # (reporter, its due(step) or None for foreground ones), looked up once
        self._plan = [(r, getattr(r, "due", None) if background else None)
                      for r in self.reporters]
        self._queue: queue.Queue = queue.Queue(maxsize=backlog)
        self._pending: list[tuple[Callable, MDState, IntegratorSnapshot]] = []
        self._pending_steps = 0
        self._pending_since = 0.0
        self._error: BaseException | None = None
        self._failed = False  # after an error the worker drops everything
        self._thread: threading.Thread | None = None

    def report(self, state: MDState, integrator: Integrator,
               job: Callable[[MDState, IntegratorSnapshot], None] | None = None) -> None:
        """Queue the reports due at ``state.step`` (foreground for reporters without
        ``due``, and for all with ``background=False``), after ``job(state, snapshot)``
        when given (it runs before them, on the worker unless in the foreground: an
        error it raises means no report of this step or later is written)."""
        self._raise()
        snapshot = None
        if job is not None:
            if not self.background:
                job(state, integrator)
            else:
                snapshot = self._snapshot(integrator, state)
                self._pending.append((job, state, snapshot))
        for r, due in self._plan:
            if due is None:
                r.report(state, integrator)
            elif due(state.step):
                if snapshot is None:
                    snapshot = self._snapshot(integrator, state)
                self._pending.append((r.report, state, snapshot))
        if self._pending and (self._pending_steps >= self.batch or
                              time.perf_counter() - self._pending_since > self.latency):
            self._hand_over()

    def _snapshot(self, integrator: Integrator, state: MDState) -> IntegratorSnapshot:
        """The integrator at this step; counts the step towards the batch."""
        if not self._pending:
            self._pending_since = time.perf_counter()
        self._pending_steps += 1
        return IntegratorSnapshot(integrator, state)

    def _hand_over(self) -> None:
        """Wake the worker once for every pending report."""
        if self._pending:
            self._start()
            self._queue.put(self._pending)
            self._pending, self._pending_steps = [], 0

    def flush(self) -> None:
        """Wait until every queued report has been written."""
        self._hand_over()
        if self._thread is not None:
            self._queue.join()
        self._raise()

    def close(self) -> None:
        """Flush, stop the worker and close every reporter (also after a worker error)."""
        try:
            self._hand_over()
            if self._thread is not None:
                self._queue.put(_STOP)
                self._thread.join()
                self._thread = None
        finally:
            for r in self.reporters:
                r.close()
        self._raise()

    def _start(self) -> None:
        if self._thread is None:
            self._thread = threading.Thread(target=self._work, name="mlpot-reporters",
                                            daemon=True)
            self._thread.start()

    def _work(self) -> None:
        while True:
            item = self._queue.get()
            try:
                if item is _STOP:
                    return
                if not self._failed:
                    for call, state, snapshot in item:
                        call(state, snapshot)
            except BaseException as err:  # raised again on the main thread
                self._error, self._failed = err, True
            finally:
                self._queue.task_done()

    def _raise(self) -> None:
        if self._error is not None:
            err, self._error = self._error, None
            raise err
