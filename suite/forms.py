"""The causal-averaging forms, each defined once with its cost model.

For ``x`` of shape (B, T, C), every form computes ``out[b, t] = mean(x[b, :t+1])``.
Backends implement the forms by name; this module is the registry of what each
one is and what it costs, so that roofline columns, memory guards and cost guards
read one source. A new form is one :func:`register` call (and its implementations
in the adapters that compute it).

Cost model conventions:

- ``flops``: floating-point operations the form performs as written (the matrix
  forms multiply the full T x T matrix, zeros included, because that is what a
  dense matmul does).
- ``min_bytes``: the fewest bytes the form must move through memory: read x and
  write out once, plus the T x T weights where the form builds them.
- ``extra_bytes``: peak memory beyond input and output.
- ``python_steps``: iterations of interpreted Python per call (the loop form).
- ``kernel_extra_bytes``: ``extra_bytes`` of the kernels that differ from the
  form's own estimate (the attention form: fused kernels keep no T x T matrix).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field

Cost = Callable[[int, int, int, int], float]

#: Bytes per element of each dtype the suite knows.
ITEMSIZE: dict[str, int] = {"float64": 8, "float32": 4, "float16": 2, "bfloat16": 2}

#: The largest block a backend's ``chunked`` form uses (for its memory estimate).
CHUNK_MAX_K = 256


@dataclass(frozen=True)
class Form:
    """One way to compute the causal average, and what it costs."""

    name: str
    summary: str
    complexity: str
    #: Whether a matmul does the work, so the precision mode (IEEE/TF32) matters.
    uses_matmul: bool
    flops: Cost
    min_bytes: Cost
    extra_bytes: Cost
    python_steps: Callable[[int, int], int] = lambda B, T: 0
    kernel_extra_bytes: Mapping[str, Cost] = field(default_factory=dict)

    def intensity(self, B: int, T: int, C: int, itemsize: int) -> float:
        """Arithmetic intensity in FLOP per byte of compulsory traffic."""
        return self.flops(B, T, C, itemsize) / self.min_bytes(B, T, C, itemsize)

    def peak_bytes(self, B: int, T: int, C: int, itemsize: int, kernel: str = "") -> float:
        """Input, output and the extra working memory of ``kernel`` (or the form's own), in bytes."""
        extra = self.kernel_extra_bytes.get(kernel, self.extra_bytes)
        return 2 * B * T * C * itemsize + extra(B, T, C, itemsize)


def _io(B: int, T: int, C: int, s: int) -> float:
    return 2.0 * B * T * C * s


def _visible(T: int) -> float:
    """Query-key pairs a causal mask leaves: position t sees t + 1 keys."""
    return T * (T + 1) / 2


#: Attention kernels that never hold the T x T scores: they stream key blocks
#: through on-chip memory and keep a running softmax (log-sum-exp) per query.
FUSED_ATTENTION_KERNELS: tuple[str, ...] = ("flash", "efficient", "cudnn")


def _fused_attention_extra(B: int, T: int, C: int, s: int) -> float:
    # The zero queries and keys, and a float32 log-sum-exp per query.
    return 2.0 * B * T * C * s + 4.0 * B * T


FORMS: dict[str, Form] = {
    f.name: f
    for f in (
        Form(
            name="loop",
            summary="double loop over b and t: out[b, t] = x[b, :t+1].mean(0)",
            complexity="O(B T^2 C)",
            uses_matmul=False,
            # (t+1) * C additions and C divisions for every (b, t).
            flops=lambda B, T, C, s: B * C * (T * (T + 1) / 2 + T),
            min_bytes=_io,
            extra_bytes=lambda B, T, C, s: float(T * C * s),
            python_steps=lambda B, T: B * T,
        ),
        Form(
            name="matrix",
            summary="wei = tril(ones(T, T)); wei /= wei.sum(1); out = wei @ x",
            complexity="O(B T^2 C)",
            uses_matmul=True,
            flops=lambda B, T, C, s: 2.0 * B * T * T * C + 2.0 * T * T,
            min_bytes=lambda B, T, C, s: _io(B, T, C, s) + T * T * s,
            # The ones matrix and the normalised weights exist at the same time.
            extra_bytes=lambda B, T, C, s: 2.0 * T * T * s,
        ),
        Form(
            name="softmax",
            summary="wei = zeros(T, T) masked with -inf above the diagonal; softmax(wei, -1) @ x",
            complexity="O(B T^2 C)",
            uses_matmul=True,
            # Matmul plus mask, max, subtract, exp, sum and divide on T x T.
            flops=lambda B, T, C, s: 2.0 * B * T * T * C + 5.0 * T * T,
            min_bytes=lambda B, T, C, s: _io(B, T, C, s) + T * T * s,
            # Boolean mask, zeros, masked and softmaxed copies.
            extra_bytes=lambda B, T, C, s: 3.0 * T * T * s + T * T,
        ),
        Form(
            name="cumsum",
            summary="cumsum(x, axis=1) / arange(1, T + 1)",
            complexity="O(B T C)",
            uses_matmul=False,
            flops=lambda B, T, C, s: 2.0 * B * T * C,
            min_bytes=_io,
            # The prefix sums before the division.
            extra_bytes=lambda B, T, C, s: float(B * T * C * s + T * s),
        ),
        Form(
            name="chunked",
            summary=(
                "T in blocks of K: prefix sums inside each block (K x K lower-triangular matmul, "
                "full precision), running block totals, combine, / arange(1, T + 1)"
            ),
            complexity="O(B T C K)",
            # The precision mode does not apply: the block matmul always runs in full
            # precision (TF32's 10-bit mantissa would break float32 agreement).
            uses_matmul=False,
            # Counted as the scan it computes: an addition inside the block, the block's
            # offset added, and the division, per element. The K x K block matmul's
            # multiply-adds (2K per element, zeros included) depend on each backend's
            # block size and are left out, so the form is judged against the memory
            # roofline that a scan can reach.
            flops=lambda B, T, C, s: 3.0 * B * T * C,
            min_bytes=_io,
            # Block prefix sums and a padded copy of x (T rounded up to a multiple of
            # K), the block totals, and the K x K matrix (K <= CHUNK_MAX_K).
            extra_bytes=lambda B, T, C, s: float(
                2 * B * (T + CHUNK_MAX_K) * C * s + B * T * C * s / 8 + CHUNK_MAX_K**2 * s
            ),
        ),
        Form(
            name="attention",
            summary=(
                "scaled_dot_product_attention(q=0, k=0, v=x, causal): softmax of equal scores "
                "over the visible keys is 1/(t+1) each, so the output is the causal mean"
            ),
            complexity="O(B T^2 C)",
            uses_matmul=True,
            # What a fused causal kernel does: QK^T and PV with head dimension C over the
            # T(T+1)/2 visible pairs (blocks above the diagonal are skipped), and the
            # online softmax (scale, max, exp, sum) on each score. Kernels that compute
            # the full matrices and then mask (torch's math, XLA) do about twice this.
            flops=lambda B, T, C, s: B * _visible(T) * (4.0 * C + 4.0),
            # A fused kernel reads q, k and v and writes the output once.
            min_bytes=lambda B, T, C, s: 4.0 * B * T * C * s,
            # The unfused kernels (math, XLA, and whatever ``auto`` falls back to)
            # hold the scores, the mask and the softmax as T x T per batch.
            extra_bytes=lambda B, T, C, s: 2.0 * B * T * C * s + 3.0 * B * T * T * s + B * T * T,
            kernel_extra_bytes=dict.fromkeys(FUSED_ATTENTION_KERNELS, _fused_attention_extra),
        ),
    )
}

#: The built-in forms, in the order reports list them.
FORM_NAMES: tuple[str, ...] = tuple(FORMS)


def register(form: Form) -> Form:
    """Add ``form`` to the registry (an open set); return it. Re-registering a name replaces it."""
    FORMS[form.name] = form
    return form


def form_names() -> tuple[str, ...]:
    """Every registered form, built-in ones first."""
    return tuple(FORMS)


def get_form(name: str) -> Form:
    """The form called ``name``; KeyError naming the choices otherwise."""
    try:
        return FORMS[name]
    except KeyError:
        raise KeyError(f"unknown form {name!r}; choose from {', '.join(FORMS)}") from None
