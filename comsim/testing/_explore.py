"""Exploration: run one scenario under many schedules of the deterministic pump, keep each
distinct outcome with the first run that reached it and its ``Schedule``.

Strategies (``explore(strategy=...)``): ``"random"``, the seeded pump (a seed per run);
``"pct"``, probabilistic concurrency testing for messages (``schedule.PCTPolicy``; each run's
priorities and change points drawn from its seed); ``"pct-channels"``, the same with
priorities on channels (sender, receiver), so that a message can overtake an older one from
another sender to the same receiver; ``"exhaustive"``, every distinct delivery order once,
up to deliveries that commute: to different apartments, touching no shared state of the
runtime that the other touches (``_exhaustive``, ``_dpor``).

Runs go in blocks of ``BLOCK`` seeds, in one process or spread over an executor's workers;
the results are taken in seed order, so the exploration is the same however it was spread.
PCT's ``k`` (the steps over which change points are drawn) counts choice steps only, where
messages to two receivers or more were pending (elsewhere a priority decides nothing): it is
the most of any run in the blocks before (for the first block, the default schedule's), which
every worker knows; ``pct_bound`` is 1/(n·k^(depth-1)) with n the receivers that competed.
A run whose scenario raises stops the exploration: it is run again here to raise the
scenario's own exception, its schedule is shrunk (``shrink``) and saved, and the exception
carries notes naming the seed and the saved file.
"""

from __future__ import annotations

import itertools
import os
import pickle
import random
import re
import sys
import tempfile
from collections import deque
from collections.abc import Callable, Hashable, Iterable, Iterator, Sized
from concurrent.futures import Executor, Future
from concurrent.futures.process import BrokenProcessPool
from pathlib import Path
from typing import Any, NamedTuple

from .._core.check import BadArgumentType, BadArgumentValue
from .._runtime.schedule import DefaultPolicy, PCTPolicy, Policy, ReplayPolicy, Schedule
from . import _pool
from ._exhaustive import exhaustive
from ._runs import Exploration, Raised, Scenario, run_once
from ._shrink import replay, shrink, shrink_or_keep

__all__ = ["BLOCK", "STRATEGIES", "Exploration", "Raised", "Scenario", "explore", "replay",
           "run_once", "shrink"]

STRATEGIES = ("random", "pct", "exhaustive", "pct-channels")
PCT = ("pct", "pct-channels")
#: the deepest bug PCT is asked for: its bound is 1/(n·k^(depth-1)), already below any
#: float's reach for ten steps at a depth of 400; a depth of millions would draw as many
#: change points
MAX_DEPTH = 1000
#: the seed of the run that measures PCT's first k (the default schedule's length): fixed, so
#: that a scenario drawing from the runtime's random generator gets the same k every time
K_SEED = 0
#: seeds per block of runs (a unit of work for a worker; PCT's k is updated between blocks)
BLOCK = 32


class _Run(NamedTuple):
    """One run, as plain data that crosses processes."""

    seed: int
    outcome: Hashable
    decisions: list[int]
    schedule_seed: int | None
    raised: bool
    receivers: int  # PCT: the receivers that competed at a choice step (its n)
    choice_steps: int  # PCT: the steps where priorities decided something (its k)


def _policy(strategy: str, seed: int, depth: int, k: int) -> Policy | None:
    if strategy in PCT:
        return PCTPolicy(random.Random(seed), depth, k, channels=strategy == "pct-channels")
    return None


def _run_block(scenario: Scenario | _pool.Target, seeds: list[int], strategy: str,
               depth: int, k: int, keep_going: bool = False) -> list[_Run]:
    """The runs of one block; a raising scenario ends the block with that run, unless
    ``keep_going``."""
    elsewhere = isinstance(scenario, tuple)  # in a worker: the outcomes cross back
    fn: Scenario = _pool.load(scenario) if isinstance(scenario, tuple) else scenario
    out = []
    crossed: set[Hashable] = set()
    for seed in seeds:
        policy = _policy(strategy, seed, depth, k)
        outcome, schedule = run_once(fn, seed, policy)
        if elsewhere and outcome not in crossed:
            try:
                pickle.dumps(outcome)
            except Exception as e:
                raise BadArgumentValue(
                    f"explore(workers=...): the outcome {outcome!r} of seed {seed} does not "
                    f"pickle ({type(e).__name__}: {e}), and outcomes cross from the worker "
                    f"processes: return something picklable (a str, a tuple, ...), or "
                    f"explore in one process") from None
            crossed.add(outcome)
        raised = isinstance(outcome, Raised)
        out.append(_Run(seed, outcome, schedule.decisions, schedule.seed, raised,
                        len(getattr(policy, "competing", ())),
                        getattr(policy, "choice_steps", 0)))
        if raised and not keep_going:
            break
    return out


def explore(scenario: Scenario, seeds: Iterable[int] = range(200), *,
            until: Callable[[Exploration], bool] | None = None, strategy: str = "random",
            depth: int = 3, workers: int = 1, executor: Executor | None = None,
            save_dir: str | os.PathLike[str] | None = None, keep_going: bool = False
            ) -> Exploration:
    """Run ``scenario(rt)`` once per seed, each on a fresh deterministic runtime in virtual
    time, under ``strategy``; gives the distinct outcomes, each with the first seed that reached
    it and its ``Schedule`` (replay it with ``Runtime(deterministic=True, schedule=...)`` or
    ``replay``). ``until`` stops early once it returns True. ``workers=N`` runs blocks of seeds
    in N processes (the scenario must be a module-level function, and its outcomes
    picklable), ``executor=`` on any ``concurrent.futures.Executor``; the result equals
    ``workers=1``'s. For ``"exhaustive"``, ``seeds`` only bounds the number of runs.

    The N processes start by ``fork`` while this process has one thread (counted by the
    system), on every platform that has it but macOS: nothing is imported again, so a script
    that calls explore at its top level works. With other threads alive (a threaded runtime's
    apartments) a fork could copy locks they hold (Python 3.12+ warns), so they start by
    ``forkserver`` (Linux), else ``spawn`` (macOS, Windows): the same on every Python
    version. Those run the script again without its ``if __name__ == "__main__":`` block;
    explore then must be called under it. A worker finds the scenario by its module and name,
    or, for a script's ``__main__`` or a module loaded from a file (``comsim explore
    path.py:scenario``), by the file, loaded under a private name (``executor=`` too).

    A run whose scenario raises ends the exploration: its schedule is shrunk to the fewest
    preemptions that still raise that type of exception, saved as
    ``<save_dir>/<module>.<scenario>-seed<N>.json`` (``-run<N>`` for "exhaustive"; default
    directory:
    ``comsim-schedules`` in the system's temporary directory), and the exception is raised
    again with notes naming the run and the file (``Schedule.load`` it; ``replay``). With
    ``keep_going=True`` a raising run is just the outcome ``Raised(type, message)`` and the
    exploration goes on (``shrink`` its schedule yourself: ``comsim explore`` does).

    Raises:
        Whatever the scenario raises, with the notes above.
        COMError(E_INVALIDARG), also a TypeError: an argument of the wrong type (``seeds``
            not an iterable of ints, ``until`` not callable, ``executor`` without ``submit``,
            ``save_dir`` not a path, ``keep_going`` not a bool, ``depth`` or ``workers``
            not an int).
        COMError(E_INVALIDARG), also a ValueError: an unknown strategy, ``depth`` < 1 or
            > ``MAX_DEPTH`` (1000),
            ``workers`` < 1, a scenario a worker of ``workers``/``executor`` cannot import or
            load from its file.
        COMError(E_INVALIDARG), also a ValueError and a ``BrokenProcessPool``: a worker
            process of ``workers=N`` died or did not start; the message names the likely
            cause (a script without the ``__main__`` guard, a module not importable in a
            fresh process).
        RuntimeError: ``workers=N`` while this process starts as a worker (a script's top
            level run again).
    """
    if not callable(scenario):
        raise BadArgumentType(f"explore: scenario must be an `async def scenario(rt)`, not "
                              f"{scenario!r}")
    if strategy not in STRATEGIES:
        raise BadArgumentValue(f"explore: strategy must be one of {STRATEGIES}, "
                               f"not {strategy!r}")
    for name, value in (("depth", depth), ("workers", workers)):
        if isinstance(value, bool) or not isinstance(value, int):
            raise BadArgumentType(f"explore: {name} must be an int, not {value!r}")
        if value < 1:
            raise BadArgumentValue(f"explore: {name} must be >= 1, not {value!r}")
    if depth > MAX_DEPTH:
        raise BadArgumentValue(f"explore: depth must be at most {MAX_DEPTH}, not {depth!r} "
                               f"(PCT's bugs of depth d need d - 1 change points; the usual "
                               f"depths are 1 to 5)")
    if until is not None and not callable(until):
        raise BadArgumentType(f"explore: until must be a function of the exploration so far "
                              f"(e.g. until=lambda found: len(found) > 1), not {until!r}")
    if executor is not None and not callable(getattr(executor, "submit", None)):
        raise BadArgumentType(f"explore: executor must be a concurrent.futures.Executor (an "
                              f"object with submit), not {executor!r}")
    if save_dir is not None and not isinstance(save_dir, (str, os.PathLike)):
        raise BadArgumentType(f"explore: save_dir must be a directory's path (a str or a "
                              f"path), not {save_dir!r}")
    if type(keep_going) is not bool:
        raise BadArgumentType(f"explore: keep_going must be True or False, not {keep_going!r}")
    try:
        taken = _seeds(iter(seeds))
    except TypeError:
        raise BadArgumentType(f"explore: seeds must be an iterable of ints (e.g. range(5)), "
                              f"not {seeds!r}") from None
    if strategy == "exhaustive":
        def failed(run_no: int, schedule: Schedule, outcome: Raised) -> None:
            _raise(scenario, f"exhaustive run {run_no}", f"run{run_no}", schedule, outcome,
                   save_dir)

        # the seeds only bound the number of runs: an endless iterator bounds nothing
        budget = len(seeds) if isinstance(seeds, Sized) else sys.maxsize
        return exhaustive(scenario, budget=budget, until=until,
                          on_raise=None if keep_going else failed)
    return _explore(scenario, taken, until, strategy, depth, workers, executor, save_dir,
                    keep_going)


def pct_bound(receivers: int, k: int, depth: int) -> float:
    """PCT's per-run probability of finding a bug of ``depth``: 1/(n·k^(depth-1)); 0.0 when
    that is below a float's reach (never an OverflowError)."""
    try:
        return 1.0 / (max(1, receivers) * max(k, 1) ** (depth - 1))
    except OverflowError:  # the int is too large to divide by as a float
        return 0.0


def _seeds(seeds: Iterator[Any]) -> Iterator[int]:
    """The seeds, taken one at a time (an endless iterator with ``until`` is fine)."""
    for seed in seeds:
        if isinstance(seed, bool) or not isinstance(seed, int):
            raise BadArgumentType(f"explore: seeds must be ints, not {seed!r}")
        yield seed


def _explore(scenario: Scenario, seeds: Iterator[int],
             until: Callable[[Exploration], bool] | None, strategy: str, depth: int,
             workers: int, executor: Executor | None,
             save_dir: str | os.PathLike[str] | None, keep_going: bool) -> Exploration:
    parallel = workers > 1 or executor is not None
    target: Scenario | _pool.Target = _pool.by_name(scenario) if parallel else scenario
    found = Exploration()
    longest = [0]  # PCT's k: the most choice steps of a run so far (of the blocks before)
    if strategy in PCT:
        counter = DefaultPolicy(channels=strategy == "pct-channels")
        run_once(scenario, K_SEED, counter)
        longest[0] = counter.choice_steps
    receivers = 0
    block_longest = 0
    for block in _blocks(target, seeds, strategy, depth, longest, workers, executor,
                         keep_going):
        for run in block:
            if run.raised and not keep_going:
                assert isinstance(run.outcome, Raised)
                _raise(scenario, f"strategy {strategy!r}, seed {run.seed}", f"seed{run.seed}",
                       Schedule(run.decisions, run.schedule_seed), run.outcome, save_dir)
            schedule = Schedule(run.decisions, run.schedule_seed)
            found._add(run.seed, run.outcome, schedule)
            if strategy in PCT:
                receivers = max(receivers, run.receivers)
                block_longest = max(block_longest, run.choice_steps)
                found.pct_bound = pct_bound(receivers, longest[0], depth)
                if found.runs % BLOCK == 0:  # k moves between blocks only
                    longest[0] = max(longest[0], block_longest)
            if until is not None and until(found):
                return found
    return found


def _blocks(target: Scenario | _pool.Target, seeds: Iterator[int], strategy: str, depth: int,
            longest: list[int], workers: int, executor: Executor | None,
            keep_going: bool) -> Iterator[list[_Run]]:
    """The runs in seed order: here, one at a time; on an executor, a block per job, a
    window of blocks in flight. PCT: every run of a block uses the k of the blocks before it;
    a block sent before k moved is sent again with the new k (so the result is the one of
    one process)."""
    if workers == 1 and executor is None:  # a run at a time, so that ``until`` stops at once
        for seed in seeds:
            yield _run_block(target, [seed], strategy, depth, longest[0], keep_going)
        return
    chunks: list[list[int]] = []  # the blocks taken so far (PCT may send one again)

    def more() -> bool:
        """Whether a block is left to send (taking the next one from ``seeds``)."""
        if submitted < len(chunks):
            return True
        chunk = list(itertools.islice(seeds, BLOCK))
        if chunk:
            chunks.append(chunk)
        return bool(chunk)

    own = _pool.WorkerPool(workers) if executor is None else None
    pool = own or executor
    assert pool is not None
    window = 2 * max(workers, 2)  # blocks in flight
    pending: deque[tuple[int, int, Future[list[_Run]]]] = deque()
    submitted = 0
    try:
        while pending or more():
            while len(pending) < window and more():
                kk = longest[0]
                try:  # starts a worker (not by fork), which may fail
                    fut = pool.submit(_run_block, target, chunks[submitted], strategy, depth,
                                      kk, keep_going)
                except (BrokenProcessPool, OSError, EOFError) as e:
                    if own is None:
                        raise
                    raise _pool.broken(e, workers, own) from e
                pending.append((submitted, kk, fut))
                submitted += 1
            index, kk, fut = pending.popleft()
            if kk != longest[0]:  # PCT's k moved since this block was sent: send it again,
                for _, _, f in pending:  # and every block after it
                    f.cancel()
                fut.cancel()
                pending.clear()
                submitted = index
                continue
            try:
                block = fut.result()
            except BrokenProcessPool as e:
                if own is None:
                    raise
                raise _pool.broken(e, workers, own) from e
            except _pool.NotLoadable as e:  # the worker could not find the scenario
                where = "executor=..." if own is None else f"workers={workers}"
                raise BadArgumentValue(f"explore({where}): {e}") from e
            yield block
    finally:
        for _, _, f in pending:
            f.cancel()
        if own is not None:
            own.shutdown(cancel_futures=True)


def _raise(scenario: Scenario, label: str, tag: str, schedule: Schedule, outcome: Raised,
           save_dir: str | os.PathLike[str] | None) -> None:
    """Shrink the failing run's schedule, save it, and run it again here, raising the
    scenario's own exception with notes: which run, and the saved file."""
    kind = outcome.type
    small = shrink_or_keep(scenario, schedule,
                           keep=lambda o: isinstance(o, Raised) and o.type == kind)
    try:
        path = save_schedule(scenario, tag, small, save_dir)
        where = (f"saved to {path}: comsim.testing.replay(scenario, Schedule.load(path)), or "
                 f"pytest --comsim-replay {path}")
    except OSError as e:  # the scenario's own failure still comes first
        where = f"not saved ({type(e).__name__}: {e}; save_dir={str(save_dir)!r})"
    try:
        run_once(scenario, small.seed, ReplayPolicy(small.decisions), capture=False)
    except BaseException as exc:
        exc.add_note(f"comsim.testing.explore: {label}; the "
                     f"shrunk schedule ({small.preemptions} preemptions, "
                     f"{len(small.decisions)} decisions) {where}")
        raise
    raise RuntimeError(f"explore: {label} raised {kind} in a run but not when run again: "
                       f"the scenario is not deterministic (does it read a clock, threads "
                       f"or global state?)")


def save_schedule(scenario: Scenario, tag: str, schedule: Schedule,
                  save_dir: str | os.PathLike[str] | None) -> Path:
    """Save a failing run's ``schedule`` as ``<save_dir>/<module>.<scenario>-<tag>.json``
    (``save_dir`` None: ``comsim-schedules`` in the system's temporary directory; made if
    missing). The module is in the name, so that scenarios of one name in two modules
    (every example's is ``scenario``) do not overwrite each other's schedules.

    Raises:
        OSError: the directory or the file cannot be written.
    """
    directory = Path(save_dir) if save_dir is not None else (
        Path(tempfile.gettempdir()) / "comsim-schedules")
    directory.mkdir(parents=True, exist_ok=True)
    name = str(getattr(scenario, "__qualname__", None) or "scenario")
    module = getattr(scenario, "__module__", None)
    if isinstance(module, str) and module not in ("__main__", "__mp_main__"):
        name = f"{module}.{name}"
    path = directory / (re.sub(r"[^\w.-]+", "_", name) + f"-{tag}.json")
    schedule.save(path)
    return path
