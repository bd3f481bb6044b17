"""The selftest's diagnosis: threads, noise, or a real disagreement between timers."""

from __future__ import annotations

from suite.selftest import diagnose


def test_agreement_needs_no_explanation() -> None:
    assert diagnose(0.03, 0.01, False, 0.0).startswith("the timers agree")


def test_threads_explain_a_timer_that_matches_the_one_thread_figure() -> None:
    assert diagnose(0.4, 0.02, True, 0.0).startswith("threads:")


def test_noise_when_timers_disagree_with_themselves_as_much_or_the_machine_is_busy() -> None:
    assert diagnose(0.2, 0.3, False, 0.0).startswith("noise:")
    busy = diagnose(0.2, 0.05, False, 1.1)
    assert busy.startswith("noise:") and "foreign load 1.10 cores" in busy


def test_a_real_disagreement_is_called_one() -> None:
    assert diagnose(0.2, 0.05, False, 0.0).startswith("neither threads nor noise")
