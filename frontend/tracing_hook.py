"""Where the compiler's tracer hears about what ``dispatch.apply`` cannot see.

In eager mode no tracer is installed and every function here is one global check.
While ``frontend.compile`` traces, the tracer (``frontend/tracer.py``) is the handler:
it learns about constants and random tensors created during the trace, tensors that
stand for others (composite stand-ins, ``detach``), in-place updates, custom Functions,
and reads of concrete values (``item()``, ``bool(t)``...) that would freeze a branch.
"""

_handler = None


def set_handler(handler):
    """Install (or with None, remove) the tracer; returns the previous one."""
    global _handler
    prev, _handler = _handler, handler
    return prev


def active():
    return _handler is not None


def on_concrete_access(tensor, what):
    if _handler is not None:
        _handler.on_concrete_access(tensor, what)


def on_create(tensor):
    if _handler is not None:
        _handler.on_create(tensor)
    return tensor


def on_random(tensor, sample):
    """``sample()`` redraws a tensor like this one: compiled calls draw fresh values."""
    if _handler is not None:
        _handler.on_random(tensor, sample)
    return tensor


def on_alias(new, old):
    if _handler is not None:
        _handler.on_alias(new, old)


def on_detach(new, old):
    if _handler is not None:
        _handler.on_detach(new, old)


def on_inplace(tensor, result):
    if _handler is not None:
        _handler.on_inplace(tensor, result)


def begin_region():
    if _handler is not None:
        _handler.begin_region()


def end_region(inputs, outputs, backward):
    if _handler is not None:
        _handler.end_region(inputs, outputs, backward)
