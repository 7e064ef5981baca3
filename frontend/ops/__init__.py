"""PyTorch's tensor functions on top of the op registry (see ``dispatch.apply``)."""
