"""A gang that shows which attempt each of its ranks belongs to, then trains for a while.

Every rank joins the process group (torch.distributed, gloo, env://), gathers DROVER_ATTEMPT
from every rank and prints

    rank R of W attempt A: the group holds attempts [A0, A1, ...]

(a rank of another attempt that joined the group would show there, or break the
rendezvous), then runs --steps allreduce steps --interval seconds apart, printing
"rank R attempt A step S sum=X" for each, and finally "rank R attempt A: done". A rank whose
peers vanish fails with the error torch raises.
"""

import argparse
import datetime
import os
import time

import torch
import torch.distributed as dist


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=40, help="allreduce steps (default 40)")
    parser.add_argument("--interval", type=float, default=0.5,
                        help="seconds between steps (default 0.5)")
    args = parser.parse_args()

    attempt = int(os.environ["DROVER_ATTEMPT"])
    dist.init_process_group("gloo", init_method="env://",
                            timeout=datetime.timedelta(seconds=60))
    rank, world = dist.get_rank(), dist.get_world_size()
    me = f"rank {rank} of {world} attempt {attempt}"
    attempts = [torch.zeros(1, dtype=torch.int64) for _ in range(world)]
    dist.all_gather(attempts, torch.tensor([attempt], dtype=torch.int64))
    print(f"{me}: the group holds attempts {[int(a.item()) for a in attempts]}", flush=True)
    for step in range(args.steps):
        value = torch.tensor([float(rank + 1)])
        dist.all_reduce(value)
        print(f"rank {rank} attempt {attempt} step {step} sum={value.item():g}", flush=True)
        time.sleep(args.interval)
    dist.barrier()
    print(f"rank {rank} attempt {attempt}: done", flush=True)


if __name__ == "__main__":
    main()
