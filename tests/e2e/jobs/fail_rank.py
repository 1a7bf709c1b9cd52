"""One rank fails, the others would run on: checks that one failing rank ends the whole job.

The rank given by --rank (default 1) prints

    rank R of W: failing with exit code C

and exits with code C (--code, default 3) after --delay seconds (default 0). Every other
rank prints

    rank R of W: sleeping up to S s

and sleeps for --sleep seconds (default 60), then prints "rank R of W: slept S s, nobody
stopped me" and exits 0, which a test of the teardown treats as a failure. A rank stopped by
SIGTERM prints "rank R of W: got SIGTERM" and exits 143.

The rank comes from DROVER_RANK, OMPI_COMM_WORLD_RANK or RANK (first set wins), the world
size likewise from DROVER_WORLD_SIZE, OMPI_COMM_WORLD_SIZE or WORLD_SIZE. Standard library
only; works under the none, mpi and pytorch backends and under plain mpirun.
"""

import argparse
import os
import signal
import sys
import time


def first_env(names, default):
    for name in names:
        value = os.environ.get(name)
        if value not in (None, ""):
            return value
    return default


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rank", type=int, default=1, help="the rank that fails (default 1)")
    parser.add_argument("--code", type=int, default=3, help="its exit code (default 3)")
    parser.add_argument("--sleep", type=float, default=60,
                        help="how long the other ranks sleep, in seconds (default 60)")
    parser.add_argument("--delay", type=float, default=0,
                        help="seconds the failing rank waits before exiting (default 0)")
    args = parser.parse_args()

    rank = int(first_env(["DROVER_RANK", "OMPI_COMM_WORLD_RANK", "RANK"], "0"))
    world = int(first_env(["DROVER_WORLD_SIZE", "OMPI_COMM_WORLD_SIZE", "WORLD_SIZE"], "1"))
    me = f"rank {rank} of {world}"

    def on_term(signum, frame):
        print(f"{me}: got SIGTERM", flush=True)
        sys.exit(128 + signal.SIGTERM)

    signal.signal(signal.SIGTERM, on_term)

    if rank == args.rank:
        if args.delay > 0:
            time.sleep(args.delay)
        print(f"{me}: failing with exit code {args.code}", flush=True)
        sys.exit(args.code)
    print(f"{me}: sleeping up to {args.sleep:g} s", flush=True)
    time.sleep(args.sleep)
    print(f"{me}: slept {args.sleep:g} s, nobody stopped me", flush=True)


if __name__ == "__main__":
    main()
