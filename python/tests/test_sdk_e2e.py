"""End-to-end tests of the client SDK against a real droverd and drover-agent of the build
(sdk_cluster.py): runs in real runc containers on the host image, a HOSTPATH datastore.
Root only; run by ctest as python_sdk_e2e_test (label e2e) with PYTHONPATH=<build>/python
and DROVER_BUILD_DIR=<build>.
"""

import contextlib
import io
import os
import textwrap
import time

import pytest

from drover import (ComputeTarget, Datastore, Estimator, Experiment, ParameterError, Run,
                    RunFailedError, ServerError)
from drover.train.dnn import PyTorch

pytestmark = pytest.mark.skipif(os.geteuid() != 0, reason="runs jobs in runc containers: root only")


@pytest.fixture(scope="module")
def cluster():
    from sdk_cluster import started_cluster

    yield from started_cluster()


@pytest.fixture
def ws(cluster):
    return cluster.ws


def write_project(tmp_path, script: str, name="train.py") -> str:
    folder = tmp_path / "project"
    folder.mkdir(exist_ok=True)
    (folder / name).write_text(textwrap.dedent(script))
    return str(folder)


def wait_for_status(run, wanted, timeout=120):
    deadline = time.monotonic() + timeout
    while run.get_status() not in wanted:
        assert time.monotonic() < deadline, f"{run.id} never reached {wanted}: {run.get_details()}"
        time.sleep(0.2)


TRAIN = """\
import argparse, os, drover
parser = argparse.ArgumentParser()
parser.add_argument("--data")
parser.add_argument("--epochs", type=int)
args = parser.parse_args()
with open(os.path.join(args.data, "train.csv")) as f:
    print("read", f.read().strip(), flush=True)
run = drover.Run.get_context()
labels = run.input_datasets["labels"]
assert labels == os.environ["DROVER_INPUT_labels"], labels
with open(os.path.join(labels, "train.csv")) as f:
    print("input labels at", labels, "read", f.read().strip(), flush=True)
for epoch in range(args.epochs):
    run.log("loss", 1.0 / (epoch + 2))
run.log("accuracy", 0.875)
run.set_tags({"stage": "trained"})
with open(os.path.join(os.environ["DROVER_OUTPUT_DIR"], "model.pt"), "wb") as f:
    f.write(b"weights:" + bytes(range(256)))
print("rank", os.environ["DROVER_RANK"], "done", run.id, flush=True)
"""


def test_single_node_estimator_with_a_datastore_parameter_trains_and_its_model_comes_back(
        cluster, ws, tmp_path):
    data = cluster.add_hostpath_datastore(ws, "datasets")
    os.makedirs(os.path.join(data, "mnist"), exist_ok=True)
    with open(os.path.join(data, "mnist", "train.csv"), "w") as f:
        f.write("1,2,3\n")
    os.chmod(os.path.join(data, "mnist"), 0o755)
    ds = Datastore.get(ws, "datasets")
    assert "datasets" in ws.datastores and ds.datastore_type == "hostpath"
    assert "default" in ws.compute_targets

    est = PyTorch(source_directory=write_project(tmp_path, TRAIN),
                  script_params={"--data": ds.path("mnist"), "--epochs": 3},
                  inputs=[ds.path("mnist").as_download(data_reference_name="labels")],
                  compute_target=ComputeTarget(ws, "default"), entry_script="train.py")
    exp = Experiment(ws, "sdk-e2e")
    run = exp.submit(est, tags={"purpose": "sdk-test"})
    out = io.StringIO()
    with contextlib.redirect_stdout(out):
        details = run.wait_for_completion(show_output=True)
    printed = out.getvalue()
    assert "read 1,2,3\n" in printed, printed + cluster.logs()
    # The input is not an argument: it was copied in and its path given by name.
    assert "input labels at /job/data/datasets/mnist read 1,2,3\n" in printed, printed
    assert f"rank 0 done {run.id}\n" in printed
    assert details["status"] == "Completed" and run.get_status() == "Completed"

    assert run.get_metrics() == {"loss": [0.5, 1 / 3, 0.25], "accuracy": 0.875}
    assert run.get_metrics("accuracy") == {"accuracy": 0.875}
    assert run.get_tags() == {"purpose": "sdk-test", "stage": "trained"}
    assert run.get_file_names() == ["outputs/model.pt"]
    written = run.download_files(prefix="outputs", output_directory=str(tmp_path / "got"))
    assert written == [str(tmp_path / "got" / "outputs" / "model.pt")]
    with open(written[0], "rb") as f:
        assert f.read() == b"weights:" + bytes(range(256))
    single = run.download_file("outputs/model.pt", str(tmp_path / "model.pt"))
    with open(single, "rb") as f:
        assert f.read() == b"weights:" + bytes(range(256))
    assert "<table>" in run._repr_html_() and "Completed" in run._repr_html_()

    # Reattach by id, in any spelling; list the experiment's runs.
    again = Run(exp, run.id)
    assert again.get_status() == "Completed"
    assert Run(exp, run.id[2:]).get_details()["tags"] == {"purpose": "sdk-test"}
    # A client tags the ended run; droverd keeps it, a reattached Run sees it.
    run.tag("reviewed", "yes")
    assert again.get_details()["tags"] == {"purpose": "sdk-test", "reviewed": "yes"}
    run.remove_tags(["reviewed", "never-set"])
    assert again.get_details()["tags"] == {"purpose": "sdk-test"}
    run.tag("reviewed", "yes")
    assert run.get_tags() == {"purpose": "sdk-test", "stage": "trained", "reviewed": "yes"}
    with pytest.raises(ServerError, match=r"tags\['bad key'\]") as bad:
        run.tag("bad key", "x")
    assert bad.value.code == "INVALID_ARGUMENT"
    assert run.id in [r.id for r in exp.get_runs()]
    with pytest.raises(ServerError) as missing:
        Run(exp, "j-987654321")
    assert missing.value.code == "NOT_FOUND"

    # Submitting the same folder again uploads nothing new and runs again.
    out = io.StringIO()
    with contextlib.redirect_stdout(out):
        second = exp.submit(est, show_upload=True)
    assert "already on droverd" in out.getvalue()
    second.wait_for_completion()


def test_a_failing_script_raises_naming_the_failing_rank_and_every_rank_is_shown(ws, tmp_path):
    script = """\
    import os, sys, time
    rank = int(os.environ["DROVER_RANK"])
    print("hello from", rank, flush=True)
    if rank == 0:
        open("rank-0-printed", "w").close()
        time.sleep(60)
    # Rank 1 fails once rank 0 has printed (the ranks of a node share the job's folder).
    deadline = time.time() + 60
    while not os.path.exists("rank-0-printed") and time.time() < deadline:
        time.sleep(0.05)
    sys.exit(3)
    """
    est = Estimator(source_directory=write_project(tmp_path, script), entry_script="train.py",
                    process_count_per_node=2)
    run = Experiment(ws, "sdk-e2e").submit(est)
    out = io.StringIO()
    with contextlib.redirect_stdout(out), pytest.raises(RunFailedError) as failed:
        run.wait_for_completion(show_output=True)
    assert "rank 1" in str(failed.value) and "code 3" in str(failed.value), str(failed.value)
    assert failed.value.state == "Failed" and failed.value.cause == "PROCESS_FAILED"
    assert "[rank 0] hello from 0\n" in out.getvalue() and "[rank 1] hello from 1\n" in out.getvalue()
    assert run.get_status() == "Failed"
    assert run.wait_for_completion(raise_on_error=False)["status"] == "Failed"


def test_cancel_ends_a_running_run(ws, tmp_path):
    est = Estimator(source_directory=write_project(tmp_path, "import time\ntime.sleep(600)\n"),
                    entry_script="train.py")
    run = Experiment(ws, "sdk-e2e").submit(est)
    wait_for_status(run, ("Running",))
    run.cancel("test")
    with pytest.raises(RunFailedError) as canceled:
        run.wait_for_completion()
    assert canceled.value.state == "Canceled"
    assert run.get_status() == "Canceled"


def test_bad_parameters_raise_before_anything_is_uploaded_and_server_errors_name_the_field(
        ws, tmp_path):
    exp = Experiment(ws, "sdk-bad")
    folder = write_project(tmp_path, "print('never')\n")
    with pytest.raises(ParameterError, match="^distributed_backend:"):
        Estimator(source_directory=folder, entry_script="train.py", node_count=2)
    with pytest.raises(ParameterError, match="^tags:"):
        exp.submit(Estimator(source_directory=folder, entry_script="train.py"),
                   tags={"no spaces": "x"})
    assert list(exp.get_runs()) == [], "a refused submit created a run"
    # What only droverd can check comes back with droverd's message.
    with pytest.raises(ServerError) as refused:
        exp.submit(Estimator(entry_script="train.py", compute_target="no-such-target"))
    assert "no-such-target" in refused.value.message, refused.value.message
    with pytest.raises(ServerError) as refused:
        exp.submit(Estimator(entry_script="train.py",
                             script_params={"--d": Datastore(ws, "not-registered")}))
    assert "not-registered" in refused.value.message, refused.value.message


def test_the_cli_and_the_sdk_pack_a_folder_into_the_same_snapshot(cluster, ws, tmp_path):
    import subprocess

    from drover import snapshot

    folder = write_project(tmp_path, "print('same')\n")
    os.makedirs(os.path.join(folder, "pkg", "d" * 90))
    with open(os.path.join(folder, "pkg", "d" * 90, "e" * 40 + ".py"), "w") as f:
        f.write("x = 1\n")
    with open(os.path.join(folder, ".gitignore"), "w") as f:
        f.write("*.pyc\n")
    with open(os.path.join(folder, "skip.pyc"), "w") as f:
        f.write("no")
    os.symlink("train.py", os.path.join(folder, "link"))
    env = dict(os.environ, DROVER_SERVER=cluster.address, DROVER_TOKEN=cluster.token,
               DROVER_CA=cluster.ca, XDG_RUNTIME_DIR=cluster.runtime_dir)
    submitted = subprocess.run([os.path.join(cluster.build_dir, "cli", "drover"), "submit",
                                "--experiment", "sdk-e2e", "--source", folder, "train.py"],
                               env=env, capture_output=True, text=True, timeout=120)
    assert submitted.returncode == 0, submitted.stderr
    run = Run(Experiment(ws, "sdk-e2e"), submitted.stdout.strip())
    built = snapshot.build(folder)
    os.unlink(built.path)
    assert run.get_details()["spec"]["source_snapshot"] == built.digest
    run.wait_for_completion()
