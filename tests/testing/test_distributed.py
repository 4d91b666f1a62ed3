"""Exploration on a distributed engine's executor, unchanged (optional: needs Dask's
``distributed``; ``pip install distributed``): the result equals one process's."""

from __future__ import annotations

import pytest

from comsim.testing import explore

from .scenarios import two_callers

distributed = pytest.importorskip("distributed")


@pytest.mark.timeout(120)
def test_explore_on_a_dask_local_cluster_equals_one_process() -> None:
    one = explore(two_callers, range(48), strategy="pct", depth=2)
    with (distributed.LocalCluster(n_workers=2, threads_per_worker=1, processes=True,
                                   dashboard_address=None) as cluster,
          distributed.Client(cluster) as client):
        spread = explore(two_callers, range(48), strategy="pct", depth=2,
                         executor=client.get_executor())
    assert dict(spread) == dict(one) and spread.counts == one.counts
    assert spread.schedules == one.schedules and spread.pct_bound == one.pct_bound
