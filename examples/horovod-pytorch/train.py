"""Data-parallel training of a small classifier with Horovod (horovod.torch) over MPI.

Runs under Drover's mpi backend, where Horovod is built into the job's environment
(`environment.horovod`, set by `drover submit --horovod` and by the SDK's PyTorch estimator
with distributed_backend='mpi'):

    drover submit --source . --nodes 2 --processes-per-node 2 --backend mpi --horovod \
        -- train.py

or under plain `horovodrun -np 4 python3 train.py` / `mpirun -np 4 python3 train.py` where
Horovod is installed. Horovod takes each process's rank and the world size from Open MPI.

The training data is synthetic, generated from --seed identically on every rank; each rank
trains on its own shard of it. hvd.broadcast_parameters and
hvd.broadcast_optimizer_state start every rank from rank 0's state, and
hvd.DistributedOptimizer averages the gradients with an allreduce at every step. Rank 0
logs the loss of each epoch with run.log (Drover's metrics) and prints it. At the end every
rank prints

    horovod rank R of W (local rank L), size W
    parameters identical on all W ranks: checksum=<16 hex digits>

with the same checksum on every rank (checked with an allgather of every rank's checksum),
or exits with status 1 naming the ranks that differ. Rank 0 saves model.pt in --output-dir
($DROVER_OUTPUT_DIR under Drover, else ./outputs).
"""

import argparse
import hashlib
import os
import socket
import sys

import horovod.torch as hvd
import torch
from torch import nn

try:
    # Drover puts its `drover` module in every job container (docs/metrics.md).
    import drover
    run = drover.Run.get_context()
except ImportError:
    run = None


def parse_args():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--epochs", type=int, default=3, help="passes over the data (default 3)")
    parser.add_argument("--batch-size", type=int, default=32,
                        help="samples per step on each rank (default 32)")
    parser.add_argument("--lr", type=float, default=0.05,
                        help="SGD learning rate, scaled by the world size (default 0.05)")
    parser.add_argument("--samples", type=int, default=4096,
                        help="synthetic samples in all (default 4096)")
    parser.add_argument("--features", type=int, default=20, help="input size (default 20)")
    parser.add_argument("--classes", type=int, default=4, help="output classes (default 4)")
    parser.add_argument("--seed", type=int, default=7,
                        help="seed of the data and the initial weights (default 7)")
    parser.add_argument("--threads", type=int, default=1,
                        help="torch threads per process (default 1)")
    parser.add_argument("--output-dir", default=os.environ.get("DROVER_OUTPUT_DIR") or "outputs",
                        help="where rank 0 saves model.pt (default: $DROVER_OUTPUT_DIR, else "
                             "./outputs)")
    return parser.parse_args()


def synthetic_data(samples, features, classes, seed):
    """Points around one centre per class; the same on every rank."""
    g = torch.Generator().manual_seed(seed)
    centres = torch.randn(classes, features, generator=g) * 2
    labels = torch.randint(0, classes, (samples,), generator=g)
    points = centres[labels] + torch.randn(samples, features, generator=g)
    return points, labels


def checksum(model):
    h = hashlib.sha256()
    for name, tensor in sorted(model.state_dict().items()):
        h.update(name.encode())
        h.update(tensor.detach().cpu().contiguous().numpy().tobytes())
    return h.hexdigest()[:16]


def main():
    args = parse_args()
    torch.set_num_threads(args.threads)
    hvd.init()
    rank, size, local_rank = hvd.rank(), hvd.size(), hvd.local_rank()
    print(f"horovod rank {rank} of {size} (local rank {local_rank}), size {size} "
          f"on {socket.gethostname()}", flush=True)

    points, labels = synthetic_data(args.samples, args.features, args.classes, args.seed)
    mine = torch.arange(rank, args.samples, size)  # this rank's shard
    points, labels = points[mine], labels[mine]

    torch.manual_seed(args.seed + rank)  # different on purpose: the broadcast must fix it
    model = nn.Sequential(nn.Linear(args.features, 64), nn.ReLU(), nn.Linear(64, args.classes))
    optimizer = torch.optim.SGD(model.parameters(), lr=args.lr * size, momentum=0.9)
    hvd.broadcast_parameters(model.state_dict(), root_rank=0)
    hvd.broadcast_optimizer_state(optimizer, root_rank=0)
    optimizer = hvd.DistributedOptimizer(optimizer, named_parameters=model.named_parameters())
    loss_fn = nn.CrossEntropyLoss()

    steps = max(1, len(points) // args.batch_size)
    for epoch in range(args.epochs):
        order = torch.randperm(len(points), generator=torch.Generator().manual_seed(epoch))
        total = torch.zeros(1)
        for step in range(steps):
            batch = order[step * args.batch_size:(step + 1) * args.batch_size]
            optimizer.zero_grad()
            loss = loss_fn(model(points[batch]), labels[batch])
            loss.backward()
            optimizer.step()
            total += loss.detach()
        mean = hvd.allreduce(total / steps, name="epoch_loss").item()  # averaged over ranks
        if rank == 0:
            print(f"epoch {epoch + 1}/{args.epochs} loss {mean:.4f}", flush=True)
            if run is not None:
                run.log("loss", mean, step=epoch + 1)

    mine_sum = checksum(model)
    every = hvd.allgather_object(mine_sum, name="checksums")
    if len(set(every)) != 1:
        differing = [r for r, c in enumerate(every) if c != every[0]]
        print(f"rank {rank}: error: parameters differ between ranks: rank 0 has {every[0]}, "
              f"ranks {differing} differ", file=sys.stderr, flush=True)
        sys.exit(1)
    print(f"parameters identical on all {size} ranks: checksum={mine_sum}", flush=True)
    if rank == 0:
        os.makedirs(args.output_dir, exist_ok=True)
        torch.save(model.state_dict(), os.path.join(args.output_dir, "model.pt"))
    hvd.shutdown()


if __name__ == "__main__":
    main()
