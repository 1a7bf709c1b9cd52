"""MPI smoke test for Drover's mpi backend: an allreduce SUM of (rank + 1) over all ranks.

Every rank prints exactly one line

    rank R of W: allreduce sum=S expected=E ok

where E = W * (W + 1) / 2, and exits 0; a rank whose sum is wrong prints the same line
ending in "MISMATCH" (on stderr) and exits 1. Run with Debian's interpreter, which has mpi4py:

    mpirun -np 4 /usr/bin/python3 mpi_allreduce.py
"""

import socket
import sys

from mpi4py import MPI


def main():
    comm = MPI.COMM_WORLD
    rank, world = comm.Get_rank(), comm.Get_size()
    total = comm.allreduce(rank + 1, op=MPI.SUM)
    expected = world * (world + 1) // 2
    line = f"rank {rank} of {world}: allreduce sum={total} expected={expected}"
    if total != expected:
        print(f"{line} MISMATCH (on {socket.gethostname()})", file=sys.stderr, flush=True)
        sys.exit(1)
    print(f"{line} ok", flush=True)


if __name__ == "__main__":
    main()
