"""``kiln bench``: eager vs compiled-unfused vs compiled-fused vs PyTorch, in one run."""
