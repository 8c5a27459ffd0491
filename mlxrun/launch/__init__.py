"""Starting and supervising a job from mlxrun's side: the rank command and hostfile, ports,
mlx.launch, the channel the agents report to, the event loop and the verdict."""
