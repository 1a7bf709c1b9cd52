"""Data-parallel training of a small classifier with torch.distributed (gloo) and DDP.

Runs under Drover with either distributed backend, under plain mpirun, or as processes
you start yourself:

    drover submit --source . --nodes 2 --processes-per-node 2 --backend pytorch -- train.py
    MASTER_ADDR=127.0.0.1 MASTER_PORT=29511 WORLD_SIZE=2 RANK=0 python3 train.py &
    MASTER_ADDR=127.0.0.1 MASTER_PORT=29511 WORLD_SIZE=2 RANK=1 python3 train.py
    mpirun -np 4 python3 train.py --master-addr HOST_OF_RANK_0

Where each process finds its rank, world size and rendezvous point, first found wins:

    rank          RANK, DROVER_RANK, OMPI_COMM_WORLD_RANK, else 0
    world size    WORLD_SIZE, DROVER_WORLD_SIZE, OMPI_COMM_WORLD_SIZE, else 1
    local rank    LOCAL_RANK, DROVER_LOCAL_RANK, OMPI_COMM_WORLD_LOCAL_RANK, else 0
    master addr   --master-addr, MASTER_ADDR, else 127.0.0.1 when every rank is on this
                  machine (one process, or OMPI_COMM_WORLD_LOCAL_SIZE == world size), else
                  under mpirun the address of mpirun's host (from OMPI_MCA_orte_hnp_uri),
                  which is right when rank 0 runs there, as it does with Drover's mpi
                  backend and with a hostfile that lists mpirun's host first
    master port   --master-port, MASTER_PORT, else 29500

The training data is synthetic and generated from --seed, identically on every rank; a
DistributedSampler gives each rank its own shard of it. At the end every rank checks that
its parameters are bit-for-bit those of every other rank and prints

    parameters identical on all W ranks: checksum=<16 hex digits>

(the same checksum on every rank), or exits with status 1 and says which ranks differ.
Rank 0 saves the model's state_dict as model.pt in --output-dir ($DROVER_OUTPUT_DIR under
Drover, whose contents are uploaded when the job ends; else ./outputs).

Only the standard library and torch are needed. GLOO_SOCKET_IFNAME (or --ifname) picks the
network interface gloo uses; it is left alone unless you set it.
"""

import argparse
import datetime
import hashlib
import os
import socket
import sys
import time

import torch
import torch.distributed as dist
from torch import nn

try:
    # Drover puts its `drover` module in every job container (docs/metrics.md); elsewhere
    # the script runs without it (or with `PYTHONPATH=<drover>/python`, printing the values).
    import drover
    run = drover.Run.get_context()
except ImportError:
    run = None
from torch.nn.parallel import DistributedDataParallel
from torch.utils.data import DataLoader, DistributedSampler, TensorDataset


def parse_args():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--epochs", type=int, default=3, help="passes over the data (default 3)")
    parser.add_argument("--batch-size", type=int, default=32,
                        help="samples per step on each rank (default 32)")
    parser.add_argument("--lr", "--learning-rate", dest="lr", type=float, default=0.05,
                        help="SGD learning rate (default 0.05)")
    parser.add_argument("--samples", type=int, default=4096,
                        help="synthetic samples in all, 80%% for training (default 4096)")
    parser.add_argument("--features", type=int, default=20, help="input size (default 20)")
    parser.add_argument("--classes", type=int, default=4, help="output classes (default 4)")
    parser.add_argument("--seed", type=int, default=7,
                        help="seed of the data, the initial weights and the shuffling (default 7)")
    parser.add_argument("--threads", type=int, default=1,
                        help="torch threads per process (default 1)")
    parser.add_argument("--master-addr", default=None,
                        help="address of rank 0's host (default: $MASTER_ADDR; 127.0.0.1 when "
                             "every rank runs on this machine)")
    parser.add_argument("--master-port", type=int, default=None,
                        help="port rank 0 listens on (default: $MASTER_PORT, else 29500)")
    parser.add_argument("--ifname", default=None,
                        help="network interface for gloo; sets GLOO_SOCKET_IFNAME (default: "
                             "leave it as it is)")
    parser.add_argument("--timeout", type=float, default=120,
                        help="seconds to wait for all ranks to join, and for each collective "
                             "(default 120)")
    parser.add_argument("--output-dir", default=os.environ.get("DROVER_OUTPUT_DIR") or "outputs",
                        help="where rank 0 saves model.pt (default: $DROVER_OUTPUT_DIR, else "
                             "./outputs)")
    return parser.parse_args()


def first_env(names, default):
    for name in names:
        value = os.environ.get(name)
        if value not in (None, ""):
            return value
    return default


def fail(rank, message):
    print(f"rank {rank}: error: {message}", file=sys.stderr, flush=True)
    sys.exit(1)


def topology(args):
    """Rank, world size, local rank, master address and port from the environment."""
    try:
        rank = int(first_env(["RANK", "DROVER_RANK", "OMPI_COMM_WORLD_RANK"], "0"))
        world = int(first_env(["WORLD_SIZE", "DROVER_WORLD_SIZE", "OMPI_COMM_WORLD_SIZE"], "1"))
        local_rank = int(first_env(
            ["LOCAL_RANK", "DROVER_LOCAL_RANK", "OMPI_COMM_WORLD_LOCAL_RANK"], "0"))
        local_size = int(first_env(
            ["LOCAL_WORLD_SIZE", "OMPI_COMM_WORLD_LOCAL_SIZE"], str(world)))
    except ValueError as e:
        fail("?", f"bad rank or size variable: {e}")
    if world < 1 or not 0 <= rank < world:
        fail(rank, f"rank {rank} is not within world size {world}")

    if args.master_addr:
        addr, source = args.master_addr, "--master-addr"
    elif os.environ.get("MASTER_ADDR"):
        addr, source = os.environ["MASTER_ADDR"], "$MASTER_ADDR"
    elif world == 1 or local_size == world:
        addr, source = "127.0.0.1", "the default for one machine"
    else:
        addr, source = mpirun_address(rank), "mpirun's OMPI_MCA_orte_hnp_uri"
    port = args.master_port or int(os.environ.get("MASTER_PORT") or 29500)
    return rank, world, local_rank, addr, port, source


def mpirun_address(rank):
    """Under mpirun on several machines: the address of mpirun's host, where rank 0 runs when
    that host comes first in the hostfile (as with Drover's mpi backend)."""
    hnp = os.environ.get("OMPI_MCA_orte_hnp_uri", "")
    # "JOBID.VPID;tcp://10.0.0.1,10.1.0.1:PORT;tcp6://[...]:PORT"; take the first IPv4 one.
    addr = next((part[len("tcp://"):].rsplit(":", 1)[0].split(",")[0]
                 for part in hnp.split(";") if part.startswith("tcp://")), None)
    if not addr:
        fail(rank, "no rendezvous address: the processes run on more than one machine, but "
                   "MASTER_ADDR is not set; pass --master-addr HOST_OF_RANK_0 (under mpirun, "
                   "or export MASTER_ADDR with mpirun -x MASTER_ADDR)")
    if rank == 0 and os.environ.get("OMPI_MCA_orte_local_daemon_uri", hnp) != hnp:
        fail(rank, "no rendezvous address: MASTER_ADDR is not set and rank 0 does not run on "
                   "mpirun's host; pass --master-addr HOST_OF_RANK_0 or export MASTER_ADDR with "
                   "mpirun -x MASTER_ADDR")
    return addr


def synthetic_data(samples, features, classes, seed):
    """Points around one centre per class: learnable, but not trivially. Same on every rank."""
    generator = torch.Generator().manual_seed(seed)
    centres = torch.randn(classes, features, generator=generator) * 0.35
    labels = torch.randint(0, classes, (samples,), generator=generator)
    points = centres[labels] + torch.randn(samples, features, generator=generator)
    return points, labels


def parameter_digest(model):
    """SHA-256 of every parameter and buffer, in state_dict order, as 32 bytes."""
    digest = hashlib.sha256()
    for name, tensor in model.state_dict().items():
        digest.update(name.encode())
        digest.update(tensor.detach().cpu().contiguous().numpy().tobytes())
    return digest.digest()


def main():
    args = parse_args()
    rank, world, local_rank, addr, port, source = topology(args)
    host = socket.gethostname()
    # env:// reads these; set them so plain mpirun (OMPI_* only) works too.
    os.environ.update(MASTER_ADDR=addr, MASTER_PORT=str(port), RANK=str(rank),
                      WORLD_SIZE=str(world), LOCAL_RANK=str(local_rank))
    if args.ifname:
        os.environ["GLOO_SOCKET_IFNAME"] = args.ifname
    torch.set_num_threads(args.threads)

    print(f"rank {rank}/{world}: joining at {addr}:{port} (address from {source}; gloo, "
          f"local rank {local_rank}, timeout {args.timeout:g}s)", flush=True)
    started = time.time()
    try:
        dist.init_process_group("gloo", init_method="env://", rank=rank, world_size=world,
                                timeout=datetime.timedelta(seconds=args.timeout))
    except Exception as e:  # RuntimeError on timeout, ValueError on bad variables
        ifname = os.environ.get("GLOO_SOCKET_IFNAME")
        hint = f"GLOO_SOCKET_IFNAME={ifname}" if ifname else "GLOO_SOCKET_IFNAME is not set"
        fail(rank, f"could not join the process group at {addr}:{port} as rank {rank} of "
                   f"{world} within {args.timeout:g}s ({hint}): {e}")
    print(f"rank {rank}/{world} on {host} ready", flush=True)

    points, labels = synthetic_data(args.samples, args.features, args.classes, args.seed)
    split = int(0.8 * len(points))
    train = TensorDataset(points[:split], labels[:split])
    # Every rank evaluates its own disjoint slice of the test set; the counts are summed.
    test_x, test_y = points[split:][rank::world], labels[split:][rank::world]
    sampler = DistributedSampler(train, num_replicas=world, rank=rank, shuffle=True,
                                 seed=args.seed)
    loader = DataLoader(train, batch_size=args.batch_size, sampler=sampler)

    torch.manual_seed(args.seed)  # the same initial weights everywhere (DDP also broadcasts)
    model = DistributedDataParallel(
        nn.Sequential(nn.Linear(args.features, 64), nn.ReLU(), nn.Linear(64, args.classes)))
    optimizer = torch.optim.SGD(model.parameters(), lr=args.lr, momentum=0.9)
    loss_fn = nn.CrossEntropyLoss()

    if rank == 0:
        print(f"training on {split} samples ({len(sampler)} per rank) for {args.epochs} "
              f"epochs, {world} ranks", flush=True)
    for epoch in range(1, args.epochs + 1):
        epoch_started = time.time()
        sampler.set_epoch(epoch)
        model.train()
        totals = torch.zeros(5, dtype=torch.float64)  # loss sum, correct, seen, test ok, test n
        for x, y in loader:
            optimizer.zero_grad()
            out = model(x)
            loss = loss_fn(out, y)
            loss.backward()
            optimizer.step()
            totals[0] += loss.item() * len(y)
            if run is not None:
                run.log("batch_loss", loss.item())  # every rank: its own batches
            totals[1] += (out.argmax(dim=1) == y).sum().item()
            totals[2] += len(y)
        model.eval()
        with torch.no_grad():
            totals[3] = (model.module(test_x).argmax(dim=1) == test_y).sum().item()
            totals[4] = len(test_y)
        dist.all_reduce(totals, op=dist.ReduceOp.SUM)
        if rank == 0 and run is not None:
            run.log("loss", (totals[0] / totals[2]).item(), step=epoch)
            run.log("accuracy", (totals[1] / totals[2]).item(), step=epoch)
            run.log("test_accuracy", (totals[3] / max(totals[4].item(), 1)).item(), step=epoch)
        if rank == 0:
            print(f"epoch {epoch}/{args.epochs}: loss={totals[0] / totals[2]:.4f} "
                  f"accuracy={totals[1] / totals[2]:.3f} "
                  f"test_accuracy={totals[3] / max(totals[4].item(), 1):.3f} "
                  f"({time.time() - epoch_started:.2f}s)", flush=True)

    # Are the weights bit-for-bit the same everywhere? Gather every rank's digest.
    mine = torch.tensor(list(parameter_digest(model.module)), dtype=torch.int64)
    everyone = [torch.zeros_like(mine) for _ in range(world)]
    dist.all_gather(everyone, mine)
    digests = [bytes(t.tolist()).hex() for t in everyone]
    if len(set(digests)) != 1:
        groups = {}
        for r, d in enumerate(digests):
            groups.setdefault(d[:16], []).append(r)
        detail = "; ".join(f"ranks {ranks}: checksum={d}" for d, ranks in groups.items())
        dist.destroy_process_group()
        fail(rank, f"parameters differ between the {world} ranks: {detail}")
    print(f"parameters identical on all {world} ranks: checksum={digests[0][:16]}", flush=True)

    if rank == 0:
        os.makedirs(args.output_dir, exist_ok=True)
        path = os.path.join(args.output_dir, "model.pt")
        torch.save(model.module.state_dict(), path)
        print(f"saved {path}", flush=True)
    dist.barrier()
    dist.destroy_process_group()
    if rank == 0:
        print(f"done, {time.time() - started:.1f}s after joining", flush=True)


if __name__ == "__main__":
    main()
