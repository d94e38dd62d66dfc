"""Stats charts as SVG, drawn on the server: no chart library and no script in the browser.

Plain bar charts with labelled axes; colours and text are presentation attributes (the page
CSP forbids inline style). Each chart carries a <title> and <desc> for screen readers.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from datetime import date, datetime, timedelta
from xml.sax.saxutils import escape
from zoneinfo import ZoneInfo

from ..accounts import feedback, stats
from ..record.store import Store
from .i18n import Translator

CHARTS = ("wait-by-hour", "served-per-day", "tickets-by-source", "feedback-by-day")
DAYS = 14
W, H = 720, 300
LEFT, RIGHT, TOP, BOTTOM = 56, 16, 36, 48


def bar_chart(title: str, desc: str, labels: Sequence[str], values: Sequence[float], unit: str) -> str:
    """A bar chart with a zero-based y axis and four grid lines."""
    top = max(values, default=0) or 1
    step = _nice_step(top / 4)
    ymax = step * 4
    plot_w, plot_h = W - LEFT - RIGHT, H - TOP - BOTTOM
    slot = plot_w / max(len(values), 1)
    parts = [
        f'<svg xmlns="http://www.w3.org/2000/svg" viewBox="0 0 {W} {H}" width="{W}" height="{H}" role="img" '
        'aria-labelledby="t d" font-family="system-ui, \'Noto Sans\', \'Noto Sans Devanagari\', \'Lohit Devanagari\', sans-serif">',
        f'<title id="t">{escape(title)}</title><desc id="d">{escape(desc)}</desc>',
        f'<rect width="{W}" height="{H}" fill="#ffffff"/>',
        f'<text x="{LEFT}" y="22" font-size="15" font-weight="700" fill="#111827">{escape(title)}</text>',
    ]
    for i in range(5):
        y = TOP + plot_h - plot_h * i / 4
        parts.append(f'<line x1="{LEFT}" x2="{W - RIGHT}" y1="{y:.1f}" y2="{y:.1f}" stroke="#e5e7eb"/>')
        parts.append(f'<text x="{LEFT - 6}" y="{y + 4:.1f}" font-size="11" text-anchor="end" fill="#4b5563">'
                     f'{_fmt(step * i)}</text>')
    every = max(1, len(labels) // 12)
    for i, (label, value) in enumerate(zip(labels, values)):
        bh = plot_h * value / ymax
        x = LEFT + i * slot + slot * 0.15
        parts.append(f'<rect x="{x:.1f}" y="{TOP + plot_h - bh:.1f}" width="{slot * 0.7:.1f}" height="{bh:.1f}" '
                     f'fill="#0b5cad"><title>{escape(label)}: {_fmt(value)} {escape(unit)}</title></rect>')
        if i % every == 0:
            parts.append(f'<text x="{x + slot * 0.35:.1f}" y="{H - BOTTOM + 16}" font-size="11" text-anchor="middle" '
                         f'fill="#4b5563">{escape(label)}</text>')
    parts.append(f'<text x="{W - RIGHT}" y="{H - 8}" font-size="11" text-anchor="end" fill="#4b5563">{escape(unit)}</text>')
    parts.append("</svg>")
    return "".join(parts)


def _nice_step(raw: float) -> float:
    """The smallest of 1, 2, 5 times a power of ten that is at least ``raw`` (and at least 1)."""
    if raw <= 1:
        return 1.0
    magnitude = 10.0 ** math.floor(math.log10(raw))
    return next(m * magnitude for m in (1, 2, 5, 10) if m * magnitude >= raw)


def _fmt(v: float) -> str:
    return str(int(v)) if float(v).is_integer() else f"{v:.1f}"


async def render(store: Store, clinic_id: str, name: str, t: Translator, now_ms: int) -> str:
    """One chart over the last :data:`DAYS` days, counted in the clinic's timezone and ending
    today there; buckets too small to publish stay empty."""
    tz = await store.fetchval("SELECT timezone FROM clinics WHERE id = ?", (clinic_id,))
    today = datetime.fromtimestamp(now_ms / 1000, tz=ZoneInfo(tz or "UTC")).date()
    if name == "feedback-by-day":  # patient services (#22): mean rating per day, small days suppressed
        first = today - timedelta(days=DAYS - 1)
        means = await feedback.daily_means(store, clinic_id, first, DAYS)
        return bar_chart(t("admin.chart_feedback", days=DAYS), t("admin.chart_feedback_desc"),
                         [d[5:] for d, _ in means], [m for _, m in means], t("admin.unit_rating"))
    start = (today - timedelta(days=DAYS - 1)).isoformat()
    data = await stats.clinic_stats(store, clinic_id, start, today.isoformat(), now_ms)
    if name == "wait-by-hour":
        waits = {r["hour"]: (r.get("wait_p50_s") or 0) / 60 for r in data["by_hour"]}
        hours = range(min([8, *waits]), max([20, *waits]) + 1)  # at least the usual opening hours
        return bar_chart(t("admin.chart_wait", days=DAYS), t("admin.chart_wait_desc"),
                         [f"{h:02d}" for h in hours], [round(waits.get(h, 0), 1) for h in hours], t("admin.unit_minutes"))
    if name == "tickets-by-source":  # a suppressed bucket (too few to publish) draws as 0
        return bar_chart(t("admin.chart_source", days=DAYS), t("admin.chart_source_desc"),
                         [t("source." + r["source"]) for r in data["by_source"]],
                         [r.get("tickets") or 0 for r in data["by_source"]], t("admin.unit_tickets"))
    served = {r["date"]: r.get("served") or 0 for r in data["by_day"]}
    first = date.fromisoformat(data["from"])
    days = [(first + timedelta(days=i)).isoformat() for i in range(DAYS)]
    return bar_chart(t("admin.chart_served", days=DAYS), t("admin.chart_served_desc"),
                     [d[5:] for d in days], [served.get(d, 0) for d in days], t("admin.unit_patients"))
