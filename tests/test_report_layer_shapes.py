"""The report's per-layer MACs take tensor shapes as LiteRT gives them (numpy arrays) as well as lists."""

from __future__ import annotations

import numpy as np

from compressor.bundle.report_layers import _macs


def test_matmul_macs_from_numpy_and_list_shapes():
    out, first = np.array([1, 32, 384]), np.array([1, 32, 1536])
    assert _macs("matmul", out, None, first) == 32 * 384 * 1536
    assert _macs("matmul", [1, 32, 384], None, [1, 32, 1536]) == 32 * 384 * 1536
    assert _macs("matmul", out, None, np.array([], dtype=np.int32)) == 0
