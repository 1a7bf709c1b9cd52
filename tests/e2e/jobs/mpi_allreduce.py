"""MPI smoke test for Drover's mpi backend: an allreduce SUM of (rank + 1) over all ranks.

Every rank prints exactly one line

    rank R of W: allreduce sum=S expected=E ok

where E = W * (W + 1) / 2, and exits 0; a rank whose sum is wrong prints the same line
ending in "MISMATCH" (on stderr) and exits 1. Run with Debian's interpreter, which has mpi4py:

    mpirun -np 4 /usr/bin/python3 mpi_allreduce.py

With --wait-for FILE, every rank first prints "R: 1", "R: 2", ... every 20 ms until FILE
exists (on its node), then reduces.
"""

import argparse
import os
import socket
import sys
import time

from mpi4py import MPI


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--wait-for", help="count until this file exists, then reduce")
    args = parser.parse_args()
    comm = MPI.COMM_WORLD
    rank, world = comm.Get_rank(), comm.Get_size()
    if args.wait_for:
        i = 0
        while not os.path.exists(args.wait_for):
            i += 1
            print(f"{rank}: {i}", flush=True)
            time.sleep(0.02)
    total = comm.allreduce(rank + 1, op=MPI.SUM)
    expected = world * (world + 1) // 2
    line = f"rank {rank} of {world}: allreduce sum={total} expected={expected}"
    if total != expected:
        print(f"{line} MISMATCH (on {socket.gethostname()})", file=sys.stderr, flush=True)
        sys.exit(1)
    print(f"{line} ok", flush=True)


if __name__ == "__main__":
    main()
