"""One self-contained HTML page per drift run: a verdict, then every feature's reference
and current distributions drawn over each other (inline SVG, no script, no network),
most drifted first."""

from __future__ import annotations

import html
from pathlib import Path

from pipelines.monitoring.drift import FeatureDrift, Verdict

WIDTH, HEIGHT, MARGIN = 560, 170, 30
COLOURS = {"reference": "#8a94a6", "current": "#e8772e"}
VERDICT_COLOURS = {Verdict.OK: "#2e7d32", Verdict.WARN: "#b26a00", Verdict.ALERT: "#c62828"}


def _number(value: float | None, digits: int = 3) -> str:
    return "-" if value is None else f"{value:.{digits}f}"


def distribution_svg(drift: FeatureDrift) -> str:
    """Both sides' shares per bin as overlapping bars: reference wide and grey, current
    narrow and orange on top, so a shift shows as orange leaving the grey."""
    bins = len(drift.bins)
    if not bins:
        return '<p class="empty">no values on one side</p>'
    top = max([*drift.reference_shares, *drift.current_shares, 1e-9])
    slot = (WIDTH - 2 * MARGIN) / bins
    plot_height = HEIGHT - 2 * MARGIN
    parts = [
        f'<svg xmlns="http://www.w3.org/2000/svg" width="{WIDTH}" height="{HEIGHT}" '
        f'role="img" aria-label="{html.escape(drift.feature)}">'
    ]
    for i in range(bins):
        x = MARGIN + i * slot
        for side, share, inset in (
            ("reference", drift.reference_shares[i], 0.08),
            ("current", drift.current_shares[i], 0.3),
        ):
            height = plot_height * share / top
            parts.append(
                f'<rect class="{side}" x="{x + slot * inset:.1f}" '
                f'y="{MARGIN + plot_height - height:.1f}" width="{slot * (1 - 2 * inset):.1f}" '
                f'height="{height:.1f}" fill="{COLOURS[side]}"><title>{side} '
                f"{html.escape(drift.bins[i])}: {share:.1%}</title></rect>"
            )
        if bins <= 12:
            label = html.escape(_axis_label(drift, i))
            parts.append(
                f'<text x="{x + slot / 2:.1f}" y="{HEIGHT - 8}" font-size="9" '
                f'text-anchor="middle">{label}</text>'
            )
    parts.append(
        f'<line x1="{MARGIN}" y1="{MARGIN + plot_height}" x2="{WIDTH - MARGIN}" '
        f'y2="{MARGIN + plot_height}" stroke="#444"/>'
    )
    parts.append("</svg>")
    return "".join(parts)


def _axis_label(drift: FeatureDrift, i: int) -> str:
    """A category's name, or a numeric bin's lower edge (the whole bin is in the tooltip)."""
    if drift.categorical:
        return drift.bins[i][:12]
    low = drift.bins[i].strip("[").split(",")[0]
    return "" if low == "-inf" else f"≥{low}"


def _feature_section(view: str, drift: FeatureDrift) -> str:
    colour = VERDICT_COLOURS[drift.verdict]
    facts = [
        ("psi", _number(drift.psi)),
        ("js", _number(drift.js_distance)),
        ("ks", _number(drift.ks_statistic)),
        ("wasserstein (normed)", _number(drift.wasserstein_normed)),
        ("chi² p", _number(drift.chi_squared_p_value, 4)),
        ("null rate", f"{_number(drift.reference_null_rate)} → {_number(drift.current_null_rate)}"),
        ("mean", f"{_number(drift.reference_mean)} → {_number(drift.current_mean)}"),
        ("rows", f"{drift.reference_rows:,} → {drift.current_rows:,}"),
    ]
    listed = "".join(
        f"<li><b>{html.escape(k)}</b> {html.escape(v)}</li>"
        for k, v in facts
        if v not in ("-", "- → -")
    )
    reasons = html.escape("; ".join(drift.reasons)) or "within thresholds"
    return (
        f'<section class="feature {drift.verdict.value}">'
        f'<h2><span class="verdict" style="background:{colour}">{drift.verdict.value}</span> '
        f"{html.escape(view)}:{html.escape(drift.feature)}</h2>"
        f"<p>{reasons}</p>{distribution_svg(drift)}<ul>{listed}</ul></section>"
    )


def write_report(
    path: Path,
    reference: str,
    current: str,
    verdict: Verdict,
    drifts: dict[str, list[FeatureDrift]],
) -> Path:
    ordered = sorted(
        ((view, d) for view, found in drifts.items() for d in found),
        key=lambda item: (
            {Verdict.ALERT: 0, Verdict.WARN: 1, Verdict.OK: 2}[item[1].verdict],
            -(item[1].score or 0.0),
        ),
    )
    sections = "".join(_feature_section(view, d) for view, d in ordered)
    colour = VERDICT_COLOURS[verdict]
    page = f"""<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>Feature drift: {verdict.value}</title>
<style>
body {{ font-family: system-ui, sans-serif; margin: 2em; color: #222; }}
.verdict {{ color: white; padding: 0.1em 0.5em; border-radius: 0.3em; }}
section.feature {{ border-top: 1px solid #ddd; padding: 0.5em 0; }}
ul {{ list-style: none; padding: 0; display: flex; flex-wrap: wrap; gap: 1.2em; font-size: 0.9em; }}
.legend span {{ display: inline-block; width: 1em; height: 0.8em; margin: 0 0.3em 0 1em; }}
</style></head><body>
<h1><span class="verdict" style="background:{colour}">{verdict.value.upper()}</span>
feature drift</h1>
<p>current: {html.escape(current)}<br>reference: {html.escape(reference)}</p>
<p class="legend"><span style="background:{COLOURS["reference"]}"></span>reference
<span style="background:{COLOURS["current"]}"></span>current</p>
{sections}
</body></html>
"""
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(page, encoding="utf-8")
    return path
