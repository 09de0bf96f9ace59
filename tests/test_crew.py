"""`ferrograph._core.Crew`, the recruiting policy of a step's runners, driven directly: each
task runs once, the cap holds, `close()` stops new claims, and a crew that is gone is not kept
alive by the scout's handle or by a late worker.

No timing assertions: threads are waited for on events and conditions with generous
timeouts, which a passing run never reaches."""

from __future__ import annotations

import gc
import threading
import weakref
from collections import Counter
from collections.abc import Callable

import pytest

from ferrograph._core import Crew, StepCrew
from ferrograph.pregel._executor import DEFAULT_POOL

TIMEOUT = 30.0


class ThreadSubmit:
    """A `submit` that starts a thread per call, and can join them all."""

    def __init__(self) -> None:
        self.threads: list[threading.Thread] = []
        self._lock = threading.Lock()

    def __call__(self, fn: Callable[[], None]) -> None:
        thread = threading.Thread(target=fn, daemon=True)
        with self._lock:
            self.threads.append(thread)
        thread.start()

    @property
    def count(self) -> int:
        with self._lock:
            return len(self.threads)

    def join(self) -> None:
        for thread in list(self.threads):
            thread.join(TIMEOUT)
            assert not thread.is_alive()


class PoolSubmit:
    """The real worker pool's `submit`, counting the calls."""

    def __init__(self) -> None:
        self._calls = 0
        self._lock = threading.Lock()

    def __call__(self, fn: Callable[[], None]) -> None:
        with self._lock:
            self._calls += 1
        DEFAULT_POOL.submit(fn)

    @property
    def count(self) -> int:
        with self._lock:
            return self._calls


class DeferredSubmit:
    """A `submit` that only keeps what it is given: the test runs the workers itself."""

    def __init__(self) -> None:
        self.queued: list[Callable[[], None]] = []

    def __call__(self, fn: Callable[[], None]) -> None:
        self.queued.append(fn)

    @property
    def count(self) -> int:
        return len(self.queued)


def make_submit(kind: str) -> ThreadSubmit | PoolSubmit:
    return ThreadSubmit() if kind == "thread" else PoolSubmit()


class Runs:
    """A `run` callable that records which index ran on which thread, and how many ran at
    once; `gate` (when given) holds every run until it is set."""

    def __init__(self, count: int, gate: threading.Event | None = None) -> None:
        self.count = count
        self.gate = gate
        self.cond = threading.Condition()
        self.ran: list[int] = []
        self.threads: set[int] = set()
        self.active = 0
        self.peak = 0
        self.finished = 0

    def __call__(self, index: int) -> None:
        with self.cond:
            self.ran.append(index)
            self.threads.add(threading.get_ident())
            self.active += 1
            self.peak = max(self.peak, self.active)
            self.cond.notify_all()
        if self.gate is not None:
            assert self.gate.wait(TIMEOUT)
        with self.cond:
            self.active -= 1
            self.finished += 1
            self.cond.notify_all()

    def wait_for(self, predicate: Callable[[Runs], bool]) -> None:
        with self.cond:
            assert self.cond.wait_for(lambda: predicate(self), TIMEOUT)

    def wait_all(self) -> None:
        self.wait_for(lambda r: r.finished == r.count)


def run_here(crew: Crew, run: Callable[[int], None]) -> None:
    """The calling thread's share, as the drivers take it."""
    while (index := crew.claim()) is not None:
        run(index)


@pytest.mark.parametrize(
    ("count", "limit", "helpers"),
    [
        (5, None, 4),
        (5, 50, 4),
        (5, 5, 4),
        (5, 3, 2),
        (5, 1, 0),
        (5, 0, 0),
        (5, -2, 0),
        (1, None, 0),
        (0, None, 0),
        (0, 3, 0),
    ],
)
def test_helpers_leave_a_place_for_the_caller(count, limit, helpers):
    crew = Crew(count, limit, lambda i: None, DeferredSubmit())
    assert crew.helpers == helpers
    assert isinstance(crew.scout_handle(), StepCrew)


def test_claims_come_in_order():
    crew = Crew(3, None, lambda i: None, DeferredSubmit())
    assert [crew.claim(), crew.claim(), crew.claim(), crew.claim()] == [0, 1, 2, None]


def test_each_worker_recruits_two_before_its_task():
    """The cascade, run on this thread: the scout hires two, then each claim hires two more
    before its task runs, until the cap; later workers find nothing left."""
    submit = DeferredSubmit()
    hired_at_run: list[int] = []

    def run(index: int) -> None:
        hired_at_run.append(submit.count)

    crew = Crew(10, None, run, submit)
    assert crew.helpers == 9
    crew.scout_handle()()
    assert submit.count == 2
    submit.queued[0]()  # the first worker runs every task
    assert hired_at_run == [4, 6, 8, 9, 9, 9, 9, 9, 9, 9]
    for work in submit.queued[1:]:
        work()  # nothing left: returns at once
    assert len(hired_at_run) == 10
    assert crew.claim() is None
    crew.scout_handle()()  # nothing waiting: nobody hired
    assert submit.count == 9


@pytest.mark.parametrize("kind", ["thread", "pool"])
@pytest.mark.parametrize("limit", [1, 2, 3, 4, 8, None])
@pytest.mark.parametrize("count", [1, 2, 7, 50])
def test_every_index_runs_exactly_once(kind, limit, count):
    submit = make_submit(kind)
    runs = Runs(count)
    crew = Crew(count, limit, runs, submit)
    crew.scout_handle()()  # as the scout does, finding the step still running
    run_here(crew, runs)
    runs.wait_all()
    assert Counter(runs.ran) == Counter(range(count))
    assert submit.count <= crew.helpers
    workers = runs.threads - {threading.get_ident()}
    assert len(workers) <= crew.helpers
    if isinstance(submit, ThreadSubmit):
        submit.join()


@pytest.mark.parametrize("kind", ["thread", "pool"])
@pytest.mark.parametrize("limit", [2, 3, 8, None])
def test_workers_alone_finish_the_step(kind, limit):
    """The caller claims nothing: the workers the scout brought in (and theirs) run it all."""
    count = 40
    submit = make_submit(kind)
    runs = Runs(count)
    crew = Crew(count, limit, runs, submit)
    assert crew.helpers >= 1
    crew.scout_handle()()
    runs.wait_all()
    assert Counter(runs.ran) == Counter(range(count))
    assert threading.get_ident() not in runs.threads
    assert 1 <= len(runs.threads) <= crew.helpers
    if isinstance(submit, ThreadSubmit):
        submit.join()


@pytest.mark.parametrize("kind", ["thread", "pool"])
@pytest.mark.parametrize("limit", [1, 2, 3, 5, None])
def test_the_cap_holds(kind, limit):
    """Every worker blocks in its task until the gate opens: once all the crew may hire are
    running, nobody else has been hired, and no more than `limit` ever run at once."""
    count = 12
    gate = threading.Event()
    submit = make_submit(kind)
    runs = Runs(count, gate)
    crew = Crew(count, limit, runs, submit)
    helpers = crew.helpers
    assert helpers == min(limit or count, count) - 1
    crew.scout_handle()()
    try:
        runs.wait_for(lambda r: r.active == helpers)
        # Each worker hires before it runs its task: with all of them in one, every hire
        # that could happen has, and the count is the cap.
        assert submit.count == helpers
        with runs.cond:
            assert runs.peak == helpers
        crew.scout_handle()()  # the scout looking again hires nobody past the cap
        assert submit.count == helpers
    finally:
        gate.set()
    run_here(crew, runs)  # the caller joins in: `limit` runners at most
    runs.wait_all()
    assert Counter(runs.ran) == Counter(range(count))
    assert runs.peak <= (limit or count)
    assert submit.count == helpers
    if isinstance(submit, ThreadSubmit):
        submit.join()


def test_close_stops_new_claims():
    gate = threading.Event()
    submit = ThreadSubmit()
    runs = Runs(10, gate)
    crew = Crew(10, 2, runs, submit)
    crew.scout_handle()()
    try:
        runs.wait_for(lambda r: r.active == 1)  # the one worker, in task 0
        crew.close()
    finally:
        gate.set()
    submit.join()  # the worker found nothing more to claim
    assert runs.ran == [0]
    assert crew.claim() is None
    crew.scout_handle()()
    assert submit.count == 1  # nothing waiting: nobody hired


def test_close_before_any_claim():
    submit = DeferredSubmit()
    ran: list[int] = []
    crew = Crew(4, None, ran.append, submit)
    crew.scout_handle()()
    crew.close()
    for work in submit.queued:
        work()
    assert ran == []
    assert crew.claim() is None


def _crew_with_finaliser(submit: Callable[[Callable[[], None]], None],
                         ran: list[int], cycle: bool) -> tuple[Crew, threading.Event]:
    """A crew whose `run` sets the event returned when it is freed; with `cycle`, `run`
    refers to the crew, so only the cyclic collector can free the two."""
    freed = threading.Event()
    if cycle:
        crew: Crew | None = None

        def run(index: int) -> None:
            assert crew is not None
            ran.append(index)
    else:
        def run(index: int) -> None:
            ran.append(index)

    weakref.finalize(run, freed.set)
    crew = Crew(5, None, run, submit)
    return crew, freed


@pytest.mark.parametrize("cycle", [False, True])
def test_a_dropped_crew_is_freed_though_the_scout_holds_its_handle(cycle):
    submit = DeferredSubmit()
    ran: list[int] = []
    crew, freed = _crew_with_finaliser(submit, ran, cycle)
    handle = crew.scout_handle()
    handle()  # the step was slow once: two workers were submitted, not started yet
    assert submit.count == 2
    del crew
    gc.collect()
    assert freed.is_set()  # neither the handle nor the queued workers kept it
    handle()  # the step has ended: the scout's look does nothing
    assert submit.count == 2
    for work in submit.queued:
        work()  # late workers: nothing to run
    assert ran == []


def test_a_crew_with_a_running_worker_lives_until_the_worker_is_done():
    """The worker holding the step keeps it (and `run`) alive, even in a collection."""
    gate = threading.Event()
    submit = ThreadSubmit()
    runs = Runs(2, gate)
    freed = threading.Event()

    def run(index: int) -> None:
        runs(index)

    weakref.finalize(run, freed.set)
    crew = Crew(2, None, run, submit)
    del run
    crew.scout_handle()()
    try:
        runs.wait_for(lambda r: r.active == 1)
        crew.close()  # task 1 never starts
        del crew
        gc.collect()
        assert not freed.is_set()
    finally:
        gate.set()
    submit.join()
    gc.collect()
    assert freed.is_set()
    assert runs.ran == [0]


def test_an_error_escaping_run_is_reported_and_the_worker_goes_on(monkeypatch):
    reported: list[BaseException | None] = []
    monkeypatch.setattr("sys.unraisablehook", lambda u: reported.append(u.exc_value))
    submit = DeferredSubmit()
    ran: list[int] = []

    def run(index: int) -> None:
        ran.append(index)
        if index == 1:
            raise ValueError("boom")

    crew = Crew(4, None, run, submit)
    crew.scout_handle()()
    submit.queued[0]()
    assert ran == [0, 1, 2, 3]
    assert len(reported) == 1 and isinstance(reported[0], ValueError)
