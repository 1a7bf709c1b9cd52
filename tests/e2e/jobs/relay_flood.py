"""Floods the MPI exec relay's Unix socket (issue 16: 1,500 connections once made 1,513
agent threads). Opens up to --connections connections to the relay, all at once, and keeps
them open; a connection the agent serves waits for a request (nothing is sent), one it
refuses gets an error frame ('F') and is closed. Prints one line

    held=H refused=R failed=F

(F: connections this process could not even open, its own file limit), then waits until
/job/go exists, closes everything and exits 0.
"""

import argparse
import os
import resource
import select
import socket
import time

SOCKET = "/run/drover-mpi/relay/exec.sock"


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--connections", type=int, default=1500)
    args = parser.parse_args()
    _, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
    connections = []
    failed = 0
    for _ in range(args.connections):
        try:
            s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        except OSError:
            failed += 1
            continue
        try:
            s.connect(SOCKET)
        except OSError:
            failed += 1
            s.close()
            continue
        connections.append(s)
    # Answered connections become readable; the served ones stay silent.
    poller = select.poll()
    by_fd = {s.fileno(): s for s in connections}
    for fd in by_fd:
        poller.register(fd, select.POLLIN)
    answered = set()
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        for fd, _ in poller.poll(500):
            answered.add(fd)
            poller.unregister(fd)
        if len(connections) - len(answered) <= 256 and time.monotonic() > deadline - 8:
            break
    refused = sum(1 for fd in answered if by_fd[fd].recv(1) == b"F")
    held = len(connections) - len(answered)
    print(f"held={held} refused={refused} failed={failed}", flush=True)
    while not os.path.exists("/job/go"):
        time.sleep(0.05)
    for s in connections:
        s.close()


if __name__ == "__main__":
    main()
