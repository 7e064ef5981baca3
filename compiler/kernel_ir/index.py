"""Symbolic integer index arithmetic: how kernels address memory.

An ``Index`` is ``const + sum(coeff * atom)``. Atoms are loop variables (``Var``), and,
when a reshape splits a loop variable, ``FloorDiv``/``Mod`` of an index by a constant;
``Dyn`` is a data-dependent index (gather) clamped to a known range. Each atom knows
its value range, which lets ``floordiv``/``mod`` simplify the usual cases away:
flattening ``(n, c, h, w)`` and splitting it again gives back ``n, c, h, w``, so movement
ops fold into affine addressing instead of copies.

Everything here is immutable, hashable, and ordered deterministically (by a canonical
text), so printed kernels, and hence cache keys, are identical in every process.
"""
from __future__ import annotations

class Atom:
    __slots__ = ("key", "_hash")

    def _init(self, key):
        self.key = key
        self._hash = hash(key)

    def __hash__(self):
        return self._hash

    def __eq__(self, other):
        return self is other or (type(other) is type(self) and other.key == self.key)

    def __repr__(self):
        return self.key


class Var(Atom):
    """A loop variable ranging over ``0 .. size-1``."""

    __slots__ = ("name", "size")

    def __init__(self, name: str, size: int):
        self.name, self.size = name, int(size)
        self._init(f"{name}")

    @property
    def lo(self):
        return 0

    @property
    def hi(self):
        return max(self.size - 1, 0)

    def __eq__(self, other):
        return self is other or (type(other) is Var and other.name == self.name
                                 and other.size == self.size)

    __hash__ = Atom.__hash__


class FloorDiv(Atom):
    __slots__ = ("arg", "d")

    def __init__(self, arg: "Index", d: int):
        self.arg, self.d = arg, d
        self._init(f"({arg.text} // {d})")

    @property
    def lo(self):
        return self.arg.lo // self.d

    @property
    def hi(self):
        return self.arg.hi // self.d


class Mod(Atom):
    __slots__ = ("arg", "d")

    def __init__(self, arg: "Index", d: int):
        self.arg, self.d = arg, d
        self._init(f"({arg.text} % {d})")

    @property
    def lo(self):
        return 0

    @property
    def hi(self):
        return min(self.d - 1, self.arg.hi) if self.arg.lo >= 0 else self.d - 1


class Dyn(Atom):
    """A data-dependent index: the int64 scalar expression ``expr``, known to lie in [lo, hi]."""

    __slots__ = ("expr", "lo", "hi")

    def __init__(self, expr, lo: int, hi: int):
        self.expr, self.lo, self.hi = expr, lo, hi
        self._init(f"dyn[{lo}..{hi}]({expr.text})")


class Index:
    __slots__ = ("terms", "const", "_hash", "_text")

    def __init__(self, terms=(), const=0):
        # terms: tuple of (atom, coeff), coeff != 0, sorted by atom key
        self.terms = terms
        self.const = int(const)
        self._hash = hash((terms, self.const))
        self._text = None

    # -- construction ------------------------------------------------------------------
    @staticmethod
    def of(x) -> "Index":
        if isinstance(x, Index):
            return x
        if isinstance(x, Atom):
            return Index(((x, 1),), 0)
        return Index((), int(x))

    @staticmethod
    def _build(coeffs: dict, const: int) -> "Index":
        terms = tuple(sorted(((a, c) for a, c in coeffs.items() if c), key=lambda t: t[0].key))
        return Index(terms, const)

    # -- queries -----------------------------------------------------------------------
    @property
    def lo(self):
        return self.const + sum(c * (a.lo if c > 0 else a.hi) for a, c in self.terms)

    @property
    def hi(self):
        return self.const + sum(c * (a.hi if c > 0 else a.lo) for a, c in self.terms)

    @property
    def is_const(self):
        return not self.terms

    @property
    def is_affine(self):
        """Only plain loop variables (no div/mod/data-dependent parts)."""
        return all(type(a) is Var for a, _ in self.terms)

    def coeff(self, atom) -> int:
        for a, c in self.terms:
            if a == atom:
                return c
        return 0

    def atoms(self):
        """Every Var this index depends on, looking inside div/mod."""
        out = []
        for a, _ in self.terms:
            if type(a) is Var:
                out.append(a)
            elif type(a) in (FloorDiv, Mod):
                out.extend(a.arg.atoms())
        return out

    def has_dyn(self):
        return any(type(a) is Dyn or (type(a) in (FloorDiv, Mod) and a.arg.has_dyn())
                   for a, _ in self.terms)

    @property
    def text(self):
        if self._text is None:
            parts = []
            for a, c in self.terms:
                parts.append(a.key if c == 1 else f"{c}*{a.key}")
            if self.const or not parts:
                parts.append(str(self.const))
            self._text = " + ".join(parts)
        return self._text

    def __repr__(self):
        return self.text

    def __hash__(self):
        return self._hash

    def __eq__(self, other):
        if self is other:
            return True
        if isinstance(other, int):
            return not self.terms and self.const == other
        return isinstance(other, Index) and self.const == other.const and self.terms == other.terms

    # -- arithmetic --------------------------------------------------------------------
    def __add__(self, other):
        other = Index.of(other)
        if not other.terms:
            return Index(self.terms, self.const + other.const) if other.const else self
        coeffs = dict(self.terms)
        for a, c in other.terms:
            coeffs[a] = coeffs.get(a, 0) + c
        return Index._build(coeffs, self.const + other.const)

    __radd__ = __add__

    def __mul__(self, k):
        k = int(k)
        if k == 0:
            return Index()
        if k == 1:
            return self
        return Index(tuple((a, c * k) for a, c in self.terms), self.const * k)

    __rmul__ = __mul__

    def __neg__(self):
        return self * -1

    def __sub__(self, other):
        return self + (-Index.of(other))

    def __rsub__(self, other):
        return Index.of(other) - self

    def _split(self, d):
        """``self = d*q + r`` with r's coefficients in (-d, d) and const in [0, d)."""
        q, r = {}, {}
        for a, c in self.terms:
            (q if c % d == 0 else r)[a] = c // d if c % d == 0 else c
        return Index._build(q, self.const // d), Index._build(r, self.const % d)

    def _gcd_split(self, d):
        """Find ``g | d`` with ``self = g*high + low`` and ``0 <= low < g``; None if none."""
        for g in sorted({abs(c) for _, c in self.terms}, reverse=True):
            if g <= 1 or d % g:
                continue
            high = {a: c // g for a, c in self.terms if c % g == 0}
            low = Index._build({a: c for a, c in self.terms if c % g}, self.const % g)
            if low.lo >= 0 and low.hi < g:
                return g, Index._build(high, self.const // g), low
        return None

    def floordiv(self, d) -> "Index":
        d = int(d)
        if d <= 0:
            raise ValueError("floordiv by a non-positive constant")
        if d == 1:
            return self
        lo, hi = self.lo, self.hi
        if lo // d == hi // d:
            return Index((), lo // d)
        q, r = self._split(d)
        if r.lo >= 0 and r.hi < d:
            return q
        if r.lo // d == r.hi // d:
            return q + r.lo // d
        found = r._gcd_split(d)
        if found:
            g, high, _ = found
            return q + high.floordiv(d // g)
        if len(r.terms) == 1 and r.const == 0 and r.terms[0][1] == 1 and type(r.terms[0][0]) is FloorDiv:
            inner = r.terms[0][0]
            return q + inner.arg.floordiv(inner.d * d)
        return q + Index.of(FloorDiv(r, d))

    def mod(self, d) -> "Index":
        d = int(d)
        if d <= 0:
            raise ValueError("mod by a non-positive constant")
        if d == 1:
            return Index()
        _, r = self._split(d)
        lo, hi = r.lo, r.hi
        if lo >= 0 and hi < d:
            return r
        if lo // d == hi // d:
            return r - d * (lo // d)
        found = r._gcd_split(d)
        if found:
            g, high, low = found
            return high.mod(d // g) * g + low
        return Index.of(Mod(r, d))

    def subs(self, mapping) -> "Index":
        """Replace Vars by Indexes (``mapping``: Var -> Index), re-simplifying div/mod."""
        out = Index((), self.const)
        for a, c in self.terms:
            if type(a) is Var:
                out = out + Index.of(mapping.get(a, a)) * c
            elif type(a) is FloorDiv:
                out = out + a.arg.subs(mapping).floordiv(a.d) * c
            elif type(a) is Mod:
                out = out + a.arg.subs(mapping).mod(a.d) * c
            else:
                out = out + Index.of(a) * c
        return out


def flatten(dims, shape) -> Index:
    """Row-major flat position of index ``dims`` in ``shape``."""
    flat, stride = Index(), 1
    for i in range(len(shape) - 1, -1, -1):
        if shape[i] != 1:
            flat = flat + Index.of(dims[i]) * stride
        stride *= shape[i]
    return flat


def unflatten(flat: Index, shape) -> tuple:
    """Per-dimension indexes of row-major position ``flat`` in ``shape``."""
    out, stride = [], 1
    strides = []
    for n in reversed(shape):
        strides.append(stride)
        stride *= n
    strides.reverse()
    for n, s in zip(shape, strides):
        out.append(Index() if n <= 1 else flat.floordiv(max(s, 1)).mod(n))
    return tuple(out)


class Idx:
    """The index of one element of a tensor of ``shape``: per-dimension and/or flat.

    Reshapes only change the shape, keeping the flat position, so a chain of reshapes
    costs nothing; per-dimension indexes are derived (and simplified) only when an op
    needs them. A load from a contiguous buffer uses the flat form directly.
    """

    __slots__ = ("shape", "_dims", "_flat")

    def __init__(self, shape, dims=None, flat=None):
        self.shape = tuple(shape)
        self._dims = None if dims is None else tuple(Index.of(d) for d in dims)
        self._flat = flat
        assert dims is not None or flat is not None

    @property
    def dims(self) -> tuple:
        if self._dims is None:
            self._dims = unflatten(self._flat, self.shape)
        return self._dims

    @property
    def flat(self) -> Index:
        if self._flat is None:
            self._flat = flatten(self._dims, self.shape)
        return self._flat

    def reshape(self, shape) -> "Idx":
        return Idx(shape, flat=self.flat) if tuple(shape) != self.shape else self

    def key(self):
        return (self.shape, self.flat)

    def __repr__(self):
        return f"Idx({', '.join(d.text for d in self.dims)})"
