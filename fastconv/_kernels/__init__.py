"""Compiled Cython/OpenMP kernels. Private: they trust their inputs; validate in Python first."""
