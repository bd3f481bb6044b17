"""Cases and sweeps: the kernel dimension of the forms that have kernels (the attention form)."""

from __future__ import annotations

import pytest

from suite.cases import Case, SweepSpec, backend_kernels, known_kernels
from suite.cli import main


def kernels_of(spec: SweepSpec) -> dict[tuple[str, str], list[str]]:
    out: dict[tuple[str, str], list[str]] = {}
    for c in spec.cases():
        out.setdefault((c.backend, c.form), []).append(c.kernel)
    return out


def test_a_sweep_runs_each_backend_with_the_requested_kernels_it_offers() -> None:
    spec = SweepSpec(
        backends=("torch", "jax", "numpy"), forms=("attention", "cumsum"), kernels=("flash", "xla", "math")
    )
    assert kernels_of(spec) == {
        ("torch", "attention"): ["flash", "math"],
        ("torch", "cumsum"): [""],
        ("jax", "attention"): ["xla"],
        ("jax", "cumsum"): [""],
        # numpy offers no kernel: one case, a skipped row that says why.
        ("numpy", "attention"): [""],
        ("numpy", "cumsum"): [""],
    }


def test_without_requested_kernels_each_library_picks() -> None:
    spec = SweepSpec(backends=("torch", "torch-compile", "jax"), forms=("attention",))
    assert kernels_of(spec) == {
        ("torch", "attention"): ["auto"],
        ("torch-compile", "attention"): ["auto"],
        ("jax", "attention"): ["xla"],
    }
    # A backend none of whose kernels was asked for runs no attention case.
    assert kernels_of(SweepSpec(backends=("jax",), forms=("attention",), kernels=("flash",))) == {}
    assert backend_kernels("numba", "attention", ("flash",)) == ("",)


def test_unknown_kernel_is_refused() -> None:
    assert known_kernels() == ("auto", "flash", "efficient", "cudnn", "math", "xla")
    with pytest.raises(ValueError, match="unknown kernel 'tpu'; choose from auto, flash"):
        SweepSpec(kernels=("tpu",))


def test_the_kernel_enters_the_key_only_when_there_is_one() -> None:
    """Stored runs keep their keys: a case without a kernel has the six-part key it always had."""
    assert Case("numpy", "cumsum", 4, 8, 2).key == "numpy:cumsum:4x8x2:float32:ieee:normal"
    flash = Case("torch", "attention", 4, 8, 2, kernel="flash")
    assert flash.key == "torch:attention:4x8x2:float32:ieee:normal:flash"
    assert flash.key != Case("torch", "attention", 4, 8, 2, kernel="math").key
    assert flash.form_kernel == "attention[flash]" and "attention[flash]" in flash.label()
    # A case of a form with kernels that names none takes the library's own choice.
    assert Case("torch", "attention", 4, 8, 2).kernel == "auto"
    assert Case("plugin-not-loaded", "attention", 4, 8, 2).kernel == ""


@pytest.mark.parametrize("command", ["run", "check"])
def test_an_unknown_kernel_name_gives_one_line_and_exit_2(command: str, capsys: pytest.CaptureFixture[str]) -> None:
    assert main([command, "--attention-kernels", "auto,warp"]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1, err
    assert err.startswith("error: unknown attention kernel 'warp'; choose from auto, flash, efficient, cudnn")


def test_default_sweep_fits_each_exponent_on_at_least_five_lengths() -> None:
    from suite.cases import PRESETS

    sizes = PRESETS["default"]
    assert len({T for _, T, _ in sizes}) >= 5
    assert len({(B, C) for B, _, C in sizes}) == 1  # T alone varies, so the fit is over T
