"""What runs on every rank around its program: the agent, the protocol it speaks to mlxrun,
the ring start-up wait and MLX's launcher minus its busy loop. Standard library only."""
