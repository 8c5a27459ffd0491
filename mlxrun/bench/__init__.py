"""`mlxrun bench`: collective benchmarks with nccl-tests' semantics."""
