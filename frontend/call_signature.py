"""What identifies a call to a compiled function: its arguments flattened into tensors
plus a hashable skeleton, and the words that explain why two signatures differ."""
from __future__ import annotations

from .tensor import Tensor


def flatten(obj, tensors):
    """Replace tensors in a (nested) structure by slots; return a hashable skeleton."""
    if isinstance(obj, Tensor):
        tensors.append(obj)
        return ("T", len(tensors) - 1)
    if isinstance(obj, (list, tuple)):  # including namedtuples such as max()'s result
        return ("seq", type(obj), tuple(flatten(o, tensors) for o in obj))
    if isinstance(obj, dict):
        return ("dict", tuple((k, flatten(v, tensors)) for k, v in obj.items()))
    try:
        hash(obj)
    except TypeError:
        raise TypeError(f"compiled functions take tensors, numbers, strings, None and "
                        f"tuples/lists/dicts of them; got {type(obj).__name__}") from None
    return ("V", type(obj).__name__, obj)


def unflatten(skeleton, values):
    tag = skeleton[0]
    if tag == "T":
        return values[skeleton[1]]
    if tag == "seq":
        cls, items = skeleton[1], [unflatten(s, values) for s in skeleton[2]]
        if cls is list:
            return items
        return cls(*items) if hasattr(cls, "_fields") else cls(items)
    if tag == "dict":
        return {k: unflatten(s, values) for k, s in skeleton[1]}
    return skeleton[2]


def tensor_key(t):
    return (tuple(t.shape), t.dtype.name, t.requires_grad)


def describe_change(old, new, arg_names):
    """Why a signature missed the cache, in words (KILN_DEBUG=1 and the recompile warning)."""
    (old_tensors, old_skel, old_state), (new_tensors, new_skel, new_state) = old, new
    if old_state != new_state:
        what = ["train/eval mode", "grad mode", "parameter requires_grad flags"]
        diffs = [w for w, a, b in zip(what, old_state, new_state) if a != b]
        return f"{' and '.join(diffs)} changed"
    if old_skel != new_skel:
        return f"the non-tensor arguments changed: {old_skel!r} -> {new_skel!r}"
    if len(old_tensors) != len(new_tensors):
        return f"the number of tensor inputs changed ({len(old_tensors)} -> {len(new_tensors)})"
    for i, (a, b) in enumerate(zip(old_tensors, new_tensors)):
        name = arg_names[i] if i < len(arg_names) else f"tensor input {i}"
        if a[1] != b[1]:
            return f"{name}: dtype changed {a[1]} -> {b[1]}"
        if len(a[0]) != len(b[0]):
            return f"{name}: rank changed {len(a[0])} -> {len(b[0])} (shape {a[0]} -> {b[0]})"
        for d, (x, y) in enumerate(zip(a[0], b[0])):
            if x != y:
                return f"{name}: dimension {d} changed {x} -> {y} (shape {a[0]} -> {b[0]})"
        if a[2] != b[2]:
            return f"{name}: requires_grad changed {a[2]} -> {b[2]}"
    return "unknown change"
