"""mlxrun: run, watch and check distributed MLX jobs."""

__version__ = "0.1.0"
