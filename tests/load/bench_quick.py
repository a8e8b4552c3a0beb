"""
bench_quick.py - load/bench.sh --quick end to end: the script starts its
deployment from this build, runs every scenario with tiny counts, and
load/bench_report.py writes the summary and the plots. Asserts that the
outputs exist and parse, that every scenario ran and none reported a
failure, and that no server logged a sanitizer error. Never asserts speed:
the figures of a quick run mean nothing.

Environment: WSGATE_BUILD_DIR (set by tests/load/CMakeLists.txt).
"""

import glob
import json
import os
import random
import subprocess
import sys
import tempfile
import unittest

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(os.path.dirname(HERE))
BUILD = os.environ.get("WSGATE_BUILD_DIR", os.path.join(ROOT, "build"))
SLOW = float(os.environ.get("WSGATE_IT_SLOW", "1"))

# every scenario of the suite, as bench.sh names its runs
RUNS = ["storm_empty", "storm_auth", "echo_json", "echo_raw", "echo_bare", "open_json",
        "open_bare", "echo_json_w1", "echo_bare_w1", "open_json_w1", "open_bare_w1",
        "steps_plain-1", "steps_plain-2", "steps_plain-3", "steps_plain-probe1",
        "steps_auth-1", "steps_auth-2", "steps_auth-3", "fanout_rate", "fanout_burst",
        "fanout_shared_rate", "fanout_shared_burst"]
FIGURES = ["storm_empty", "storm_open", "storm_auth", "mem_auth", "mem_plain", "echo_json",
           "echo_ratio", "echo_raw", "echo_bare", "open_json", "open_bare", "echo_json_w1",
           "open_json_w1", "open_bare_w1", "fanout_rate",
           "fanout_burst", "fanout_shared_rate", "fanout_shared_burst"]
PLOTS = ["latency.png", "handshake_rate.png", "rss.png"]


class BenchQuickTest(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.tmp = tempfile.TemporaryDirectory(prefix="wsgate-bench-")
        cls.out = os.path.join(cls.tmp.name, "out")
        # ports below the ephemeral range (other tests' harness ports come
        # from there); bench.sh refuses a base whose ports are taken (2)
        for _ in range(5):
            base = random.randrange(20000, 32000, 40)
            p = subprocess.run(
                ["bash", os.path.join(ROOT, "load", "bench.sh"), BUILD, "--quick",
                 "--out", cls.out, "--port-base", str(base)],
                stdout=subprocess.PIPE, stderr=subprocess.STDOUT, timeout=240 * SLOW)
            cls.output = p.stdout.decode(errors="replace")
            cls.rc = p.returncode
            if not (p.returncode == 2 and "is in use" in cls.output):
                break

    @classmethod
    def tearDownClass(cls):
        cls.tmp.cleanup()

    def path(self, *parts):
        return os.path.join(self.out, *parts)

    def test_exit_status(self):
        self.assertEqual(self.rc, 0, self.output)

    def test_summary(self):
        with open(self.path("summary.json")) as f:
            s = json.load(f)
        self.assertEqual(s["env"]["mode"], "quick")
        self.assertEqual(s["failures"], {}, self.output)
        ids = [row["id"] for row in s["figures"]]
        self.assertEqual(sorted(ids), sorted(FIGURES), self.output)
        for row in s["figures"]:
            self.assertIsInstance(row["value"], (int, float), row)
            self.assertGreater(row["value"], 0, row)
        for name in RUNS:
            self.assertIn(name, s["runs"], self.output)
            self.assertEqual(s["runs"][name]["rc"], 0, name)
            self.assertEqual(s["runs"][name]["failures"], [], name)
        # the CPU and RSS samples around a run name the processes
        procs = s["runs"]["echo_json"]["usage"]["procs"]
        self.assertIn("gw0", procs)
        self.assertIn("wk0", procs)
        self.assertGreater(procs["gw0"]["rss_kb_after"], 0)
        self.assertEqual(len(s["steps"]["steps_auth"]), 4)

    def test_raw_reports(self):
        raws = glob.glob(self.path("raw", "*.json"))
        self.assertEqual(sorted(os.path.basename(p)[:-5] for p in raws), sorted(RUNS))
        for p in raws:
            with open(p) as f:
                r = json.load(f)
            self.assertEqual(r["tool"], "wsgate-load", p)
            self.assertEqual(r["connections"]["failed"], 0, p)
            self.assertEqual(r["connections"]["established"], r["connections"]["attempted"], p)

    def test_markdown(self):
        with open(self.path("summary.md")) as f:
            md = f.read()
        self.assertIn("| figure | result | target | met |", md)
        self.assertIn("Load average at the start", md)
        self.assertIn("No run reported a failure", md)
        for name in ("storm_empty", "echo_bare", "fanout_burst"):
            self.assertIn("| %s |" % name, md)

    def test_plots(self):
        import matplotlib
        matplotlib.use("Agg")
        import matplotlib.image

        for name in PLOTS:
            p = self.path("plots", name)
            with open(p, "rb") as f:
                self.assertEqual(f.read(8), b"\x89PNG\r\n\x1a\n", p)
            img = matplotlib.image.imread(p)
            self.assertGreater(img.shape[0], 100, p)
            self.assertGreater(img.shape[1], 100, p)

    def test_no_sanitizer_reports(self):
        for p in glob.glob(self.path("logs", "*")):
            with open(p, errors="replace") as f:
                text = f.read()
            for marker in ("ERROR: AddressSanitizer", "ERROR: LeakSanitizer", "runtime error:"):
                self.assertNotIn(marker, text, p)


if __name__ == "__main__":
    unittest.main(argv=[sys.argv[0], "-v"])
