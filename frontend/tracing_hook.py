"""Where the compiler's tracer will hook into concrete-value access (``item()``,
``bool(t)``, ``.numpy()``...). In eager mode every access is fine."""


def on_concrete_access(tensor, what):
    handler = _handler
    if handler is not None:
        handler(tensor, what)


_handler = None


def set_handler(fn):
    """Install (or with None, remove) the tracer's handler; returns the previous one."""
    global _handler
    prev, _handler = _handler, fn
    return prev
