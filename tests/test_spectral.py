import math

import numpy as np
import pytest
import torch

from dualmic.spectral import spectral_loss

P = [[1.0, 2.0, 3.0], [0.0, 0.0, 0.0]]
T = [[1.0, 1.0, 1.0], [0.0, 0.0, 3.0]]
# by hand: differences [0, 1, 2] and [0, 0, -3]
RMSE_ROWS = [math.sqrt(5 / 3), math.sqrt(3)]  # sqrt((0 + 1 + 4) / 3), sqrt(9 / 3)


def _value(*args, **kwargs) -> float:
    out = spectral_loss(*args, **kwargs)
    assert isinstance(out, torch.Tensor) and out.dim() == 0
    return float(out)


def test_rmse_mean_and_rms_reductions_by_hand():
    p, t = torch.tensor(P, dtype=torch.float64), torch.tensor(T, dtype=torch.float64)
    assert _value(p, t) == pytest.approx((math.sqrt(5 / 3) + math.sqrt(3)) / 2, rel=1e-12)
    # rms of the rows: sqrt((5/3 + 3) / 2) = sqrt(7/3)
    assert _value(p, t, reduction="rms") == pytest.approx(math.sqrt(7 / 3), rel=1e-12)
    # the scale does not matter for rmse: values are compared as given
    assert _value(p, t, input_scale="linear") == _value(p, t, input_scale="db")


def test_mae_by_hand():
    p, t = torch.tensor(P), torch.tensor(T)
    assert _value(p, t, metric="mae") == pytest.approx(1.0)  # rows (0+1+2)/3 = 1 and 3/3 = 1
    p2 = torch.tensor([[1.0, 2.0, 3.0, 4.0], [0.0, 0.0, 0.0, 0.0]])
    t2 = torch.tensor([[1.0, 1.0, 1.0, 1.0], [0.0, 0.0, 0.0, -8.0]])
    # rows (0+1+2+3)/4 = 1.5 and 8/4 = 2 -> mean 1.75, rms sqrt((2.25 + 4) / 2) = 1.7677...
    assert _value(p2, t2, metric="mae") == pytest.approx(1.75)
    assert _value(p2, t2, metric="mae", reduction="rms") == pytest.approx(math.sqrt(6.25 / 2))
    assert _value(p2, t2, metric="mae", input_scale="linear") == pytest.approx(1.75)  # no conversion


def test_lsd_of_linear_inputs_is_rms_db_difference():
    # 10 vs 1 and 100 vs 10: 20 dB each
    assert _value(torch.tensor([10.0, 100.0]), torch.tensor([1.0, 10.0]), "lsd", "linear") == pytest.approx(
        20
    )
    # 20 dB and 40 dB: sqrt((400 + 1600) / 2) = sqrt(1000)
    p, t = torch.tensor([10.0, 100.0]), torch.tensor([1.0, 1.0])
    assert _value(p, t, "lsd", "linear") == pytest.approx(math.sqrt(1000), rel=1e-6)
    # the sign of a linear amplitude is ignored (|x|)
    assert _value(torch.tensor([-10.0]), torch.tensor([1.0]), "lsd", "linear") == pytest.approx(20)


def test_lsd_of_db_inputs_uses_them_as_given():
    p, t = torch.tensor(P, dtype=torch.float64), torch.tensor(T, dtype=torch.float64)
    # the same numbers as rmse: no conversion, negative and zero dB values are fine
    assert _value(p, t, "lsd", "db") == pytest.approx(sum(RMSE_ROWS) / 2, rel=1e-12)
    assert _value(-p, -t, "lsd", "db", "rms") == pytest.approx(math.sqrt(7 / 3), rel=1e-12)


def test_epsilon_clamps_zeros():
    zero, one = torch.tensor([0.0]), torch.tensor([1.0])
    # 0 -> 20 log10(1e-12) = -240 dB
    assert _value(zero, one, "lsd", "linear") == pytest.approx(240, rel=1e-6)
    assert _value(zero, torch.tensor([1e-12]), "lsd", "linear") == pytest.approx(0, abs=1e-3)
    assert _value(zero, torch.tensor([0.0]), "lsd", "linear") == 0
    assert _value(zero, one, "lsd", "linear", epsilon=1e-6) == pytest.approx(120, rel=1e-6)
    assert _value(zero.double(), one.double(), "lsd", "linear", epsilon=1e-3) == pytest.approx(60, rel=1e-12)


def test_one_dimensional_input_is_one_row():
    p, t = torch.tensor([1.0, 2.0, 3.0]), torch.tensor([1.0, 1.0, 1.0])
    assert _value(p, t) == pytest.approx(math.sqrt(5 / 3))
    assert _value(p, t, reduction="rms") == pytest.approx(math.sqrt(5 / 3))
    assert _value(p, t, metric="mae") == pytest.approx(1.0)


def test_three_dimensional_input_reduces_the_last_axis_first():
    p = torch.tensor([[P[0], P[1]], [[0.0, 0.0, 0.0], [2.0, 2.0, 2.0]]], dtype=torch.float64)
    t = torch.tensor([[T[0], T[1]], [[0.0, 0.0, 0.0], [0.0, 0.0, 0.0]]], dtype=torch.float64)
    rows = RMSE_ROWS + [0.0, 2.0]
    assert p.shape == (2, 2, 3)
    assert _value(p, t) == pytest.approx(sum(rows) / 4, rel=1e-12)
    assert _value(p, t, reduction="rms") == pytest.approx(math.sqrt((5 / 3 + 3 + 0 + 4) / 4), rel=1e-12)
    # not the same as flattening everything into one row
    assert _value(p, t) != pytest.approx(_value(p.reshape(-1), t.reshape(-1)))


@pytest.mark.parametrize("reduction", ["mean", "rms"])
@pytest.mark.parametrize("metric,scale", [("rmse", "db"), ("lsd", "linear"), ("lsd", "db"), ("mae", "db")])
def test_gradcheck_float64(metric, scale, reduction):
    gen = torch.Generator().manual_seed(0)
    p = (torch.rand(3, 5, generator=gen, dtype=torch.float64) + 0.1).requires_grad_()
    t = torch.rand(3, 5, generator=gen, dtype=torch.float64) + 0.1
    assert torch.autograd.gradcheck(lambda x: spectral_loss(x, t, metric, scale, reduction), (p,))


def test_gradient_flows_and_is_zero_not_nan_at_an_exact_match():
    p = torch.tensor([[1.0, 2.0], [3.0, 4.0]], requires_grad=True)
    spectral_loss(p, p.detach().clone(), reduction="rms").backward()
    assert torch.equal(p.grad, torch.zeros_like(p))
    q = torch.tensor([2.0, 4.0], requires_grad=True)
    spectral_loss(q, torch.tensor([1.0, 1.0]), "rmse").backward()
    # d/dq sqrt(mean(d^2)) = d / (n rmse) with d = [1, 3], rmse = sqrt(5)
    torch.testing.assert_close(q.grad, torch.tensor([1.0, 3.0]) / (2 * math.sqrt(5)))


def test_numpy_list_and_mixed_inputs():
    expected = sum(RMSE_ROWS) / 2
    np_p, np_t = np.array(P), np.array(T)
    out = spectral_loss(np_p, np_t)
    assert out.dtype == torch.float64 and float(out) == pytest.approx(expected, rel=1e-12)
    assert _value(P, T) == pytest.approx(expected, rel=1e-6)
    tensor_p = torch.tensor(P, requires_grad=True)
    mixed = spectral_loss(tensor_p, np_t.astype(np.float32))
    assert mixed.dtype == torch.float32 and float(mixed.detach()) == pytest.approx(expected, rel=1e-6)
    mixed.backward()
    assert tensor_p.grad is not None and torch.isfinite(tensor_p.grad).all()
    # a reversed (negative-stride) view of an array
    assert _value(np_p[:, ::-1], np_t[:, ::-1]) == pytest.approx(expected, rel=1e-12)


@pytest.mark.parametrize(
    "p,t,dtype",
    [
        (torch.tensor(P, dtype=torch.float64), torch.tensor(T, dtype=torch.float64), torch.float64),
        (torch.tensor(P), torch.tensor(T), torch.float32),
        (torch.tensor(P, dtype=torch.float16), torch.tensor(T, dtype=torch.float16), torch.float16),
        (torch.tensor(P).long(), torch.tensor(T).long(), torch.get_default_dtype()),
        ([[1, 2, 3], [0, 0, 0]], [[1, 1, 1], [0, 0, 3]], torch.get_default_dtype()),
        (torch.tensor(P).long(), torch.tensor(T, dtype=torch.float64), torch.float64),
    ],
)
def test_result_dtype_follows_the_inputs(p, t, dtype):
    out = spectral_loss(p, t)
    assert out.dtype == dtype
    assert float(out) == pytest.approx(sum(RMSE_ROWS) / 2, rel=1e-3)


def test_half_precision_lsd_keeps_the_epsilon_floor():
    out = spectral_loss(
        torch.tensor([0.0], dtype=torch.float16), torch.tensor([1.0], dtype=torch.float16), "lsd", "linear"
    )
    assert out.dtype == torch.float16 and float(out) == pytest.approx(240, rel=1e-3)


_OK = torch.ones(2, 3)


@pytest.mark.parametrize(
    "kwargs,match",
    [
        (dict(metric="mse"), r"metric 'mse'.*'rmse', 'mae', 'lsd'"),
        (dict(metric="RMSE"), r"metric 'RMSE'"),
        (dict(metric=None), r"metric None"),
        (dict(input_scale="log"), r"input_scale 'log'.*'db', 'linear'"),
        (dict(input_scale="dB"), r"input_scale 'dB'"),
        (dict(reduction="sum"), r"reduction 'sum'.*'mean', 'rms'"),
        (dict(reduction="none"), r"reduction 'none'"),
        (dict(epsilon=0.0), r"epsilon 0.0 must be a finite number > 0"),
        (dict(epsilon=-1e-12), r"epsilon -1e-12"),
        (dict(epsilon=float("nan")), r"epsilon nan"),
        (dict(epsilon=float("inf")), r"epsilon inf"),
        (dict(epsilon="1e-12"), r"epsilon '1e-12'"),
        (dict(epsilon=None), r"epsilon None"),
        (dict(epsilon=True), r"epsilon True"),
        (dict(prediction=torch.ones(2, 4)), r"shape \(2, 4\) differs from target shape \(2, 3\)"),
        (dict(prediction=torch.ones(3)), r"shape \(3,\) differs"),
        (dict(prediction=torch.ones(1, 2, 3)), r"shape \(1, 2, 3\) differs"),
        (dict(prediction=torch.tensor(1.0), target=torch.tensor(1.0)), r"scalars \(0-d\)"),
        (dict(prediction=2.0, target=1.0), r"scalars \(0-d\)"),
        (dict(prediction=torch.ones(2, 0), target=torch.ones(2, 0)), r"empty"),
        (dict(prediction=torch.ones(0, 3), target=torch.ones(0, 3)), r"empty"),
        (dict(prediction=torch.ones(2, 3, dtype=torch.complex64)), r"prediction is complex"),
        (dict(prediction=[[1.0, 2.0], [3.0]]), r"prediction could not be converted"),
        (dict(target="abc"), r"target could not be converted"),
    ],
)
def test_invalid_arguments_raise_value_error(kwargs, match):
    args = dict(
        prediction=_OK, target=_OK, **{k: v for k, v in kwargs.items() if k not in ("prediction", "target")}
    )
    args.update({k: v for k, v in kwargs.items() if k in ("prediction", "target")})
    with pytest.raises(ValueError, match=match):
        spectral_loss(**args)


@pytest.mark.gpu
def test_device_follows_the_tensor_input():
    p = torch.tensor(P, device="cuda")
    out = spectral_loss(p, np.array(T, dtype=np.float32))
    assert out.device == p.device and float(out) == pytest.approx(sum(RMSE_ROWS) / 2, rel=1e-6)
    with pytest.raises(ValueError, match="different|one device"):
        spectral_loss(p, torch.tensor(T))


def test_array_input_goes_to_the_tensor_device_and_devices_must_match():
    p = torch.ones(2, 3, device="meta")  # a device other than the CPU, without a GPU
    assert spectral_loss(p, np.zeros((2, 3), dtype=np.float32)).device == p.device
    assert spectral_loss(np.zeros((2, 3)), p.double()).device == p.device
    with pytest.raises(ValueError, match=r"prediction is on meta and target on cpu; put both on one device"):
        spectral_loss(p, torch.ones(2, 3))
