# The classic first MLX program: plain print, no flush.
import mlx.core as mx

data = [1, 2, 3, 4]
world = mx.distributed.init()
part = data[world.rank() :: world.size()]
print("rank", world.rank(), "of", world.size(), "sums", part)
total = mx.distributed.all_sum(mx.array(sum(part)))
print("total", total.item())
