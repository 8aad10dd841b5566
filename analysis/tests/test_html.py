"""The report page, produced by the `analysis/report` command, opens in headless Chromium without
errors and shows every table.

Chromium dumps the DOM after the load event, so the page's own self-check (which counts tables and
broken images into #selfcheck) has run; console messages (JavaScript errors, the self-check's
console.error) reach stderr through --enable-logging=stderr as "CONSOLE" lines. A negative control
(a copy of the page with an image removed and a script error) shows the check can fail.
"""

import os
import re
import shutil
import subprocess
import sys
import tempfile
import unittest
from concurrent.futures import ThreadPoolExecutor

HERE = os.path.dirname(os.path.abspath(__file__))
ANALYSIS = os.path.dirname(HERE)
sys.path.insert(0, ANALYSIS)

from fgreport import data as D  # noqa: E402
from fgreport.report import build_tables  # noqa: E402

SAMPLE = os.path.join(HERE, "data", "sample")
CHROMIUM = os.environ.get("FG_CHROMIUM", "/usr/bin/chromium")


def dump_dom(path):
    """(dom, console lines) of file `path` as headless Chromium renders it."""
    profile = tempfile.mkdtemp(prefix="fg-chromium-")
    try:
        proc = subprocess.run(
            [CHROMIUM, "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic",
             "--no-first-run", "--disable-background-networking", "--disable-component-update",
             "--disable-sync", "--user-data-dir=" + profile, "--enable-logging=stderr", "--v=0",
             "--dump-dom", "file://" + os.path.abspath(path)],
            capture_output=True, text=True, timeout=120, check=False)
    finally:
        shutil.rmtree(profile, ignore_errors=True)
    if proc.returncode != 0:
        raise AssertionError("chromium exited %d: %s" % (proc.returncode, proc.stderr[-2000:]))
    console = [ln for ln in proc.stderr.splitlines() if ":CONSOLE" in ln]
    return proc.stdout, console


def selfcheck(dom):
    m = re.search(r'<p id="selfcheck"([^>]*)>([^<]*)</p>', dom)
    if not m:
        return None
    attrs = dict(re.findall(r'data-(\w+)="([^"]*)"', m.group(1)))
    return attrs, m.group(2)


class Page(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        # Not a skip: a missing browser must not pass silently (scripts/setup installs it).
        if not os.access(CHROMIUM, os.X_OK):
            raise AssertionError("%s not found: apt-get install -y chromium" % CHROMIUM)
        cls.tmp = tempfile.mkdtemp(prefix="fg-analysis-html-")
        cls.out = os.path.join(cls.tmp, "report")
        proc = subprocess.run([sys.executable, os.path.join(ANALYSIS, "report"), SAMPLE, cls.out],
                              capture_output=True, text=True, timeout=300, check=False)
        if proc.returncode != 0:
            raise AssertionError("analysis/report failed: %s" % proc.stderr)
        cls.index = proc.stdout.strip()
        res = D.Results(SAMPLE)
        cls.tables = build_tables(res, D.load_reference(os.path.join(ANALYSIS, "reference")))
        # Negative control: a broken copy, one figure missing and a script error; the same check
        # must report both. Both pages load in parallel to keep the test short.
        cls.bad = os.path.join(cls.tmp, "bad")
        shutil.copytree(cls.out, cls.bad)
        os.remove(os.path.join(cls.bad, "time.png"))
        with open(os.path.join(cls.bad, "index.html"), encoding="utf-8") as f:
            text = f.read()
        with open(os.path.join(cls.bad, "index.html"), "w", encoding="utf-8") as f:
            f.write(text.replace("</body>", "<script>notDefinedAnywhere();</script></body>"))
        with ThreadPoolExecutor(max_workers=2) as pool:
            good = pool.submit(dump_dom, cls.index)
            bad = pool.submit(dump_dom, os.path.join(cls.bad, "index.html"))
            cls.good_dom, cls.good_console = good.result()
            cls.bad_dom, cls.bad_console = bad.result()

    @classmethod
    def tearDownClass(cls):
        shutil.rmtree(cls.tmp, ignore_errors=True)

    def test_page_renders_every_table_without_errors(self):
        self.assertEqual(self.index, os.path.join(self.out, "index.html"))
        dom, console = self.good_dom, self.good_console
        self.assertEqual(console, [])
        check = selfcheck(dom)
        self.assertIsNotNone(check, "no #selfcheck in the DOM")
        attrs, text = check
        self.assertTrue(text.startswith("selfcheck: ok"), text)  # the script ran after load
        self.assertEqual(attrs["broken"], "")
        self.assertEqual(int(attrs["tables"]), len(self.tables))
        self.assertGreaterEqual(int(attrs["images"]), 8)
        for key, t in self.tables.items():
            self.assertIn('<table id="tbl-%s" class="result">' % key, dom)
            # the table's caption and one of its rows made it into the DOM
            self.assertIn(t.title.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;"),
                          dom)
        for code in ("UNADAPTABLE", "FAILURE", "CORRUPTED"):
            self.assertIn('class="code %s">%s</td>' % (code.lower(), code), dom)
        self.assertIn("<td>86.00</td><td>+1.18</td><td>40.00</td>", dom)

    def test_negative_control(self):
        console = self.bad_console
        attrs, _ = selfcheck(self.bad_dom)
        self.assertIn("time.png", attrs["broken"])
        self.assertTrue(any("notDefinedAnywhere" in ln for ln in console), console)
        self.assertTrue(any("broken images" in ln for ln in console), console)


class Command(unittest.TestCase):
    def test_bad_results_dir_exits_2(self):
        proc = subprocess.run([sys.executable, os.path.join(ANALYSIS, "report"),
                               os.path.join(HERE, "no-such-dir")],
                              capture_output=True, text=True, timeout=120, check=False)
        self.assertEqual(proc.returncode, 2)
        self.assertIn("not a directory", proc.stderr)


if __name__ == "__main__":
    unittest.main()
