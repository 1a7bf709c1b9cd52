"""Trains a small classifier on synthetic data with PyTorch, estimator-style.

Runs the same on a laptop and under Drover:

    python3 train.py --epochs 3 --output-dir ./outputs
    drover submit --source . --memory 2Gi -- train.py --epochs 3

Under Drover, every process gets DROVER_RANK, DROVER_WORLD_SIZE and DROVER_OUTPUT_DIR; what
the script saves in the output folder comes back with `drover download JOB`.
"""

import argparse
import json
import os
import time

import torch
from torch import nn

try:
    # Drover puts its `drover` module in every job container (docs/metrics.md); elsewhere
    # the script runs without it (or with `PYTHONPATH=<drover>/python`, printing the values).
    import drover
    run = drover.Run.get_context()
except ImportError:
    run = None


def parse_args():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--epochs", type=int, default=3)
    parser.add_argument("--batch-size", type=int, default=64)
    parser.add_argument("--learning-rate", type=float, default=0.05)
    parser.add_argument("--samples", type=int, default=4096)
    parser.add_argument("--features", type=int, default=20)
    parser.add_argument("--classes", type=int, default=4)
    parser.add_argument("--seed", type=int, default=7)
    parser.add_argument("--data-dir", default=None,
                        help="a data folder (a datastore under Drover): its files are listed; "
                             "the training data stays synthetic")
    parser.add_argument(
        "--output-dir",
        default=os.environ.get("DROVER_OUTPUT_DIR", "outputs"),
        help="where the model and metrics go (default: $DROVER_OUTPUT_DIR, else ./outputs)",
    )
    return parser.parse_args()


def synthetic_data(samples, features, classes, seed):
    """Points around one centre per class: learnable, but not trivially."""
    generator = torch.Generator().manual_seed(seed)
    centres = torch.randn(classes, features, generator=generator) * 0.35
    labels = torch.randint(0, classes, (samples,), generator=generator)
    points = centres[labels] + torch.randn(samples, features, generator=generator)
    return points, labels


def main():
    args = parse_args()
    rank = int(os.environ.get("DROVER_RANK", "0"))
    world = int(os.environ.get("DROVER_WORLD_SIZE", "1"))
    torch.manual_seed(args.seed + rank)
    torch.set_num_threads(1)
    if args.data_dir is not None:
        names = sorted(os.listdir(args.data_dir))
        print(f"data dir {args.data_dir}: {len(names)} entries {names[:5]}", flush=True)

    points, labels = synthetic_data(args.samples, args.features, args.classes, args.seed)
    split = int(0.8 * len(points))
    train_x, train_y = points[:split], labels[:split]
    test_x, test_y = points[split:], labels[split:]

    model = nn.Sequential(nn.Linear(args.features, 64), nn.ReLU(), nn.Linear(64, args.classes))
    optimizer = torch.optim.SGD(model.parameters(), lr=args.learning_rate, momentum=0.9)
    loss_fn = nn.CrossEntropyLoss()

    print(f"rank {rank}/{world}: training on {len(train_x)} samples for {args.epochs} epochs",
          flush=True)
    history = []
    for epoch in range(1, args.epochs + 1):
        started = time.time()
        model.train()
        order = torch.randperm(len(train_x))
        total = 0.0
        for start in range(0, len(train_x), args.batch_size):
            batch = order[start:start + args.batch_size]
            optimizer.zero_grad()
            loss = loss_fn(model(train_x[batch]), train_y[batch])
            loss.backward()
            optimizer.step()
            total += loss.item() * len(batch)
        model.eval()
        with torch.no_grad():
            accuracy = (model(test_x).argmax(dim=1) == test_y).float().mean().item()
        epoch_loss = total / len(train_x)
        history.append({"epoch": epoch, "loss": epoch_loss, "accuracy": accuracy})
        if run is not None:
            run.log("loss", epoch_loss, step=epoch)
            run.log("accuracy", accuracy, step=epoch)
        print(f"epoch {epoch}: loss={epoch_loss:.4f} accuracy={accuracy:.3f} "
              f"({time.time() - started:.2f}s)", flush=True)

    if rank == 0:
        os.makedirs(args.output_dir, exist_ok=True)
        torch.save(model.state_dict(), os.path.join(args.output_dir, "model.pt"))
        with open(os.path.join(args.output_dir, "metrics.json"), "w") as f:
            json.dump(history, f, indent=2)
        print(f"saved model.pt and metrics.json to {args.output_dir}", flush=True)


if __name__ == "__main__":
    main()
