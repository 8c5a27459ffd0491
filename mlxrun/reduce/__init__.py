"""Distributed reductions: the job spec, the exact algebra and its numpy kernels, the worker
on each rank, and the job and its answer as mlxrun sees them."""
