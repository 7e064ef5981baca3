"""Backends: ways to execute a graph. ``interpreter`` runs reference kernels node by node."""
