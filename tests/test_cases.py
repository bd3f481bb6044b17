"""Cases and sweeps: the kernel dimension of the forms that have kernels (the attention form)."""

from __future__ import annotations

import re

import pytest

from suite.cases import PRESETS, Case, SweepSpec, backend_kernels, known_kernels, known_variants, split_form
from suite.cli import main


def kernels_of(spec: SweepSpec) -> dict[tuple[str, str], list[str]]:
    out: dict[tuple[str, str], list[str]] = {}
    for c in spec.cases():
        out.setdefault((c.backend, c.form), []).append(c.kernel)
    return out


def test_a_sweep_runs_each_backend_with_the_requested_kernels_it_offers() -> None:
    spec = SweepSpec(
        backends=("torch", "jax", "numpy"),
        forms=("attention", "cumsum"),
        kernels=("flash", "xla", "math"),
        variants=(),
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


def variants_of(spec: SweepSpec) -> dict[tuple[str, str], list[str]]:
    out: dict[tuple[str, str], list[str]] = {}
    for c in spec.cases():
        out.setdefault((c.backend, c.form), []).append(c.variant)
    return out


def test_a_variant_is_named_in_the_key_and_every_label() -> None:
    staged = Case("numpy", "cumsum", 8, 1024, 256, variant="staged")
    assert staged.key == "numpy:cumsum[staged]:8x1024x256:float32:ieee:normal"
    assert staged.form_kernel == "cumsum[staged]"
    assert staged.label() == "numpy cumsum[staged] 8x1024x256 float32"
    idiom = Case("numpy", "cumsum", 8, 1024, 256)
    assert idiom.key == "numpy:cumsum:8x1024x256:float32:ieee:normal" and idiom.form_kernel == "cumsum"
    assert split_form("cumsum[staged]") == ("cumsum", "staged") and split_form("cumsum") == ("cumsum", "")


def test_by_default_a_sweep_runs_each_idiom_and_every_variant_beside_it() -> None:
    spec = SweepSpec(backends=("numpy", "numba", "torch"), forms=("cumsum", "loop"))
    assert variants_of(spec) == {
        ("numpy", "cumsum"): ["", "staged"],
        ("numpy", "loop"): [""],
        ("numba", "cumsum"): ["", "parallel"],
        ("numba", "loop"): ["", "parallel"],
        ("torch", "cumsum"): [""],
        ("torch", "loop"): [""],
    }
    assert known_variants() == ("staged", "parallel")


def test_named_variants_none_and_a_variant_alone() -> None:
    def spec(variants: tuple[str, ...]) -> SweepSpec:
        return SweepSpec(backends=("numpy", "numba"), forms=("cumsum",), variants=variants)

    assert variants_of(spec(())) == {("numpy", "cumsum"): [""], ("numba", "cumsum"): [""]}
    assert variants_of(spec(("staged",))) == {
        ("numpy", "cumsum"): ["", "staged"],
        ("numba", "cumsum"): [""],
    }
    # ``cumsum[staged]`` is the variant alone: no idiom, and nothing on a backend without it.
    alone = SweepSpec(backends=("numpy", "numba"), forms=("cumsum[staged]",))
    assert [c.key for c in alone.cases()] == ["numpy:cumsum[staged]:4x8x2:float32:ieee:normal"]


@pytest.mark.parametrize(
    ("spec", "message"),
    [
        ({"variants": ("tiled",)}, "unknown variant 'tiled'; choose from staged, parallel"),
        ({"forms": ("cumsum[tiled]",)}, "unknown variant 'tiled'; choose from staged, parallel"),
        ({"forms": ("scan[staged]",)}, "unknown form 'scan'"),
    ],
)
def test_unknown_variants_are_refused(spec: dict[str, tuple[str, ...]], message: str) -> None:
    with pytest.raises(ValueError, match=re.escape(message)):
        SweepSpec(**spec)  # type: ignore[arg-type]


def test_the_default_sweep_adds_only_the_variant_rows() -> None:
    sizes = PRESETS["default"]
    idioms = SweepSpec(sizes=sizes, variants=()).cases()
    every = SweepSpec(sizes=sizes).cases()
    added = [c for c in every if c.variant]
    # NumPy cumsum[staged], Numba cumsum[parallel] and loop[parallel], at each size.
    assert len(every) == len(idioms) + len(added) == len(idioms) + 3 * len(sizes)
    assert {c.form_kernel for c in added} == {"cumsum[staged]", "cumsum[parallel]", "loop[parallel]"}


@pytest.mark.parametrize(
    ("flags", "message"),
    [
        (["--variants", "tiled"], "error: unknown variant 'tiled'; choose from staged, parallel\n"),
        (["--variants", ""], "error: no variant given\n"),
        (["--forms", "cumsum[tiled]"], "error: unknown form 'cumsum[tiled]'; choose from loop"),
    ],
)
def test_variants_flag_refuses_unknown_names_in_one_line(tmp_path, capsys, flags: list[str], message: str) -> None:
    out = tmp_path / "run"
    assert main(["run", "--backends", "numpy", "--sizes", "2x8x2", "--out", str(out), *flags]) == 2
    err = capsys.readouterr().err
    assert err.startswith(message) and err.count("\n") == 1
    assert not out.exists()


def test_variants_flag_selects_what_runs(capsys) -> None:
    for flag, expected in (("all", {"", "staged"}), ("none", {""}), ("staged", {"", "staged"})):
        argv = ["check", "--backends", "numpy", "--forms", "cumsum", "--sizes", "2x8x2", "--inputs", "normal"]
        assert main([*argv, "--variants", flag, "--quiet", "--no-isolate"]) == 0
        printed = capsys.readouterr().out
        assert printed.count("cumsum[staged]") == (1 if "staged" in expected else 0)
        assert printed.count(" pass") == len(expected)
