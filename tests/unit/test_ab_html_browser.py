"""ab.html in a real browser: Debian's chromium, headless, opens the page the flight_verdict module wrote
from real espeak-ng WAVs and shows its players (each WAV decodes), waveforms, spectrograms and charts.

The page itself holds no script; the test opens a copy with a probe appended that writes what the browser
made of the page into the DOM, which ``--dump-dom`` prints. Skipped (with the reason) without chromium or
espeak-ng: scripts/setup.sh installs both.
"""

from __future__ import annotations

import json
import re
import shutil
import subprocess
import sys

import pytest
from test_verdict import module_args, run_module
from test_verdict_audio import benchmark_with_reference, make_heard_benchmark, make_speech, write_run

CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")
pytestmark = [
    pytest.mark.skipif(CHROMIUM is None, reason="chromium is not installed (scripts/setup.sh installs Debian's)"),
    pytest.mark.skipif(shutil.which("espeak-ng") is None, reason="espeak-ng is not installed"),
]

# What the browser made of the page: every player's WAV loaded and its duration, every picture drawn.
PROBE = """
<script>
(async () => {
  const players = [...document.querySelectorAll("audio")];
  const durations = await Promise.all(players.map(a => new Promise(done => {
    a.addEventListener("loadedmetadata", () => done(a.duration), {once: true});
    a.addEventListener("error", () => done(-1), {once: true});
    a.preload = "metadata"; a.load();
  })));
  const size = e => { const r = e.getBoundingClientRect(); return [Math.round(r.width), Math.round(r.height)]; };
  const report = {
    durations,
    waveforms: [...document.querySelectorAll("svg.waveform")]
      .map(e => [...size(e), e.querySelectorAll("path").length]),
    spectrograms: [...document.querySelectorAll("img.spectrogram")]
      .map(e => [e.complete, e.naturalWidth, e.naturalHeight, ...size(e)]),
    charts: [...document.querySelectorAll("svg.chart")]
      .map(e => [e.querySelector("title").textContent, e.querySelectorAll("rect.bar").length]),
    failed_checks: document.querySelectorAll("li.fail").length,
  };
  const out = document.createElement("pre");
  out.id = "probe";
  out.textContent = JSON.stringify(report);
  document.body.appendChild(out);
})();
</script>
"""


def chromium(*args, user_data_dir):
    flags = [
        "--headless",
        "--no-sandbox",
        "--disable-gpu",
        "--disable-quic",
        "--disable-background-networking",
        "--disable-component-update",
        "--disable-sync",
        "--no-first-run",
        "--mute-audio",
        f"--user-data-dir={user_data_dir}",
    ]
    return subprocess.run([CHROMIUM, *flags, *args], capture_output=True, text=True, timeout=120)


@pytest.fixture(scope="module")
def page(tmp_path_factory):
    speech = make_speech()
    heard_benchmark = make_heard_benchmark(speech)
    tmp_path = tmp_path_factory.mktemp("ab-browser")
    dest = tmp_path / "artifacts" / "titan" / "R1"
    write_run(dest, speech)
    saved = sys.modules.get("resemblyzer")
    sys.modules["resemblyzer"] = None  # the optional extra is absent, as on this controller
    try:
        run_module(module_args(tmp_path, benchmark=benchmark_with_reference(heard_benchmark)))
    finally:
        if saved is None:
            del sys.modules["resemblyzer"]
        else:
            sys.modules["resemblyzer"] = saved
    return dest


def test_chromium_shows_the_players_waveforms_spectrograms_and_charts(page, tmp_path):
    html = (page / "ab.html").read_text(encoding="utf-8")
    probed = page / "ab-probe.html"
    probed.write_text(html.replace("</body>", PROBE + "</body>"), encoding="utf-8")
    result = chromium("--virtual-time-budget=10000", "--dump-dom", probed.as_uri(), user_data_dir=tmp_path / "profile")
    match = re.search(r'<pre id="probe">(.*?)</pre>', result.stdout, re.S)
    assert match, f"no probe in the DOM (exit {result.returncode}): {result.stderr[-2000:]}"
    report = json.loads(match.group(1).replace("&quot;", '"').replace("&amp;", "&"))

    # 3 kept WAVs of the two systems (chatterbox has one) and the reference: each plays, as long as its file.
    assert len(report["durations"]) == 4
    assert all(d > 0.5 for d in report["durations"]), report["durations"]
    assert len(report["waveforms"]) == 4
    assert all(width == 360 and height == 64 and paths == 1 for width, height, paths in report["waveforms"])
    assert len(report["spectrograms"]) == 4
    assert all(done and nw > 0 and nh == 128 and (w, h) == (360, 96) for done, nw, nh, w, h in report["spectrograms"])
    assert report["charts"] == [["Time to first audio p50 (ms)", 3], ["Real-time factor p50 (lower is faster)", 3]]
    assert report["failed_checks"] > 0  # the silent chatterbox answer


def test_chromium_takes_a_screenshot_of_the_page(page, tmp_path):
    shot = tmp_path / "ab.png"
    result = chromium(
        "--window-size=1400,1800", f"--screenshot={shot}", (page / "ab.html").as_uri(), user_data_dir=tmp_path / "p"
    )
    assert shot.exists(), result.stderr[-2000:]
    data = shot.read_bytes()
    assert data[:8] == b"\x89PNG\r\n\x1a\n" and len(data) > 50_000  # pictures, not a blank page
