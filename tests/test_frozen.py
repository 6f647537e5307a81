"""LSTM.freeze(): inference on weights packed once gives LSTM.forward's numbers."""

import numpy as np
import pytest

from lstm_c import LSTM, _lstm
from lstm_c.frozen import FrozenLSTM

TOL = {np.float32: 2e-5, np.float64: 1e-12}


@pytest.fixture(params=["avx512", "avx2", "baseline"])
def level(request):
    """Each instruction set's kernels that this CPU can run."""
    if not _lstm.packed_panel_units("float32"):
        pytest.skip("this build has no packed kernels")
    if _lstm.use_packed_level(request.param) != request.param:
        pytest.skip(f"this CPU cannot run the {request.param} kernels")
    yield request.param
    _lstm.use_packed_level("avx512")


def _rel(a, b):
    return np.max(np.abs(a - b)) / np.max(np.abs(b))


def _model(I, H, L, dtype, **kw):
    m = LSTM(I, H, L, dtype=dtype, seed=3, **kw).eval()
    for p in m.parameters().values():  # bigger than the default init, so gates saturate too
        p *= 3
    return m


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("T, B, I, H, L", [(1, 1, 5, 8, 1), (6, 1, 3, 17, 2), (4, 3, 7, 33, 3),
                                          (3, 9, 2, 70, 1), (1, 5, 65, 16, 2)])
def test_frozen_matches_forward(T, B, I, H, L, dtype, level):
    m = _model(I, H, L, dtype)
    rng = np.random.default_rng(0)
    x = rng.standard_normal((T, B, I)).astype(dtype)
    hx = (rng.standard_normal((L, B, H)).astype(dtype), rng.standard_normal((L, B, H)).astype(dtype))
    hx_before = (hx[0].copy(), hx[1].copy())
    y, (h, c) = m.freeze()(x, hx)
    y_ref, (h_ref, c_ref) = m.forward(x, hx, grad=False)
    for got, want in ((y, y_ref), (h, h_ref), (c, c_ref)):
        assert got.dtype == dtype and got.shape == want.shape
        assert _rel(got, want) < TOL[dtype]
    np.testing.assert_array_equal(hx[0], hx_before[0])  # the caller's state is not written
    np.testing.assert_array_equal(hx[1], hx_before[1])


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_steps_one_at_a_time_equal_the_whole_sequence(dtype, level):
    m = _model(4, 24, 2, dtype)
    frozen = m.freeze()
    x = np.random.default_rng(1).standard_normal((7, 2, 4)).astype(dtype)
    y_all, (h_all, c_all) = frozen(x)
    state, ys = None, []
    for t in range(7):
        y, state = frozen(x[t:t + 1], state)
        ys.append(y)
    np.testing.assert_array_equal(np.concatenate(ys), y_all)
    np.testing.assert_array_equal(state[0], h_all)
    np.testing.assert_array_equal(state[1], c_all)


def test_batch_first_and_unbatched_shapes_follow_forward():
    m = _model(3, 8, 2, np.float32, batch_first=True)
    x = np.random.default_rng(2).standard_normal((4, 5, 3)).astype(np.float32)  # (B, T, I)
    y, (h, c) = m.freeze()(x)
    y_ref, (h_ref, _) = m.forward(x, grad=False)
    assert y.shape == (4, 5, 8) and h.shape == (2, 4, 8)
    assert _rel(y, y_ref) < 2e-5 and _rel(h, h_ref) < 2e-5
    y1, (h1, c1) = m.freeze()(x[0])                     # unbatched (T, I)
    assert y1.shape == (5, 8) and h1.shape == (2, 8) and c1.shape == (2, 8)
    assert _rel(y1, y_ref[0]) < 2e-5


def test_frozen_does_not_see_later_weight_changes_and_freezing_again_does():
    m = _model(3, 8, 1, np.float64)
    x = np.ones((2, 1, 3))
    frozen = m.freeze()
    before, _ = frozen(x)
    m.parameters()["weight_hh_l0"] += 0.5
    np.testing.assert_array_equal(frozen(x)[0], before)
    after, _ = m.freeze()(x)
    assert _rel(after, m.forward(x, grad=False)[0]) < 1e-12
    assert not np.allclose(after, before)


def test_reference_backend_freezes_to_a_private_copy():
    m = _model(3, 8, 2, np.float64, backend="numpy")
    frozen = m.freeze()
    assert isinstance(frozen, FrozenLSTM) and frozen.nbytes == 0
    x = np.ones((3, 2, 3))
    before = frozen(x)[0]
    m.parameters()["weight_ih_l0"] += 1.0
    np.testing.assert_array_equal(frozen(x)[0], before)


def test_packed_weights_take_the_bytes_of_the_padded_layout():
    m = LSTM(65, 100, 2)
    unit = _lstm.packed_panel_units("float32")
    panels = -(-100 // unit)
    want = 4 * panels * unit * 4 * ((1 + 100 + 65) + (1 + 100 + 100))
    assert m.freeze().nbytes == want


@pytest.mark.parametrize("x, match", [(np.ones((2, 1, 4)), "input size 3"),
                                      (np.ones((2, 1, 1, 3)), "3-D"),
                                      ("text", "x")])
def test_bad_input_is_refused_with_a_clear_error(x, match):
    with pytest.raises((ValueError, TypeError), match=match):
        _model(3, 8, 1, np.float32).freeze()(x)


def test_a_wrong_state_shape_is_refused():
    frozen = _model(3, 8, 2, np.float32).freeze()
    with pytest.raises(ValueError, match="hx"):
        frozen(np.ones((1, 1, 3)), (np.zeros((1, 1, 8)), np.zeros((1, 1, 8))))
