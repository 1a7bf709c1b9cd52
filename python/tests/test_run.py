"""Unit tests of the in-job metrics API (run by ctest: python_run_test)."""

import io
import json
import math
import os
import subprocess
import sys
import tempfile
import threading
import unittest

sys.path.insert(0, os.path.join(os.path.dirname(__file__), ".."))

import drover  # noqa: E402


class RunTest(unittest.TestCase):
    def setUp(self):
        self.dir = tempfile.TemporaryDirectory()
        self.path = os.path.join(self.dir.name, "rank-0.metrics")
        self.run = drover.Run(path=self.path)

    def tearDown(self):
        self.dir.cleanup()

    def records(self):
        with open(self.path) as f:
            return [json.loads(line) for line in f]

    def test_log_appends_one_json_line_per_value_with_automatic_steps(self):
        self.run.log("loss", 0.5)
        self.run.log("loss", 0.25)
        self.run.log("acc", 1, step=10)
        self.run.log("acc", True)
        got = [(r["n"], r["s"], r["v"]) for r in self.records()]
        self.assertEqual(got, [("loss", 0, 0.5), ("loss", 1, 0.25), ("acc", 10, 1.0),
                               ("acc", 11, 1.0)])
        self.assertTrue(all(isinstance(r["t"], float) for r in self.records()))

    def test_non_finite_values_are_spelled_as_strings(self):
        self.run.log("x", float("nan"))
        self.run.log("x", float("inf"))
        self.run.log("x", -math.inf)
        self.assertEqual([r["v"] for r in self.records()], ["NaN", "Infinity", "-Infinity"])

    def test_log_list_and_log_row(self):
        self.run.log_list("accuracies", [0.6, 0.7, 0.87])
        self.run.log_row("per_class", cls=3, precision=0.9)
        self.run.log_row("per_class", cls=4, precision=0.8)
        got = [(r["n"], r["s"], r["v"]) for r in self.records()]
        self.assertEqual(got, [("accuracies", 0, 0.6), ("accuracies", 1, 0.7),
                               ("accuracies", 2, 0.87), ("per_class/cls", 0, 3.0),
                               ("per_class/precision", 0, 0.9), ("per_class/cls", 1, 4.0),
                               ("per_class/precision", 1, 0.8)])

    def test_a_task_of_a_job_array_knows_its_index_array_and_size(self):
        saved = dict(os.environ)
        try:
            os.environ.update({"DROVER_ARRAY_ID": "a-3f9c1b2e7d40aa01",
                               "DROVER_ARRAY_INDEX": "7", "DROVER_ARRAY_SIZE": "1000"})
            run = drover.Run(path=self.path)
            self.assertEqual(run.array_index, 7)
            self.assertEqual(run.array_id, "a-3f9c1b2e7d40aa01")
            self.assertEqual(run.array_size, 1000)
            for key in ("DROVER_ARRAY_ID", "DROVER_ARRAY_INDEX", "DROVER_ARRAY_SIZE"):
                del os.environ[key]
            plain = drover.Run(path=self.path)
            self.assertIsNone(plain.array_index)
            self.assertIsNone(plain.array_id)
            self.assertEqual(plain.array_size, 0)
            os.environ["DROVER_ARRAY_INDEX"] = "-1"  # never set so; not an index
            self.assertIsNone(drover.Run(path=self.path).array_index)
        finally:
            os.environ.clear()
            os.environ.update(saved)

    def test_set_tags(self):
        self.run.set_tags({"optimizer": "adam"}, lr=0.1)
        self.assertEqual(self.records()[0]["tags"], {"optimizer": "adam", "lr": "0.1"})

    def test_bad_arguments_name_the_problem(self):
        with self.assertRaisesRegex(drover.MetricsError, "'loss'.*not a number"):
            self.run.log("loss", "high")
        with self.assertRaisesRegex(drover.MetricsError, "step -1"):
            self.run.log("loss", 1, step=-1)
        with self.assertRaisesRegex(drover.MetricsError, "non-empty"):
            self.run.log("", 1)
        with self.assertRaisesRegex(drover.MetricsError, "control character"):
            self.run.log("a\nb", 1)
        self.assertFalse(os.path.getsize(self.path))

    def test_threads_never_interleave_lines(self):
        def work(t):
            for i in range(2000):
                self.run.log(f"t{t}", i)
        threads = [threading.Thread(target=work, args=(t,)) for t in range(4)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        records = self.records()
        self.assertEqual(len(records), 8000)
        for t in range(4):
            self.assertEqual([r["v"] for r in records if r["n"] == f"t{t}"],
                             [float(i) for i in range(2000)])

    def test_outside_drover_prints_to_stdout(self):
        out = io.StringIO()
        run = drover.Run(stream=out)
        self.assertTrue(run.offline)
        run.log("loss", 0.5)
        run.log_row("t", a=1)
        self.assertEqual(out.getvalue(), "metric loss=0.5 step=0\nmetric t row 0: a=1\n")

    def test_get_context_uses_drover_variables(self):
        env = dict(os.environ, DROVER_METRICS_DIR=self.dir.name, DROVER_RANK="3",
                   PYTHONPATH=os.path.join(os.path.dirname(__file__), ".."))
        code = ("import drover; r = drover.Run.get_context(); "
                "assert r is drover.Run.get_context(); r.log('m', 2); print(r.rank)")
        out = subprocess.run([sys.executable, "-c", code], env=env, check=True,
                             capture_output=True, text=True).stdout
        self.assertEqual(out, "3\n")
        with open(os.path.join(self.dir.name, "rank-3.metrics")) as f:
            self.assertEqual(json.loads(f.read())["v"], 2)


if __name__ == "__main__":
    unittest.main()
