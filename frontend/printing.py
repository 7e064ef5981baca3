"""Tensor ``repr`` formatting that matches PyTorch 2.13 character for character.

Users compare our output with what they know from PyTorch (and our tests diff
against ``repr(torch.Tensor)``), so this is a faithful, numpy-only port of
``torch/_tensor_str.py`` for dense CPU tensors.  Quirks of the original are kept
on purpose, e.g. non-finite values not counting towards the column width, the
``last_line_len`` off-by-two in suffix wrapping, and the column layout being
computed from the summarized (``...``) data only.

The module imports nothing from the rest of the package so that the tensor
class can import it without cycles.
"""

import contextlib
import dataclasses
import math

import numpy as np

__all__ = [
    "DTYPE_PREFIX",
    "format_tensor",
    "get_printoptions",
    "printoptions",
    "set_printoptions",
]

#: Prefix of dtype reprs in the ``dtype=...`` suffix (torch prints ``torch.``).
DTYPE_PREFIX = "kiln."


@dataclasses.dataclass
class _PrintOptions:
    precision: int = 4
    threshold: float = 1000
    edgeitems: int = 3
    linewidth: int = 80
    sci_mode: "bool | None" = None


_OPTS = _PrintOptions()

_PROFILES = {
    "default": dict(precision=4, threshold=1000, edgeitems=3, linewidth=80),
    "short": dict(precision=2, threshold=1000, edgeitems=2, linewidth=80),
    "full": dict(precision=4, threshold=math.inf, edgeitems=3, linewidth=80),
}


def set_printoptions(
    precision=None,
    threshold=None,
    edgeitems=None,
    linewidth=None,
    profile=None,
    sci_mode=None,
):
    """Set global print options; same signature and semantics as torch's.

    As in torch, ``sci_mode`` is always overwritten (``None`` = automatic), while
    the other options keep their value when passed ``None``.  ``profile`` is one
    of ``"default"``, ``"short"``, ``"full"`` and is applied first.
    """
    if profile is not None:
        for name, value in _PROFILES[profile].items():
            setattr(_OPTS, name, value)
    for name, value in (
        ("precision", precision),
        ("threshold", threshold),
        ("edgeitems", edgeitems),
        ("linewidth", linewidth),
    ):
        if value is not None:
            setattr(_OPTS, name, value)
    _OPTS.sci_mode = sci_mode


def get_printoptions():
    """Current options as a dict that can be fed back to ``set_printoptions``."""
    return dataclasses.asdict(_OPTS)


@contextlib.contextmanager
def printoptions(**kwargs):
    """Temporarily change print options (restored even if the body raises)."""
    old = get_printoptions()
    set_printoptions(**kwargs)
    try:
        yield
    finally:
        set_printoptions(**old)


class _Formatter:
    """Decides one common style and column width for all elements of a tensor.

    Floats use a single mode for the whole tensor (integer-like ``1.``, fixed
    ``1.2346`` or scientific ``1.2346e+05``), chosen from the non-zero finite
    values only, so columns line up.  Values are formatted as Python floats
    (float32 widened to double), exactly like torch's ``.item()``/``.tolist()``.
    """

    def __init__(self, values, floating):
        self.floating = floating
        self.int_mode = True
        self.sci_mode = False
        self.max_width = 1
        flat = values.reshape(-1)
        if not floating:
            for v in flat.tolist():
                self.max_width = max(self.max_width, len(f"{v}"))
            return
        finite = flat[np.isfinite(flat) & (flat != 0)]
        if finite.size == 0:
            return  # only zeros / nan / inf: int mode, width 1
        absvals = np.abs(finite).astype(np.float64)
        lo, hi = float(absvals.min()), float(absvals.max())
        self.int_mode = bool(np.all(finite == np.ceil(finite)))
        if _OPTS.sci_mode is None:
            # torch tests the ratio first; testing it last is equivalent and
            # cannot overflow (hi <= 1e8 and lo >= 1e-4 bound it by 1e12).
            self.sci_mode = hi > 1.0e8 or lo < 1.0e-4 or hi / lo > 1000.0
        else:
            self.sci_mode = _OPTS.sci_mode
        p = _OPTS.precision
        if self.sci_mode:
            widths = (len(f"{v:.{p}e}") for v in finite.tolist())
        elif self.int_mode:
            widths = (len(f"{v:.0f}") + 1 for v in finite.tolist())  # + "."
        else:
            widths = (len(f"{v:.{p}f}") for v in finite.tolist())
        self.max_width = max(self.max_width, max(widths))

    def format(self, value):
        """Format one Python scalar, right-aligned to the common width."""
        if not self.floating:
            text = f"{value}"
        elif self.sci_mode:
            text = f"{value:{self.max_width}.{_OPTS.precision}e}"
        elif self.int_mode:
            text = f"{value:.0f}"
            if not (math.isinf(value) or math.isnan(value)):
                text += "."  # marks the tensor as floating point
        else:
            text = f"{value:.{_OPTS.precision}f}"
        return " " * (self.max_width - len(text)) + text


def _summarized_data(a):
    """Keep only the edge items that will be printed, so they alone set the style.

    Mirrors torch's ``get_summarized_data``, including the quirk that with
    ``edgeitems=0`` a 1-D tensor is kept whole (``a[-0:]`` is everything).
    """
    e = _OPTS.edgeitems
    if a.ndim == 0:
        return a
    if a.ndim == 1:
        return np.concatenate((a[:e], a[-e:])) if a.shape[0] > 2 * e else a
    if not e:
        return np.empty([0] * a.ndim, a.dtype)
    n = a.shape[0]
    rows = list(range(e)) + list(range(n - e, n)) if n > 2 * e else range(n)
    return np.stack([_summarized_data(a[i]) for i in rows])


def _vector_str(a, indent, summarize, fmt):
    """One bracketed row, wrapped so each line fits ``linewidth``."""
    e = _OPTS.edgeitems
    element_length = fmt.max_width + 2  # ", " separator included
    per_line = max(1, math.floor((_OPTS.linewidth - indent) / element_length))
    if summarize and not e:
        data = ["..."]
    elif summarize and a.shape[0] > 2 * e:
        data = (
            [fmt.format(v) for v in a[:e].tolist()]
            + [" ..."]
            + [fmt.format(v) for v in a[-e:].tolist()]
        )
    else:
        data = [fmt.format(v) for v in a.tolist()]
    lines = [", ".join(data[i : i + per_line]) for i in range(0, len(data), per_line)]
    return "[" + (",\n" + " " * (indent + 1)).join(lines) + "]"


def _nested_str(a, indent, summarize, fmt):
    """Recursive layout: each extra dimension adds one blank line between blocks."""
    if a.ndim == 0:
        return fmt.format(a.item())
    if a.ndim == 1:
        return _vector_str(a, indent, summarize, fmt)
    e, n = _OPTS.edgeitems, a.shape[0]
    if summarize and n > 2 * e:
        rows = list(range(e)) + [None] + list(range(n - e, n))
    else:
        rows = range(n)
    slices = [
        "..." if i is None else _nested_str(a[i], indent + 1, summarize, fmt)
        for i in rows
    ]
    return "[" + ("," + "\n" * (a.ndim - 1) + " " * (indent + 1)).join(slices) + "]"


def _add_suffixes(text, suffixes, indent):
    """Append ``, suffix`` items, moving one to a new line if it would overflow.

    ``last_line_len`` reproduces torch's arithmetic verbatim (it is two too
    large for single-line strings) because it decides where lines break.
    """
    parts = [text]
    last_line_len = len(text) - text.rfind("\n") + 1
    for suffix in suffixes:
        if last_line_len + len(suffix) + 2 > _OPTS.linewidth:
            parts.append(",\n" + " " * indent + suffix)
            last_line_len = indent + len(suffix)
        else:
            parts.append(", " + suffix)
            last_line_len += len(suffix) + 2
    return "".join(parts) + ")"


def format_tensor(array, dtype_name, *, suffixes=(), default_dtype_name="float32"):
    """Return ``repr(tensor)`` for a dense tensor holding ``array``.

    ``dtype_name`` is the tensor's dtype (``"float32"``, ``"int64"``, ...); the
    array is cast to it so formatting sees the tensor's exact values.  Like
    torch, ``dtype=`` is shown unless the dtype is the default float dtype,
    int64 or bool (whose values already imply it); empty tensors show it unless
    it is the default float dtype, plus ``size=`` unless they are 1-D.
    ``suffixes`` (``requires_grad=True``, ``grad_fn=<...>``) come last.
    """
    try:
        a = np.asarray(array, dtype=np.dtype(dtype_name))
    except TypeError:  # a dtype numpy does not know (e.g. bfloat16)
        a = np.asarray(array)
    prefix = "tensor("
    indent = len(prefix)
    dtype_suffix = f"dtype={DTYPE_PREFIX}{dtype_name}"
    size_suffix = f"size={tuple(a.shape)}"
    extra = []
    if a.size == 0:
        if a.ndim != 1:
            extra.append(size_suffix)
        if dtype_name != default_dtype_name:
            extra.append(dtype_suffix)
        body = "[]"
    else:
        if not _OPTS.edgeitems:
            extra.append(size_suffix)
        if dtype_name not in (default_dtype_name, "int64", "bool"):
            extra.append(dtype_suffix)
        summarize = a.size > _OPTS.threshold
        floating = dtype_name.startswith(("float", "bfloat", "half", "double"))
        fmt = _Formatter(_summarized_data(a) if summarize else a, floating)
        body = _nested_str(a, indent, summarize, fmt)
    return _add_suffixes(prefix + body, extra + list(suffixes), indent)
