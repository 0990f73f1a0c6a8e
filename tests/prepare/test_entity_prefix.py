"""The entity-local prefix sums behind windowed sums: the same bits as summing each
entity's events alone, left to right, whatever else shares the chunk."""

from __future__ import annotations

import numpy as np
import pytest


@pytest.mark.parametrize("seed", range(5))
def test_segment_cumsum_is_each_entitys_own_cumsum(seed):
    from framework.prepare.window_kernels import segment_cumsum as _segment_cumsum

    rng = np.random.default_rng(seed)
    lengths = rng.choice([1, 2, 3, 31, 32, 33, 70, 400], size=80)
    starts = np.concatenate([[0], np.cumsum(lengths)[:-1]]).astype(np.intp)
    values = rng.normal(0, 1e3, int(lengths.sum())) * 10.0 ** rng.integers(-3, 3)
    got = _segment_cumsum(values, starts)
    want = np.concatenate(
        [np.cumsum(values[s : s + n]) for s, n in zip(starts, lengths, strict=True)]
    )
    np.testing.assert_array_equal(got, want)
    # and the entity's sums do not depend on the entities around it
    k = 40
    alone = _segment_cumsum(values[starts[k] : starts[k] + lengths[k]], np.array([0]))
    np.testing.assert_array_equal(alone, got[starts[k] : starts[k] + lengths[k]])


def test_a_window_of_non_negative_amounts_is_never_below_zero(tmp_path):
    """Sums are differences of prefix sums: the prefix must not decrease (a compensated
    sum can, by an ulp, which once gave windows of -1.4e-14)."""
    from framework.declare.repo import FeatureRepo
    from framework.prepare.window_tables import build_window_table
    from tests.helpers import copy_example_repo

    repo = FeatureRepo(copy_example_repo(tmp_path / "feature_repo", users=300))
    spec = next(s for s in repo.declared_window_specs if s.name == "user_activity")
    stats = build_window_table(spec, out_path=tmp_path / "t.parquet", chunk_events=997)
    import pyarrow.parquet as pq

    table = pq.read_table(stats.path).to_pandas()
    sums = [c for c in table.columns if "_amount_sum_" in c]
    assert sums and (table[sums] >= 0).all().all()
    assert (table[sums] == 0).any().any() and (table[sums] > 0).any().any()
