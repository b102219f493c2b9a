"""Pictures for the A/B page, drawn with the standard library: a waveform (inline SVG), a spectrogram (PNG
as a data: URI) and a bar chart (inline SVG). Rendering only, shipped with the ``flight_verdict`` module.

Input is 16-bit mono samples (``audio_metrics.samples_from_wav``'s) and their rate; output is markup that
goes straight into ab.html, every text in it escaped. No numpy on the controller's venv: the spectrogram is
a small radix-2 FFT in Python on the signal averaged down to about 8 kHz (0 to 4 kHz shown: the telephone
band, 300 to 3400 Hz per ITU-T G.712, carries intelligible speech and its first formants), at most
``SPECTROGRAM_COLUMNS`` frames wide.
"""

from __future__ import annotations

import base64
import cmath
import html
import math
import struct
import zlib

FULL_SCALE = 32768.0
WAVE_WIDTH, WAVE_HEIGHT = 360, 64
SPECTROGRAM_RATE = 8000
FFT_SIZE = 256  # 32 ms at 8 kHz, 31 Hz per bin
SPECTROGRAM_COLUMNS = 240
SPECTROGRAM_MIN_HOP = 64
DYNAMIC_RANGE_DB = 70.0
# Dark to bright, stops picked along matplotlib's "magma" colour map: silence dark, formants bright.
COLOURS = ((0, 0, 4), (59, 15, 112), (140, 41, 129), (222, 73, 104), (254, 159, 109), (252, 253, 191))
SYSTEM_COLOURS = ("#2b6cb0", "#dd6b20", "#2f855a", "#805ad5")


def _attr(value) -> str:
    return html.escape(str(value), quote=True)


def waveform_svg(
    samples, rate: int, label: str = "waveform", width: int = WAVE_WIDTH, height: int = WAVE_HEIGHT
) -> str:
    """The signal's envelope (minimum and maximum per pixel column) as one filled path, with a time axis."""
    n = len(samples)
    mid = height / 2
    seconds = n / rate if rate else 0.0
    parts = [
        f'<svg xmlns="http://www.w3.org/2000/svg" class="waveform" role="img" width="{width}" height="{height}"'
        f' viewBox="0 0 {width} {height}" aria-label="{_attr(label)}">',
        f"<title>{html.escape(label)} ({seconds:.2f} s)</title>",
        f'<rect width="{width}" height="{height}" fill="#f7fafc"/>',
        f'<line x1="0" y1="{mid:g}" x2="{width}" y2="{mid:g}" stroke="#cbd5e0" stroke-width="1"/>',
    ]
    if n:
        upper, lower = [], []
        for column in range(width):
            chunk = samples[column * n // width : max(column * n // width + 1, (column + 1) * n // width)]
            high, low = (max(chunk), min(chunk)) if chunk else (0, 0)
            upper.append(f"{column},{mid - high / FULL_SCALE * mid:.1f}")
            lower.append(f"{column},{mid - low / FULL_SCALE * mid:.1f}")
        points = " L".join(upper + lower[::-1])
        parts.append(f'<path d="M{points} Z" fill="#2b6cb0" stroke="#2b6cb0" stroke-width="0.5"/>')
        for second in range(1, int(seconds) + 1):
            x = second * rate * width / n
            parts.append(f'<line x1="{x:.1f}" y1="{height - 4}" x2="{x:.1f}" y2="{height}" stroke="#718096"/>')
    parts.append("</svg>")
    return "".join(parts)


def downsample(samples, rate: int, target: int = SPECTROGRAM_RATE) -> tuple[list, float]:
    """Floats in -1..1 averaged over ``rate // target`` samples (a crude low-pass before decimating)."""
    factor = max(1, round(rate / target))
    scale = 1 / (FULL_SCALE * factor)
    out = [sum(samples[i : i + factor]) * scale for i in range(0, len(samples) - factor + 1, factor)]
    return out, rate / factor


def _fft_plan(size: int) -> tuple[list, list]:
    bits = size.bit_length() - 1
    order = [int(f"{i:0{bits}b}"[::-1], 2) for i in range(size)]
    twiddles = [cmath.exp(-2j * math.pi * k / size) for k in range(size // 2)]
    return order, twiddles


def fft(values: list, plan: tuple[list, list] | None = None) -> list:
    """Iterative radix-2 FFT of a power-of-two length list (complex or real)."""
    size = len(values)
    order, twiddles = plan or _fft_plan(size)
    data = [complex(values[i]) for i in order]
    half = 1
    while half < size:
        step = size // (2 * half)
        for start in range(0, size, 2 * half):
            for k in range(half):
                odd = data[start + k + half] * twiddles[k * step]
                even = data[start + k]
                data[start + k] = even + odd
                data[start + k + half] = even - odd
        half *= 2
    return data


def spectrogram(samples, rate: int, columns: int = SPECTROGRAM_COLUMNS) -> list:
    """Magnitudes in dB, one list per frame (Hann window, FFT_SIZE points, 0 Hz .. Nyquist/2 bins)."""
    signal, _low_rate = downsample(samples, rate)
    if len(signal) < FFT_SIZE:
        signal = signal + [0.0] * (FFT_SIZE - len(signal))
    frames = max(1, min(columns, (len(signal) - FFT_SIZE) // SPECTROGRAM_MIN_HOP + 1))
    hop = (len(signal) - FFT_SIZE) / (frames - 1) if frames > 1 else 0
    window = [0.5 - 0.5 * math.cos(2 * math.pi * i / (FFT_SIZE - 1)) for i in range(FFT_SIZE)]
    plan = _fft_plan(FFT_SIZE)
    rows = []
    for frame in range(frames):
        start = round(frame * hop)
        chunk = signal[start : start + FFT_SIZE]
        spectrum = fft([x * w for x, w in zip(chunk, window, strict=True)], plan)
        rows.append([20 * math.log10(abs(c) + 1e-9) for c in spectrum[: FFT_SIZE // 2]])
    return rows


def _colour(level: float) -> bytes:
    """0..1 to an RGB triple along COLOURS."""
    position = min(max(level, 0.0), 1.0) * (len(COLOURS) - 1)
    index = min(int(position), len(COLOURS) - 2)
    fraction = position - index
    low, high = COLOURS[index], COLOURS[index + 1]
    return bytes(round(a + (b - a) * fraction) for a, b in zip(low, high, strict=True))


def png(width: int, height: int, rows: list) -> bytes:
    """An 8-bit RGB PNG of ``rows`` (``height`` byte strings of ``3 * width`` bytes each), zlib-compressed."""

    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data) & 0xFFFFFFFF)

    raw = b"".join(b"\x00" + row for row in rows)
    header = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header) + chunk(b"IDAT", zlib.compress(raw, 9)) + chunk(b"IEND", b"")


def spectrogram_img(samples, rate: int, label: str = "spectrogram", width: int = WAVE_WIDTH, height: int = 96) -> str:
    """An ``<img>`` with the spectrogram as a PNG data: URI (low frequencies at the bottom, 0 to 4 kHz)."""
    frames = spectrogram(samples, rate)
    top = max((max(frame) for frame in frames), default=0.0)
    bins = len(frames[0])
    palette = [_colour(i / 255) for i in range(256)]
    rows = []
    for index in range(bins - 1, -1, -1):
        rows.append(
            b"".join(
                palette[min(255, max(0, round((frame[index] - top + DYNAMIC_RANGE_DB) / DYNAMIC_RANGE_DB * 255)))]
                for frame in frames
            )
        )
    data = base64.b64encode(png(len(frames), bins, rows)).decode("ascii")
    nyquist = SPECTROGRAM_RATE / 2 / 1000
    title = f"{label} (0 to {nyquist:g} kHz, {DYNAMIC_RANGE_DB:g} dB range)"
    return (
        f'<img class="spectrogram" width="{width}" height="{height}" alt="{_attr(label)}" title="{_attr(title)}"'
        f' src="data:image/png;base64,{data}">'
    )


def bar_chart_svg(
    title: str, groups: list, unit: str = "", decimals: int = 1, width: int = 360, height: int = 200
) -> str:
    """Grouped bars: ``groups`` is ``[(group label, [(series label, value or None), ...]), ...]``; a legend
    names the series (in SYSTEM_COLOURS order of first appearance), every bar carries its value."""
    series = []
    for _label, bars in groups:
        for name, _value in bars:
            if name not in series:
                series.append(name)
    values = [value for _label, bars in groups for _name, value in bars if value is not None]
    top = max(values, default=0.0) or 1.0
    left, bottom = 8, 40  # below the axis: the group labels, then the legend
    plot_height = height - bottom - 36
    group_width = (width - left * 2) / max(1, len(groups))
    bar_width = min(48.0, (group_width - 16) / max(1, len(series)))
    parts = [
        f'<svg xmlns="http://www.w3.org/2000/svg" class="chart" role="img" width="{width}" height="{height}"'
        f' viewBox="0 0 {width} {height}" aria-label="{_attr(title)}">',
        f"<title>{html.escape(title)}</title>",
        f'<text x="{left}" y="14" font-size="13" font-family="sans-serif">{html.escape(title)}</text>',
    ]
    base = height - bottom
    parts.append(f'<line x1="{left}" y1="{base}" x2="{width - left}" y2="{base}" stroke="#4a5568"/>')
    for group_index, (group_label, bars) in enumerate(groups):
        x0 = left + group_index * group_width + (group_width - bar_width * len(series)) / 2
        for name, value in bars:
            x = x0 + series.index(name) * bar_width
            colour = SYSTEM_COLOURS[series.index(name) % len(SYSTEM_COLOURS)]
            if value is None:
                parts.append(
                    f'<text x="{x + bar_width / 2:.1f}" y="{base - 4}" font-size="10" text-anchor="middle"'
                    ' font-family="sans-serif">n/a</text>'
                )
                continue
            bar_height = value / top * plot_height
            tip = html.escape(f"{name}, {group_label}: {value:.{decimals}f}{unit}")
            parts.append(
                f'<rect class="bar" x="{x + 2:.1f}" y="{base - bar_height:.1f}" width="{bar_width - 4:.1f}"'
                f' height="{bar_height:.1f}"'
                f' fill="{colour}"><title>{tip}</title></rect>'
            )
            parts.append(
                f'<text x="{x + bar_width / 2:.1f}" y="{base - bar_height - 3:.1f}" font-size="10" text-anchor="middle"'
                f' font-family="sans-serif">{value:.{decimals}f}</text>'
            )
        parts.append(
            f'<text x="{left + (group_index + 0.5) * group_width:.1f}" y="{base + 14}" font-size="11"'
            f' text-anchor="middle" font-family="sans-serif">{html.escape(str(group_label))}</text>'
        )
    for index, name in enumerate(series):
        x = left + index * 120
        colour = SYSTEM_COLOURS[index % len(SYSTEM_COLOURS)]
        parts.append(f'<rect x="{x}" y="{height - 14}" width="10" height="10" fill="{colour}"/>')
        parts.append(
            f'<text x="{x + 14}" y="{height - 5}" font-size="11" font-family="sans-serif">'
            f"{html.escape(str(name))}</text>"
        )
    parts.append("</svg>")
    return "".join(parts)
