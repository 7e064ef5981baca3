"""``set_num_threads``: the frontend's view of the runtime's thread setting."""
from runtime.threads import get_num_threads, set_num_threads  # noqa: F401
