"""report.html in headless Chromium: it renders, its script runs without error, sorting and
filtering work. Slow (a browser per check); skipped where no Chromium is installed
(``apt-get install chromium``)."""

import html
import json
import re
import shutil
import subprocess

import pytest
from PIL import Image

from study import report, results
from tests.helpers import synthetic_runs, write_results_folder

pytestmark = pytest.mark.slow

WINDOW = (1366, 900)  # a laptop screen

# Appended to a copy of the page: filters, sorts, and writes what it saw into <body data-check>.
CHECK = """<script>
(() => {
  const table = document.getElementById("summary-table");
  const filter = document.getElementById("summary-filter");
  const names = Array.from(table.tHead.rows[0].cells, (th) => th.textContent.trim());
  const offset = names.indexOf("data.offset");
  const column = () => Array.from(table.tBodies[0].rows).filter((row) => !row.hidden)
    .map((row) => row.cells[offset].textContent);
  filter.value = "activation=relu offset=2";
  filter.dispatchEvent(new Event("input"));
  const filtered = column();
  const count = document.getElementById("summary-count").textContent;
  filter.value = "";
  filter.dispatchEvent(new Event("input"));
  table.tHead.rows[0].cells[offset].click();
  const ascending = column();
  table.tHead.rows[0].cells[offset].click();
  const descending = column();
  document.body.dataset.check = JSON.stringify({filtered, count, ascending, descending});
})();
</script>"""


def chromium() -> str:
    for name in ("chromium", "chromium-browser"):
        if path := shutil.which(name):
            return path
    pytest.skip("no chromium binary (apt-get install chromium)")


def run_chromium(tmp_path, page, *flags) -> subprocess.CompletedProcess:
    """Chromium on a local file, headless, in its own profile; JavaScript console on stderr."""
    command = [
        chromium(),
        "--headless",
        "--no-sandbox",  # tests may run as root, where Chromium refuses its sandbox
        "--disable-gpu",
        "--hide-scrollbars",
        f"--user-data-dir={tmp_path / 'profile'}",
        "--enable-logging=stderr",
        "--v=0",
        f"--window-size={WINDOW[0]},{WINDOW[1]}",
        *flags,
        page.as_uri(),
    ]
    return subprocess.run(command, capture_output=True, text=True, timeout=120, check=False)


@pytest.fixture(scope="module")
def page(tmp_path_factory):
    """report.html of a small results folder with figures (relu and leaky_relu, two offsets)."""
    folder = tmp_path_factory.mktemp("results")
    axes = {"model.activation": ["relu", "leaky_relu"], "data.offset": [0.0, 2.0]}
    write_results_folder(folder, synthetic_runs(0.3, 0.1, n=100, **axes))
    _, page = report.write_report(results.ResultsFolder.open(folder))
    return page


def test_page_renders_on_a_laptop_screen(tmp_path, page):
    shot = tmp_path / "report.png"
    done = run_chromium(tmp_path, page, f"--screenshot={shot}")
    assert shot.exists(), done.stderr[-2000:]
    image = Image.open(shot).convert("L")
    assert image.size == WINDOW
    low, high = image.getextrema()
    assert high - low > 128 and len(image.getcolors(256)) > 16  # text and figures, not a blank


def test_script_runs_without_error(tmp_path, page):
    done = run_chromium(tmp_path, page, "--dump-dom")
    assert re.search(r'<body[^>]*data-ready="1"', done.stdout), done.stderr[-2000:]
    assert "Uncaught" not in done.stderr


def test_table_sorts_and_filters(tmp_path, page):
    checked = tmp_path / "check.html"
    checked.write_text(page.read_text().replace("</body>", CHECK + "</body>"))
    done = run_chromium(tmp_path, checked, "--dump-dom")
    found = re.search(r'data-check="([^"]*)"', done.stdout)
    assert found, done.stderr[-2000:]
    seen = json.loads(html.unescape(found.group(1)))
    assert seen["filtered"] == ["2.0"]  # name=value is exact: leaky_relu is not relu
    assert seen["count"] == "1 of 4 settings shown"
    assert [float(v) for v in seen["ascending"]] == [0.0, 0.0, 2.0, 2.0]
    assert [float(v) for v in seen["descending"]] == [2.0, 2.0, 0.0, 0.0]
