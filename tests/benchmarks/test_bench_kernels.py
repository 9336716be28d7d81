"""The kernel benchmark's harness on the CPU: tables, Triton columns marked GPU-only,
the model benchmark's 'triton' framework. No timing is asserted."""

import io

import pytest
import torch
from rich.console import Console

from benchmarks.kernels import (
    KernelBenchConfig,
    model_config_for,
    product_case,
    run_kernels,
)
from benchmarks.model_report import LABELS, target_checks
from benchmarks.model_vs_mace import BenchConfig, BenchResult, Measurement, ModelSpec
from mlpot.kernels.grid_product import grid_node_update
from mlpot.kernels.s2grid import num_sh, product_grid


def test_cpu_run_prints_tables_and_says_triton_is_gpu_only():
    out = io.StringIO()
    ok = run_kernels(
        KernelBenchConfig(edges=(37,), lmax=(1,), channels=3, repeats=1),
        Console(file=out, width=200),
    )
    text = out.getvalue()
    assert not ok
    assert "this run has no GPU numbers" in text
    assert text.count("GPU only") == 2  # one spline row, one product row
    assert "e3nn CG" in text


def test_product_cases_compute_the_same_product():
    """The e3nn and grid timing cases are the same work: the grid product with λ = (0, 1)
    equals the channel-wise Gaunt product, which the e3nn uuu paths span."""
    step = product_case(2, 5, 3, torch.device("cpu"), torch.float64, "torch")
    step()  # runs forward + backward
    grid = product_grid(2, 2, 2)
    x = torch.randn(num_sh(2), 4, 2, 3, dtype=torch.float64)
    lam = torch.zeros(4, 2, 3, dtype=torch.float64)
    lam[:, 1] = 1.0
    y = grid_node_update(x, lam, grid.to_grid, grid.from_grid, None)
    from mlpot.kernels.gaunt import cg_product, gaunt_tensor

    ref = cg_product(
        x[:, :, 0].transpose(0, 1), x[:, :, 1].transpose(0, 1), gaunt_tensor(2, 2, 2)
    ).transpose(0, 1)
    torch.testing.assert_close(y, ref, atol=1e-12, rtol=0)


def test_triton_framework_is_gpu_only_and_added_where_it_runs():
    base = BenchConfig(frameworks=("grid", "cg", "mace"))
    assert model_config_for(base, False).frameworks == ("grid", "cg", "mace")
    base = BenchConfig(frameworks=("grid", "cg", "mace"), device="cuda")
    assert model_config_for(base, True).frameworks == ("grid", "triton", "cg", "mace")
    with pytest.raises(ValueError, match="triton"):
        BenchConfig(frameworks=("grid", "triton"), device="cpu")
    assert ModelSpec().message([29], "triton")["kernels"] == "triton"
    assert ModelSpec().message([29], "triton")["backend"] == "grid"
    assert ModelSpec().message([29], "grid")["kernels"] == "torch"
    assert "triton" in LABELS


def _measurement(framework, seconds, peak):
    return Measurement(
        "Cu fcc 256", framework, "energy_forces", 256, 10, 1, (seconds,), peak, "cuda", {}
    )


def test_triton_targets_are_checked():
    config = BenchConfig(device="cuda", frameworks=("grid", "triton", "cg", "mace"))
    result = BenchResult(
        config,
        (
            _measurement("grid", 1.0, 300),
            _measurement("triton", 0.2, 100),
            _measurement("cg", 1.0, 200),
            _measurement("mace", 0.9, 400),
        ),
    )
    checks = dict(target_checks(result))
    triton = [met for text, met in checks.items() if "grid+triton time" in text]
    memory = [met for text, met in checks.items() if "grid+triton peak memory" in text]
    assert triton == [True]  # 0.9 / 0.2 = 4.5x >= 3x
    assert memory == [True]  # 100 MiB <= cg 200 MiB
