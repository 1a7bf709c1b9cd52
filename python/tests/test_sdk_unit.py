"""Unit tests of the client SDK without a server: every estimator parameter's JobSpec field,
the checks that refuse bad parameters before anything is sent, the config file, snapshots,
and that `import drover` in a job needs no grpcio.

Run by ctest (python_sdk_unit_test) with PYTHONPATH=<build>/python, where the stubs are.
"""

import hashlib
import os
import subprocess
import sys
import tarfile
import tempfile
import types

import pytest

import drover
from drover import _config, snapshot
from drover.data import DataReference
from drover.estimator import Estimator
from drover.exceptions import DroverError, ParameterError, ServerError
from drover.experiment import Experiment
from drover.train.dnn import PyTorch
from drover.v1 import job_pb2
from drover.workspace import ComputeTarget, Datastore


@pytest.fixture
def project(tmp_path):
    (tmp_path / "train.py").write_text("print('hi')\n")
    return str(tmp_path)


def spec_of(**kwargs):
    kwargs.setdefault("entry_script", "train.py")
    return Estimator(**kwargs).to_job_spec("mnist")


# ---- every parameter becomes its JobSpec field

def test_defaults_fill_only_required_fields():
    spec = spec_of()
    assert spec.entry_script == "train.py"
    assert spec.experiment == "mnist"
    assert spec.compute_target == "default"
    assert spec.node_count == 1 and spec.process_count_per_node == 1
    assert spec.distributed_backend == job_pb2.JobSpec.NONE
    assert not spec.HasField("max_run_duration")
    assert not spec.HasField("resources")
    assert spec.resources.shm_mib == 0 and spec.resources.gpus == 0
    assert spec.environment.image == "" and not spec.environment.use_gpu
    assert list(spec.arguments) == [] and list(spec.outputs) == []


def test_script_params_become_arguments_in_order():
    ds = Datastore(None, "datasets")
    spec = spec_of(script_params={
        "--data": ds.path("mnist"), "--root": ds, "--copy": ds.path("a/b").as_download(),
        "--out": ds.path("runs/1").as_upload(), "--rw": ds.path("x").as_mount(read_write=True),
        "--epochs": 10, "--lr": 0.5, "--name": "resnet", "--verbose": None, "--fast": True,
        "--skip": False, "--sizes": [1, 2]},
        arguments=["--tail", ds.as_download()])

    def show(a):
        if a.HasField("data"):
            return (a.data.datastore, a.data.path, job_pb2.DataReference.Mode.Name(a.data.mode),
                    a.data.read_write)
        return a.value

    assert [show(a) for a in spec.arguments] == [
        "--data", ("datasets", "mnist", "MOUNT", False),
        "--root", ("datasets", "", "MOUNT", False),
        "--copy", ("datasets", "a/b", "DOWNLOAD", False),
        "--out", ("datasets", "runs/1", "UPLOAD", False),
        "--rw", ("datasets", "x", "MOUNT", True),
        "--epochs", "10", "--lr", "0.5", "--name", "resnet", "--verbose", "--fast",
        "--sizes", "1", "2",
        "--tail", ("datasets", "", "DOWNLOAD", False)]


def test_every_scalar_parameter_reaches_its_field():
    spec = Estimator(entry_script="src/train.py", compute_target=ComputeTarget(None, "gpu"),
                     node_count=2, process_count_per_node=4, distributed_backend="pytorch",
                     use_gpu=True, gpu_count=4, cpu_count=7.5, memory_mib=65536,
                     shm_size="2g", pip_packages=["numpy>=1.24"], conda_packages=["scipy"],
                     environment_variables={"SEED": 1, "MODE": "fast"},
                     secret_environment_variables={"WANDB_KEY": "s3cret"},
                     custom_docker_image="pytorch/pytorch:2.1.0", max_run_duration_seconds=5400.25,
                     outputs=[Datastore(None, "results").path("runs/7")], priority=10,
                     max_retries=3, name="resnet-1"
                     ).to_job_spec("vision", "sha256:" + "a" * 64, {"lr": 0.1}, "key-1")
    assert spec.name == "resnet-1"
    assert spec.experiment == "vision"
    assert dict(spec.tags) == {"lr": "0.1"}
    assert spec.source_snapshot == "sha256:" + "a" * 64
    assert spec.entry_script == "src/train.py"
    assert spec.compute_target == "gpu"
    assert spec.node_count == 2 and spec.process_count_per_node == 4
    assert spec.distributed_backend == job_pb2.JobSpec.PYTORCH
    assert spec.environment.use_gpu and spec.resources.gpus == 4
    assert spec.resources.cpus == 7.5 and spec.resources.memory_mib == 65536
    assert spec.resources.shm_mib == 2048
    assert list(spec.environment.pip_packages) == ["numpy>=1.24"]
    assert list(spec.environment.conda_packages) == ["scipy"]
    assert dict(spec.environment.env) == {"SEED": "1", "MODE": "fast", "WANDB_KEY": "s3cret"}
    assert list(spec.environment.secret_env) == ["WANDB_KEY"]
    assert spec.environment.image == "pytorch/pytorch:2.1.0"
    assert (spec.max_run_duration.seconds, spec.max_run_duration.nanos) == (5400, 250000000)
    assert [(o.datastore, o.path) for o in spec.outputs] == [("results", "runs/7")]
    assert spec.priority == 10 and spec.max_retries == 3
    assert spec.idempotency_key == "key-1"


@pytest.mark.parametrize("backend,value", [(None, job_pb2.JobSpec.NONE),
                                           ("mpi", job_pb2.JobSpec.MPI),
                                           ("MPI", job_pb2.JobSpec.MPI),
                                           ("pytorch", job_pb2.JobSpec.PYTORCH)])
def test_distributed_backend(backend, value):
    spec = spec_of(node_count=1 if backend is None else 2, distributed_backend=backend)
    assert spec.distributed_backend == value


@pytest.mark.parametrize("size,mib", [("2g", 2048), ("512m", 512), ("1024k", 1),
                                      ("1GiB", 1024), (1 << 20, 1), (0, 0)])
def test_shm_size_spellings(size, mib):
    assert spec_of(shm_size=size).resources.shm_mib == mib


def test_pytorch_framework_version_adds_torch_to_pip_packages():
    est = PyTorch(entry_script="train.py", framework_version="2.1.0", pip_packages=["numpy"])
    assert list(est.to_job_spec().environment.pip_packages) == ["numpy", "torch==2.1.0"]
    assert list(PyTorch(entry_script="t.py").to_job_spec().environment.pip_packages) == []


def test_pytorch_over_mpi_gets_horovod_unless_told_not_to():
    def horovod(**kw):
        return PyTorch(entry_script="t.py", node_count=2, **kw).to_job_spec().environment.horovod
    assert horovod(distributed_backend="mpi") is True
    assert horovod(distributed_backend="MPI") is True
    assert horovod(distributed_backend="mpi", horovod=False) is False
    assert horovod(distributed_backend="pytorch") is False
    assert Estimator(entry_script="t.py", distributed_backend="mpi").to_job_spec() \
        .environment.horovod is False
    with pytest.raises(ParameterError, match="horovod: .*distributed_backend='mpi'"):
        PyTorch(entry_script="t.py", distributed_backend="pytorch", horovod=True)
    with pytest.raises(ParameterError, match="horovod: must be True or False"):
        Estimator(entry_script="t.py", distributed_backend="mpi", horovod="yes")


def test_inputs_that_are_script_params_are_accepted():
    ds = Datastore(None, "datasets")
    est = Estimator(entry_script="t.py", script_params={"--d": ds}, inputs=[ds])
    assert est.inputs == [ds.as_mount()]
    spec = est.to_job_spec()
    assert spec.arguments[1].data.datastore == "datasets"
    assert [(i.name, i.data.datastore, i.data.mode) for i in spec.inputs] == [
        ("datasets", "datasets", job_pb2.DataReference.MOUNT)]


def test_inputs_become_named_job_spec_inputs():
    ds = Datastore(None, "image-net")
    est = Estimator(entry_script="t.py", inputs=[
        ds.path("train").as_download(),
        ds.path("labels").as_mount(data_reference_name="labels"),
        Datastore(None, "results").as_upload(data_reference_name="out_2")])
    spec = est.to_job_spec()
    assert [(i.name, i.data.datastore, i.data.path, i.data.mode) for i in spec.inputs] == [
        ("image_net", "image-net", "train", job_pb2.DataReference.DOWNLOAD),
        ("labels", "image-net", "labels", job_pb2.DataReference.MOUNT),
        ("out_2", "results", "", job_pb2.DataReference.UPLOAD)]
    assert list(spec.arguments) == []


@pytest.mark.parametrize("name", ["", "1st", "has-dash", "a b", "x" * 64, "DROVER\0", 7])
def test_a_bad_input_name_raises_naming_it(name):
    with pytest.raises(ParameterError, match="data_reference_name"):
        Datastore(None, "datasets").path("x").as_mount(data_reference_name=name)


def test_a_datastore_name_that_cannot_name_an_input_must_be_given_a_name():
    with pytest.raises(ParameterError, match=r"inputs\[0\]: data_reference_name"):
        Estimator(entry_script="t.py", inputs=[Datastore(None, "2020-data").as_mount()])
    est = Estimator(entry_script="t.py",
                    inputs=[Datastore(None, "2020-data").as_mount(data_reference_name="d2020")])
    assert est.to_job_spec().inputs[0].name == "d2020"


def test_input_datasets_in_a_job_come_from_the_environment(monkeypatch):
    monkeypatch.setenv("DROVER_INPUT_train", "/job/data/ds/train")
    monkeypatch.setenv("DROVER_INPUT_", "ignored")
    run = drover.Run(stream=open(os.devnull, "w"))
    assert run.input_datasets == {"train": "/job/data/ds/train"}


def test_source_directory_must_hold_the_entry_script(project):
    assert Estimator(project, entry_script="train.py").source_directory == project


# ---- bad parameters raise, naming the parameter

@pytest.mark.parametrize("kwargs,named", [
    (dict(entry_script=None), "entry_script"),
    (dict(entry_script="/abs/train.py"), "entry_script"),
    (dict(entry_script="../train.py"), "entry_script"),
    (dict(source_directory="/nonexistent/folder"), "source_directory"),
    (dict(node_count=0), "node_count"),
    (dict(node_count=2), "distributed_backend"),
    (dict(node_count="2"), "node_count"),
    (dict(process_count_per_node=257), "process_count_per_node"),
    (dict(distributed_backend="horovod"), "distributed_backend"),
    (dict(gpu_count=2), "gpu_count"),
    (dict(use_gpu="yes"), "use_gpu"),
    (dict(cpu_count=0), "cpu_count"),
    (dict(memory_mib=0), "memory_mib"),
    (dict(shm_size="lots"), "shm_size"),
    (dict(shm_size="1500k"), "shm_size"),
    (dict(pip_packages="torch"), "pip_packages"),
    (dict(pip_packages=["--index-url=x"]), "pip_packages"),
    (dict(conda_packages=["a b"]), "conda_packages"),
    (dict(environment_variables={"DROVER_X": "1"}), "environment_variables"),
    (dict(environment_variables={"1X": "1"}), "environment_variables"),
    (dict(secret_environment_variables={"A": "1"}, environment_variables={"A": "2"}),
     "secret_environment_variables"),
    (dict(custom_docker_image="has space"), "custom_docker_image"),
    (dict(max_run_duration_seconds=-1), "max_run_duration_seconds"),
    (dict(max_run_duration_seconds=400 * 86400), "max_run_duration_seconds"),
    (dict(priority=5000), "priority"),
    (dict(max_retries=-1), "max_retries"),
    (dict(name="-bad"), "name"),
    (dict(compute_target="GPU!"), "compute_target"),
    (dict(compute_target=3), "compute_target"),
    (dict(script_params=["--a"]), "script_params"),
    (dict(script_params={"--a": object()}), "script_params"),
    (dict(arguments="--a 1"), "arguments"),
    (dict(inputs=[DataReference("datasets", "x"), DataReference("datasets", "y")]), "inputs"),
    (dict(inputs=["ds://datasets/x"]), "inputs"),
    (dict(outputs=[Datastore(None, "results")]), "outputs"),
    (dict(outputs=["ds://results/x"]), "outputs"),
])
def test_bad_parameter_raises_naming_it(kwargs, named):
    kwargs.setdefault("entry_script", "train.py")
    with pytest.raises(ParameterError) as raised:
        Estimator(**kwargs)
    message = str(raised.value)
    assert message.startswith(named + ":") or message.startswith(named + "["), message


def test_entry_script_missing_from_source_directory(project):
    with pytest.raises(ParameterError, match="^entry_script: 'eval.py' is not a file"):
        Estimator(project, entry_script="eval.py")


def test_data_reference_paths_are_checked():
    with pytest.raises(ParameterError, match=r"datastore 'd' path: '../x' may not contain"):
        Datastore(None, "d").path("../x")
    with pytest.raises(ParameterError, match="read_write"):
        DataReference("d", "x", "download", read_write=True)
    assert Datastore(None, "d").path("a/b").as_upload().to_url() == "ds://d/a/b?mode=upload"


# ---- submit: checks before upload, upload only when new, one idempotency key

class FakeConnection:
    """Records every call; answers StatBlob with `present`."""

    def __init__(self, present=False):
        self.calls = []
        self.present = present
        self.jobs = types.SimpleNamespace(SubmitJob="SubmitJob", GetJob="GetJob")
        self.blobs = types.SimpleNamespace(StatBlob="StatBlob", UploadBlob="UploadBlob")
        self.uploaded = b""

    def call(self, method, request, **kwargs):
        from drover.v1 import blob_pb2, job_service_pb2

        self.calls.append((method, request))
        if method == "StatBlob":
            return blob_pb2.StatBlobResponse(present=self.present)
        if method == "SubmitJob":
            job = job_pb2.Job(id="j-7", spec=request.spec)
            return job_service_pb2.SubmitJobResponse(job=job, created=True)
        raise AssertionError(method)

    def upload(self, method, requests, **kwargs):
        from drover.v1 import blob_pb2

        self.calls.append((method, None))
        messages = list(requests())
        assert messages[0].HasField("header")
        self.uploaded = b"".join(m.chunk for m in messages[1:])
        assert len(self.uploaded) == messages[0].header.size
        assert "sha256:" + hashlib.sha256(self.uploaded).hexdigest() == messages[0].header.digest
        return blob_pb2.UploadBlobResponse(digest=messages[0].header.digest, created=True)


def fake_experiment(present=False):
    ws = types.SimpleNamespace(_connection=FakeConnection(present))
    return Experiment(ws, "mnist"), ws._connection


def test_submit_uploads_a_new_snapshot_then_submits(project):
    exp, conn = fake_experiment(present=False)
    run = exp.submit(Estimator(project, entry_script="train.py"), tags={"team": "nlp"})
    assert [c[0] for c in conn.calls] == ["StatBlob", "UploadBlob", "SubmitJob"]
    spec = conn.calls[-1][1].spec
    assert spec.source_snapshot == conn.calls[0][1].digest
    assert spec.experiment == "mnist" and dict(spec.tags) == {"team": "nlp"}
    assert spec.idempotency_key.startswith("sdk-")
    assert run.id == "j-7" and run.experiment is exp
    with tarfile.open(fileobj=__import__("io").BytesIO(conn.uploaded)) as tar:
        assert tar.getnames() == ["train.py"]


def test_submit_skips_the_upload_of_a_known_snapshot(project):
    exp, conn = fake_experiment(present=True)
    exp.submit(Estimator(project, entry_script="train.py"), idempotency_key="k1")
    assert [c[0] for c in conn.calls] == ["StatBlob", "SubmitJob"]
    assert conn.calls[-1][1].spec.idempotency_key == "k1"


@pytest.mark.parametrize("tags,named", [({"bad key": 1}, "tags"), ({"k": "x" * 300}, "tags"),
                                        (["a"], "tags")])
def test_bad_tags_raise_before_anything_is_sent(project, tags, named):
    exp, conn = fake_experiment()
    with pytest.raises(ParameterError, match="^" + named + ":"):
        exp.submit(Estimator(project, entry_script="train.py"), tags=tags)
    assert conn.calls == []


def test_submit_refuses_what_is_not_an_estimator():
    exp, conn = fake_experiment()
    with pytest.raises(ParameterError, match="^config:"):
        exp.submit("train.py")
    assert conn.calls == []


def test_experiment_name_is_checked():
    with pytest.raises(ParameterError, match="^name:"):
        Experiment(None, "bad name")


# ---- the config file and DROVER_* variables, as the CLI reads them

def test_settings_come_from_arguments_then_variables_then_the_config_file(tmp_path):
    config = tmp_path / "config"
    config.write_text("# written by drover login\nserver = d:1\nca = /c.crt\ntoken = drv_file\n")
    env = {"DROVER_CONFIG": str(config)}
    assert _config.resolve(env=env)[:3] == ("d:1", "drv_file", "/c.crt")
    env.update(DROVER_SERVER="e:2", DROVER_TOKEN="drv_env", DROVER_CA="/e.crt")
    assert _config.resolve(env=env)[:3] == ("e:2", "drv_env", "/e.crt")
    assert _config.resolve("a:3", "drv_arg", "/a.crt", env=env)[:3] == ("a:3", "drv_arg", "/a.crt")
    assert _config.resolve(env={})[:3] == ("localhost:7070", "", "/etc/drover/ca.crt")
    assert _config.config_path({"HOME": "/h"}) == "/h/.config/drover/config"
    assert _config.config_path({"XDG_CONFIG_HOME": "/x", "HOME": "/h"}) == "/x/drover/config"


def test_workspace_refuses_a_ca_file_without_a_certificate(tmp_path):
    bad = tmp_path / "ca.crt"
    bad.write_text("nothing")
    with pytest.raises(ParameterError, match="^ca: "):
        drover.Workspace(server="localhost:1", ca=str(bad))
    with pytest.raises(ParameterError, match="^token: "):
        drover.Workspace(server="unix:/nonexistent", token="drv bad")


def test_server_errors_carry_the_servers_message():
    import grpc
    from drover._connection import Connection

    class Failed(grpc.RpcError):
        def code(self):
            return grpc.StatusCode.INVALID_ARGUMENT

        def details(self):
            return "job spec: node_count 2000 is out of range (1-1024)"

    conn = Connection(_config.Settings("unix:/nonexistent", "", "", ""))

    def method(request, **kwargs):
        raise Failed()

    with pytest.raises(ServerError) as raised:
        conn.call(method, None)
    assert raised.value.code == "INVALID_ARGUMENT"
    assert raised.value.message == "job spec: node_count 2000 is out of range (1-1024)"


# ---- snapshots

def test_snapshot_is_deterministic_and_honours_ignore_files(tmp_path):
    root = tmp_path / "proj"
    (root / "pkg").mkdir(parents=True)
    (root / ".git").mkdir()
    (root / ".git" / "HEAD").write_text("x")
    (root / "train.py").write_text("a")
    (root / "run.sh").write_text("b")
    os.chmod(root / "run.sh", 0o700)
    (root / "pkg" / "m.py").write_text("c")
    (root / "pkg" / "m.pyc").write_text("d")
    (root / "data").mkdir()
    (root / "data" / "big.bin").write_text("e")
    (root / "pkg" / "keep.pyc").write_text("f")
    (root / ".gitignore").write_text("*.pyc\n/data/\n!keep.pyc\n")
    os.symlink("/etc/passwd", root / "outside")
    os.symlink("train.py", root / "inside")
    with pytest.warns(UserWarning, match="outside"):
        first = snapshot.build(str(root))
    os.utime(root / "train.py", (1, 1))
    with pytest.warns(UserWarning):
        second = snapshot.build(str(root))
    try:
        assert first.digest == second.digest
        with tarfile.open(first.path) as tar:
            members = {m.name: m for m in tar.getmembers()}
        assert sorted(members) == [".gitignore", "inside", "pkg", "pkg/keep.pyc", "pkg/m.py",
                                   "run.sh", "train.py"]
        assert members["run.sh"].mode == 0o755 and members["train.py"].mode == 0o644
        assert members["pkg"].isdir() and members["inside"].issym()
        assert all(m.mtime == 0 and m.uid == 0 for m in members.values())
        with open(first.path, "rb") as f:
            assert "sha256:" + hashlib.sha256(f.read()).hexdigest() == first.digest
    finally:
        os.unlink(first.path)
        os.unlink(second.path)


def test_droverignore_replaces_gitignore(tmp_path):
    (tmp_path / ".gitignore").write_text("data.csv\n")
    (tmp_path / ".droverignore").write_text("*.log\n")
    (tmp_path / "data.csv").write_text("1")
    (tmp_path / "x.log").write_text("1")
    names = [rel for rel, _ in snapshot.collect(str(tmp_path))]
    assert names == [".droverignore", ".gitignore", "data.csv"]


# ---- in a job: no grpcio needed

def test_import_drover_in_a_job_needs_no_grpcio(tmp_path):
    # A `grpc` and a `google` that fail on import: the in-job API must not touch them.
    for name in ("grpc", "google"):
        (tmp_path / name).mkdir()
        (tmp_path / name / "__init__.py").write_text("raise ImportError('not in the job image')\n")
    metrics = tmp_path / "metrics"
    metrics.mkdir()
    script = ("import drover\n"
              "run = drover.Run.get_context()\n"
              "run.log('loss', 0.5)\n"
              "print(run.id, run.experiment.name, sorted(run.get_tags().items()))\n")
    env = dict(os.environ, PYTHONPATH=f"{tmp_path}{os.pathsep}{os.environ.get('PYTHONPATH', '')}",
               DROVER_METRICS_DIR=str(metrics), DROVER_JOB_ID="j-5", DROVER_RANK="0",
               DROVER_EXPERIMENT="mnist", DROVER_TAGS='{"team": "nlp"}')
    out = subprocess.run([sys.executable, "-c", script], env=env, capture_output=True, text=True)
    assert out.returncode == 0, out.stderr
    assert out.stdout == "j-5 mnist [('team', 'nlp')]\n"
    assert (metrics / "rank-0.metrics").read_text().count('"n":"loss"') == 1


def test_a_client_run_refuses_in_job_calls_and_the_job_run_refuses_client_calls():
    run = drover.Run(stream=open(os.devnull, "w"))
    with pytest.raises(drover.DroverError, match="^get_status:"):
        run.get_status()


def test_run_with_a_path_alone_still_writes_that_metrics_file(tmp_path):
    run = drover.Run(str(tmp_path / "rank-0.metrics"))
    run.log("loss", 1)
    assert '"n":"loss"' in (tmp_path / "rank-0.metrics").read_text()
    with pytest.raises(ParameterError, match="^run_id:"):
        drover.Run(types.SimpleNamespace(workspace=None))


def test_show_updates_one_table_in_place_until_the_run_ended(monkeypatch):
    from drover import _remote

    updates = []

    class Handle:
        def update(self, html):
            updates.append(html.data)

    ipython = types.ModuleType("IPython")
    ipython.display = types.ModuleType("IPython.display")
    ipython.display.HTML = lambda data: types.SimpleNamespace(data=data)
    ipython.display.display = lambda html, display_id: (updates.append(html.data), Handle())[1]
    monkeypatch.setitem(sys.modules, "IPython", ipython)
    monkeypatch.setitem(sys.modules, "IPython.display", ipython.display)

    states = iter([job_pb2.JobStatus.RUNNING, job_pb2.JobStatus.RUNNING,
                   job_pb2.JobStatus.COMPLETED])

    class FakeRemote:
        job = job_pb2.Job(id="j-1")

        def html(self):
            self.job.status.state = next(states)
            return f"<table>{job_pb2.JobStatus.State.Name(self.job.status.state)}</table>"

    run = drover.Run(stream=open(os.devnull, "w"))
    run._remote = FakeRemote()
    run.show(interval=0)
    assert updates == ["<table>RUNNING</table>", "<table>RUNNING</table>",
                       "<table>COMPLETED</table>"]


def test_tag_from_a_client_asks_droverd_to_change_the_runs_tags():
    from drover._remote import RemoteRun

    class TagConnection:
        jobs = types.SimpleNamespace(UpdateJobTags="UpdateJobTags")

        def __init__(self):
            self.requests = []

        def call(self, method, request, **kwargs):
            assert method == "UpdateJobTags"
            self.requests.append(request)
            return job_pb2.Job(id=request.job_id, spec=job_pb2.JobSpec(tags=dict(request.set)))

    conn = TagConnection()
    run = drover.Run(stream=open(os.devnull, "w"))
    run._remote = RemoteRun(conn, "j-3", job=job_pb2.Job(id="j-3"))
    run.tag("best", 0.9)
    run.tag("reviewed")
    assert [(r.job_id, dict(r.set), list(r.remove)) for r in conn.requests] == [
        ("j-3", {"best": "0.9"}, []), ("j-3", {"reviewed": ""}, [])]
    assert dict(run._remote.job.spec.tags) == {"reviewed": ""}
    run.set_tags({"a": 1}, b=None)
    run.remove_tags(["best", "reviewed"])
    run.remove_tags("a")
    assert [(dict(r.set), list(r.remove)) for r in conn.requests[2:]] == [
        ({"a": "1", "b": ""}, []), ({}, ["best", "reviewed"]), ({}, ["a"])]


def test_remove_tags_in_a_job_says_to_use_a_client():
    with pytest.raises(DroverError, match="remove_tags"):
        drover.Run(stream=open(os.devnull, "w")).remove_tags(["a"])


# ---- several droverds (server="A,B"): following the one that leads

def test_a_server_list_is_parsed_and_a_bad_one_names_the_setting():
    from drover._connection import parse_servers

    assert parse_servers("head:7070") == ["head:7070"]
    assert parse_servers("head-a:7070,head-b:7070") == ["head-a:7070", "head-b:7070"]
    assert parse_servers("unix:/run/drover.sock") == ["unix:/run/drover.sock"]
    for bad in ["head-a:7070,", ",head-a:7070", "head-a:7070,,head-b:7070",
                "head-a:7070, head-b:7070"]:
        with pytest.raises(ParameterError, match="server: '"):
            parse_servers(bad)


def test_only_a_given_address_is_followed():
    from drover._connection import next_server

    servers = ["head-a:7070", "head-b:7070"]
    assert next_server(servers, 0, (("drover-leader", "head-b:7070"),)) == 1
    assert next_server(servers, 1, (("drover-leader", "head-a:7070"),)) == 0
    # A hostile or misconfigured standby: the next given address, never the named one.
    for hostile in ["evil.example.org:443", "head-b:70700", "head-b:7070 ", "HEAD-B:7070",
                    "head-b:7070,evil:1", ""]:
        assert next_server(servers, 0, (("drover-leader", hostile),)) == 1, hostile
    assert next_server(servers, 0, None) == 1


def _connection_to(servers, answers, monkeypatch):
    """A Connection to `servers` whose JobService.GetJob answers with `answers[address]`
    (an exception raised, or a value returned); the addresses asked, in order."""
    import grpc

    from drover._connection import Connection

    asked = []

    def connect(self):
        address = self.servers[self._current]

        def get_job(request, timeout=None, metadata=None):
            asked.append(address)
            answer = answers[address]
            if isinstance(answer, Exception):
                raise answer
            return answer

        self.jobs = types.SimpleNamespace(GetJob=get_job)
        self.admin = types.SimpleNamespace()
        self.blobs = types.SimpleNamespace()

    monkeypatch.setattr(Connection, "_connect", connect)
    conn = Connection.__new__(Connection)
    conn.server = ",".join(servers)
    conn.servers = list(servers)
    conn._current = 0
    conn._metadata = ()
    conn.timeout = 1.0
    conn._connect()
    return conn, asked


def _standby(leader):
    import grpc

    class Unavailable(grpc.RpcError):
        def code(self):
            return grpc.StatusCode.UNAVAILABLE

        def details(self):
            return f"this droverd stands by; the droverd that leads is at {leader}"

        def trailing_metadata(self):
            return (("drover-leader", leader),)

    return Unavailable()


def test_a_call_follows_the_named_leader_among_the_given_servers(monkeypatch):
    conn, asked = _connection_to(["head-b:7070", "head-a:7070"],
                                 {"head-b:7070": _standby("head-a:7070"), "head-a:7070": "job"},
                                 monkeypatch)
    # Also a call that is not repeated after an error: a standby did nothing.
    assert conn.call(conn.jobs.GetJob, "request", retry=False) == "job"
    assert asked == ["head-b:7070", "head-a:7070"]
    assert conn.call(conn.jobs.GetJob, "request") == "job"  # stays with the leader
    assert asked[-1] == "head-a:7070"


def test_a_hostile_standby_sends_the_client_nowhere_else(monkeypatch):
    conn, asked = _connection_to(["head-b:7070", "head-a:7070"],
                                 {"head-b:7070": _standby("evil.example.org:443"),
                                  "head-a:7070": "job"},
                                 monkeypatch)
    # Not repeated after an error: no known leader named, so nothing else is asked.
    with pytest.raises(ServerError, match="UNAVAILABLE"):
        conn.call(conn.jobs.GetJob, "request", retry=False)
    assert asked == ["head-b:7070"]
    # Retried: the next given droverd, never the named host.
    assert conn.call(conn.jobs.GetJob, "request") == "job"
    assert asked == ["head-b:7070", "head-b:7070", "head-a:7070"]
