"""End-to-end tests of distributed estimators: 2 nodes x 1 process under the mpi and pytorch
backends, on two test hosts (deploy/testhosts.sh) each with a drover-agent of the build
(sdk_cluster.py, hosts=2). Root only; run by ctest as python_sdk_distributed_e2e_test
(label e2e) with PYTHONPATH=<build>/python and DROVER_BUILD_DIR=<build>.
"""

import contextlib
import io
import os
import textwrap

import pytest

from drover import Experiment, RunFailedError
from drover.train.dnn import PyTorch

pytestmark = pytest.mark.skipif(os.geteuid() != 0, reason="test hosts and runc: root only")

# Every rank sums its rank + 1 with the others' (Open MPI through mpi4py, or
# torch.distributed with gloo), prints it and logs it.
TRAIN = """\
import argparse, os, socket, drover
parser = argparse.ArgumentParser()
parser.add_argument("--backend")
parser.add_argument("--fail-rank", type=int, default=-1)
args = parser.parse_args()
if args.backend == "mpi":
    from mpi4py import MPI
    comm = MPI.COMM_WORLD
    rank, world = comm.Get_rank(), comm.Get_size()
    total = comm.allreduce(rank + 1)
else:
    import torch, torch.distributed as dist
    dist.init_process_group("gloo")
    rank, world = dist.get_rank(), dist.get_world_size()
    t = torch.tensor([rank + 1.0])
    dist.all_reduce(t)
    total = int(t.item())
print(f"rank {rank} of {world} on {socket.gethostname()}: sum {total}", flush=True)
if rank == args.fail_rank:
    raise SystemExit(5)
if rank == 0:
    drover.Run.get_context().log("sum", total)
"""


@pytest.fixture(scope="module")
def cluster():
    from sdk_cluster import started_cluster

    yield from started_cluster(hosts=2)


def estimator(tmp_path, backend, **more):
    folder = tmp_path / "project"
    folder.mkdir(exist_ok=True)
    (folder / "train.py").write_text(textwrap.dedent(TRAIN))
    return PyTorch(source_directory=str(folder), entry_script="train.py",
                   script_params={"--backend": backend, **more}, node_count=2,
                   process_count_per_node=1, distributed_backend=backend, cpu_count=1,
                   memory_mib=1536, shm_size="256m",
                   # Horovod's build is covered by tests/e2e/horovod_e2e_test.cc; these jobs
                   # test the ranks' start and output under both backends.
                   horovod=False)


@pytest.mark.parametrize("backend", ["mpi", "pytorch"])
def test_two_nodes_one_process_each_run_and_every_rank_is_shown(cluster, tmp_path, backend):
    run = Experiment(cluster.ws, "sdk-distributed").submit(estimator(tmp_path, backend))
    out = io.StringIO()
    with contextlib.redirect_stdout(out):
        run.wait_for_completion(show_output=True)
    printed = out.getvalue()
    for rank in (0, 1):
        assert f"[rank {rank}] rank {rank} of 2 on " in printed, printed + cluster.logs()
    assert printed.count(": sum 3\n") == 2, printed
    assert run.get_metrics() == {"sum": 3.0}
    nodes = run.get_details()["nodes"]
    assert sorted(nodes) == sorted(cluster.host_names)


@pytest.mark.parametrize("backend", ["mpi", "pytorch"])
def test_a_failing_rank_of_a_distributed_run_is_named(cluster, tmp_path, backend):
    run = Experiment(cluster.ws, "sdk-distributed").submit(
        estimator(tmp_path, backend, **{"--fail-rank": 1}))
    with pytest.raises(RunFailedError) as failed:
        run.wait_for_completion()
    assert "rank 1" in str(failed.value), str(failed.value)
