"""Glass-to-glass latency: a clock burnt into a studio's picture, read back in Chromium.

Method. A "studio" ffmpeg sends 640x360 30 fps H.264 over SRT (with the session's
key) to a real summitcast server whose session is cut to live, in real time (-re).
Its picture carries the source time as a barcode: 17 boxes along the top edge,
box k white when bit k of floor(t × 100) is set (t = seconds since the studio's
first frame; drawbox ``enable`` expressions, so nothing needs OCR). The studio's
first frame leaves at wall time t0 (taken just before the process starts, so the
figure errs high by its start-up, ~0.1–0.2 s). The summitcast player in headless
Chromium plays the watch page; twice a second the page draws the current video
frame onto a canvas, reads the boxes, and the latency is
``Date.now() − (t0 + t)``. Everything runs on this machine, one clock.

The path measured is the whole live chain: SRT listener → UDP relay → live feeder
(re-encode to the programme format) → ladder encoder (small ladder here:
360p/240p, veryfast, 2 s segments) → HLS on the app's origin → hls.js → picture.
The player is measured as shipped (two segments behind the live edge, catching up
at up to 1.1x when further back). Beside each reading the page also notes
``hls.latency``, hls.js's own estimate of how far the picture is behind the newest
listed segment: glass-to-glass minus that is what the chain upstream of the player
(ingest, feeder, encoder, listing) costs. The reference in the same run is the
segment length (2 s).

Each run starts a fresh server, studio and browser (a player fixes its distance to
the live edge when it starts, so readings within one run are not independent); the
summary gives the median and the worst of the steady readings of every run.

    .venv/bin/python benchmarks/latency_glass.py [--seconds 25] [--runs 3]
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

# The server and browser harness of the e2e tests is reused as is.
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from tests.e2e.broadcast_server import FFMPEG, Broadcast, running_server
from tests.e2e.browser import chromium_page

BITS = 17  # floor(t × 100) up to 1310 s
BOX = 32  # pixels per box at 640x360

READ_CLOCK = """
(video) => {
  if (!video || video.readyState < 2 || !video.videoWidth) return null;
  const canvas = document.createElement("canvas");
  canvas.width = video.videoWidth; canvas.height = video.videoHeight;
  const ctx = canvas.getContext("2d", { willReadFrequently: true });
  ctx.drawImage(video, 0, 0);
  const scale = video.videoWidth / 640;
  let value = 0;
  for (let k = 0; k < BITS; k++) {
    const x = Math.round((k * BOX + BOX / 2) * scale), y = Math.round(BOX / 2 * scale);
    const px = ctx.getImageData(x, y, 1, 1).data;
    if (px[0] + px[1] + px[2] > 3 * 128) value += 2 ** k;
  }
  const hls = window.summitcastPlayer && window.summitcastPlayer.hls;
  return { t: value / 100, now: Date.now() / 1000, behind: hls ? hls.latency : null };
}
""".replace("BITS", str(BITS)).replace("BOX", str(BOX))


# Every stall once the picture runs: seconds from 'waiting' to 'playing' (0.1 s or more).
COUNT_STALLS = """() => {
  const v = document.querySelector('video.player-video');
  window.stalls = [];
  let since = null;
  v.addEventListener('waiting', () => { if (v.currentTime > 0) since = performance.now(); });
  v.addEventListener('playing', () => {
    const s = since === null ? 0 : (performance.now() - since) / 1000;
    if (s >= 0.1) window.stalls.push(Math.round(s * 100) / 100);
    since = null;
  });
}"""


def studio_argv(url: str, seconds: int) -> list[str]:
    """A studio sending a clock barcode and a tone in real time."""
    boxes = ",".join(
        f"drawbox=x={k * BOX}:y=0:w={BOX}:h={BOX}:color=white:t=fill:"
        f"enable='mod(floor(t*100/{2**k}),2)'"
        for k in range(BITS)
    )
    return [
        *[FFMPEG, "-hide_banner", "-nostdin", "-loglevel", "error", "-re"],
        *["-f", "lavfi", "-i", f"testsrc2=size=640x360:rate=30:duration={seconds}"],
        *["-f", "lavfi", "-i", f"sine=frequency=440:duration={seconds}"],
        # Black band under the boxes, then the boxes themselves.
        *["-vf", f"drawbox=x=0:y=0:w=640:h={BOX}:color=black:t=fill,{boxes}"],
        *["-c:v", "libx264", "-preset", "ultrafast", "-tune", "zerolatency", "-g", "30"],
        *["-c:a", "aac", "-f", "mpegts", url],
    ]


def measure(
    b: Broadcast, seconds: int, sync_count: float | None
) -> tuple[list[tuple[float, float | None]], list[float]]:
    """Run the studio and sample the player: (glass-to-glass s, hls.js latency s), stalls."""
    key = b.client.get(b.control).text.split('id="ingest-key">')[1].split("<")[0]
    url = f"srt://127.0.0.1:{b.settings.ingest_srt_port}?passphrase={key}&pbkeylen=16"
    b.press("start-now")
    b.press("live")
    b.wait_for(lambda: b.health()["health"] is not None, 15, "the ingest")
    t0 = time.time()
    studio = subprocess.Popen(studio_argv(url, seconds), stderr=subprocess.DEVNULL)
    found: list[tuple[float, float | None]] = []
    stalls: list[float] = []
    try:
        with chromium_page() as page:
            page.goto(f"{b.base}/s/{b.slug}/watch?session={b.session_id}")
            page.wait_for_function("() => window.summitcast && window.summitcastPlayer")
            page.evaluate(COUNT_STALLS)
            if sync_count is not None:
                # hls.js reads its target latency from its config on every use.
                page.evaluate(
                    "(n) => { window.summitcastPlayer.hls.config.liveSyncDurationCount = n; }",
                    sync_count,
                )
            while studio.poll() is None:
                reading = page.evaluate(
                    f"() => ({READ_CLOCK})(document.querySelector('video.player-video'))"
                )
                elapsed = time.time() - t0
                # Slates carry no barcode (all boxes dark): keep plausible clock readings.
                if reading and 0.5 < reading["t"] < elapsed:
                    found.append((reading["now"] - (t0 + reading["t"]), reading["behind"]))
                time.sleep(0.5)
            stalls = page.evaluate("() => window.stalls")
    finally:
        studio.kill()
        studio.wait()
        b.press("end")
    return found, stalls


def main() -> None:
    """Measure glass-to-glass latency over several runs; print each run and the summary."""
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--seconds", type=int, default=25, help="how long the studio sends")
    parser.add_argument("--runs", type=int, default=3, help="fresh server + player each")
    parser.add_argument(
        "--sync-count",
        type=float,
        default=None,
        help="try another hls.js liveSyncDurationCount (default: as shipped)",
    )
    args = parser.parse_args()
    steady_all: list[float] = []
    run_medians: list[float] = []
    for run in range(1, args.runs + 1):
        load_before = os.getloadavg()[0]
        with (
            tempfile.TemporaryDirectory() as tmp,
            running_server(Path(tmp), broadcast_fps=30, broadcast_preset="veryfast") as b,
        ):
            found, stalls = measure(b, args.seconds, args.sync_count)
        if not found:
            print(f"run {run}: no clock read back (load {load_before:.1f})")
            continue
        # The first third is the player settling on the live edge: report the steady part.
        steady = found[len(found) // 3 :]
        glass = [g for g, _ in steady]
        behind = [h for _, h in steady if h is not None]
        steady_all += glass
        run_medians.append(statistics.median(glass))
        upstream = statistics.median(glass) - statistics.median(behind) if behind else None
        print(
            f"run {run}: load {load_before:.1f} → {os.getloadavg()[0]:.1f}; "
            f"{len(found)} readings, steady median {statistics.median(glass):.2f} s, "
            f"min {min(glass):.2f} s, worst {max(glass):.2f} s; player behind the listed "
            f"edge {statistics.median(behind) if behind else float('nan'):.2f} s, "
            f"upstream {upstream if upstream is not None else float('nan'):.2f} s; "
            f"stalls {stalls}",
            flush=True,
        )
    if steady_all:
        print(
            f"all runs: median {statistics.median(steady_all):.2f} s, "
            f"worst {max(steady_all):.2f} s, run medians "
            f"{', '.join(f'{m:.2f}' for m in run_medians)} (target ≤ 6 s; reference: 2 s segments)"
        )


if __name__ == "__main__":
    main()
