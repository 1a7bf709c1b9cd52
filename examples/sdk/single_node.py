#!/usr/bin/env python3
"""Single-node PyTorch training with Drover's Python SDK, written as estimator users write it.

Submits examples/pytorch-single-node/train.py (a small classifier on synthetic data), with
a datastore's root mounted as --data-dir when --datastore names one, follows every line of
its output live, prints its metrics and downloads outputs/model.pt.

    python3 examples/sdk/single_node.py [--target default] [--datastore datasets] [--gpu]

Connects as the drover CLI does: the config file `drover login` writes, or DROVER_SERVER,
DROVER_TOKEN and DROVER_CA. Needs the SDK: pip install ./python (or
PYTHONPATH=build/release/python).
"""

import argparse
import os

from drover import ComputeTarget, Datastore, Experiment, Workspace
from drover.train.dnn import PyTorch

EXAMPLES = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--target", default="default", help="compute target (default: every node)")
    parser.add_argument("--datastore", help="a registered datastore to mount as --data-dir")
    parser.add_argument("--gpu", action="store_true", help="run on a GPU")
    parser.add_argument("--epochs", type=int, default=3)
    parser.add_argument("--download", default="sdk-single-node-outputs",
                        help="folder the outputs are downloaded to")
    args = parser.parse_args()

    ws = Workspace.from_config()
    compute_target = ComputeTarget(ws, args.target)
    script_params = {"--epochs": args.epochs}
    if args.datastore:
        ds = Datastore.get(ws, args.datastore)
        script_params["--data-dir"] = ds
    pt_est = PyTorch(source_directory=os.path.join(EXAMPLES, "pytorch-single-node"),
                     script_params=script_params,
                     compute_target=compute_target,
                     entry_script="train.py",
                     use_gpu=args.gpu,
                     memory_mib=2048)
    exp = Experiment(ws, "sdk-examples")
    run = exp.submit(pt_est, tags={"example": "single-node"})
    print(f"submitted {run.id}", flush=True)
    run.wait_for_completion(show_output=True)
    latest = {name: values[-1] if isinstance(values, list) else values
              for name, values in run.get_metrics().items()}
    print("metrics (latest values):", latest)
    for path in run.download_files(prefix="outputs/model.pt", output_directory=args.download):
        print("downloaded", path)


if __name__ == "__main__":
    main()
