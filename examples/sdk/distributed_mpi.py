#!/usr/bin/env python3
"""Distributed PyTorch training with Drover's Python SDK: 2 nodes x 1 process, backend mpi.

Submits examples/distributed-pytorch/train.py (data-parallel training, DDP over gloo) with
`node_count=2, process_count_per_node=1, distributed_backend='mpi'`: mpirun on the first
node starts a process on each node (Horovod's way). Follows every rank's output live
(prefixed `[rank N]`), prints the metrics and downloads outputs/model.pt.

    python3 examples/sdk/distributed_mpi.py [--target default] [--nodes 2] [--epochs 3]

Connects as the drover CLI does (drover login, or DROVER_SERVER, DROVER_TOKEN, DROVER_CA).
"""

import argparse
import os

from drover import ComputeTarget, Experiment, Workspace
from drover.train.dnn import PyTorch

EXAMPLES = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
BACKEND = "mpi"


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--target", default="default", help="compute target (default: every node)")
    parser.add_argument("--nodes", type=int, default=2)
    parser.add_argument("--epochs", type=int, default=3)
    parser.add_argument("--download", default=f"sdk-distributed-{BACKEND}-outputs")
    args = parser.parse_args()

    ws = Workspace.from_config()
    pt_est = PyTorch(source_directory=os.path.join(EXAMPLES, "distributed-pytorch"),
                     script_params={"--epochs": args.epochs},
                     compute_target=ComputeTarget(ws, args.target),
                     entry_script="train.py",
                     node_count=args.nodes,
                     process_count_per_node=1,
                     distributed_backend=BACKEND,
                     cpu_count=1, memory_mib=1536, shm_size="256m",
                     environment_variables={"OMP_NUM_THREADS": 1},
                     max_run_duration_seconds=600)
    run = Experiment(ws, "sdk-examples").submit(pt_est, tags={"example": f"distributed-{BACKEND}"})
    print(f"submitted {run.id}", flush=True)
    run.wait_for_completion(show_output=True)
    latest = {name: values[-1] if isinstance(values, list) else values
              for name, values in run.get_metrics().items()}
    print("metrics (latest values):", latest)
    for path in run.download_files(prefix="outputs/model.pt", output_directory=args.download):
        print("downloaded", path)


if __name__ == "__main__":
    main()
