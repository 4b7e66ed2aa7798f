"""Pictures for engineers: a batch over its golden envelope by column volume, and column
performance across cycles. Rendered with matplotlib (Agg, no display) to PNG bytes; the
Dagster assets put them in their metadata and write an HTML report beside them.
"""

from __future__ import annotations

import base64
import html
import io
from collections.abc import Sequence
from functools import cache
from typing import Any

from chrom_platform.lib.core.contracts import SIGNALS

LABELS = {
    "flow_lpm": "flow (L/min)",
    "pressure_bar": "pressure (bar)",
    "uv_mau": "UV 280 (mAU)",
    "cond_ms_cm": "conductivity (mS/cm)",
    "ph": "pH",
}


@cache
def _pyplot() -> Any:
    """matplotlib's pyplot on the Agg backend (no display), imported when a picture is drawn:
    0.4 s that every process loading the code location paid at start, most drawing none."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def _png(fig: Any) -> bytes:
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=80, bbox_inches="tight")
    _pyplot().close(fig)
    return buf.getvalue()


def overlay_png(
    batch_id: str,
    batch_bins: list[dict[str, Any]],
    envelope: dict[tuple[str, int, str], dict[str, Any]],
    alarms: Sequence[dict[str, Any]],
    mspc: dict[str, Any] | None = None,
) -> bytes:
    """One panel per signal: the batch (bin means by batch CV) over the envelope's limits
    (centre +- z_limit x scale) and its 5-95% band; drift alarms as red lines; where the
    multivariate (T2 / SPE) alarm fired as a purple line on every panel, with the signals
    that carried it (`mspc`: the batch's gold_mspc_verdict row, when it alarmed).

    batch_bins: rows with phase, cv_bin, batch_cv and the signals, in batch-CV order;
    envelope: (phase, cv_bin, signal) -> row of gold_golden_envelope."""
    fig, axes = _pyplot().subplots(len(SIGNALS), 1, figsize=(11, 2.1 * len(SIGNALS)), sharex=True)
    x = [r["batch_cv"] for r in batch_bins]
    for ax, s in zip(axes, SIGNALS, strict=True):
        env = [envelope.get((r["phase"], r["cv_bin"], s)) for r in batch_bins]
        lo = [e["lower"] if e and e["lower"] is not None else float("nan") for e in env]
        hi = [e["upper"] if e and e["upper"] is not None else float("nan") for e in env]
        q05 = [e["q05"] if e else float("nan") for e in env]
        q95 = [e["q95"] if e else float("nan") for e in env]
        mid = [e["centre"] if e and e["centre"] is not None else float("nan") for e in env]
        ax.fill_between(x, lo, hi, color="#c9d6e8", label="envelope limits", step="mid")
        ax.fill_between(x, q05, q95, color="#8fa8cc", label="5-95% of released", step="mid")
        ax.plot(x, mid, color="#44618f", lw=0.8, ls="--", label="median")
        ax.plot(x, [r[s] for r in batch_bins], color="#d9480f", lw=1.2, label=batch_id)
        for a in alarms:
            if a["signal"] == s and a.get("alarm_cv") is not None:
                ax.axvline(a["alarm_cv"], color="red", lw=1.5)
                ax.annotate(
                    "drift",
                    (a["alarm_cv"], 1.0),
                    xycoords=("data", "axes fraction"),
                    color="red",
                    fontsize=8,
                    va="top",
                )
        if mspc and mspc.get("alarm_cv") is not None:
            ax.axvline(mspc["alarm_cv"], color="#7b2cbf", lw=1.5, ls="-.")
        ax.set_ylabel(LABELS[s], fontsize=8)
        ax.tick_params(labelsize=7)
    if mspc and mspc.get("alarm_cv") is not None:
        axes[0].annotate(
            f"multivariate {str(mspc.get('alarm_statistic', '')).upper()} alarm: "
            f"{(mspc.get('top_signals') or '').replace(',', ', ')}",
            (mspc["alarm_cv"], 0.85),
            xycoords=("data", "axes fraction"),
            color="#7b2cbf",
            fontsize=8,
            va="top",
        )
    axes[0].legend(fontsize=7, ncol=4, loc="upper right")
    axes[0].set_title(f"{batch_id} over its golden envelope (by batch CV, holds removed)")
    axes[-1].set_xlabel("batch CV")
    return _png(fig)


def column_trend_png(rows: list[dict[str, Any]]) -> bytes:
    """HETP, asymmetry and permeability per column across cycles, with the limits."""
    fig, axes = _pyplot().subplots(3, 1, figsize=(11, 7), sharex=True)
    by_col: dict[str, list[dict[str, Any]]] = {}
    for r in rows:
        by_col.setdefault(r["column_id"], []).append(r)
    for col, rs in sorted(by_col.items()):
        rs.sort(key=lambda r: r["column_cycle"])
        cyc = [r["column_cycle"] for r in rs]
        (line,) = axes[0].plot(cyc, [r["batch_hetp_cm"] for r in rs], ".-", lw=0.8, label=col)
        axes[0].plot(cyc, [r["hetp_limit_cm"] for r in rs], ls=":", color=line.get_color())
        axes[1].plot(cyc, [r["batch_asymmetry"] for r in rs], ".-", lw=0.8, color=line.get_color())
        axes[1].plot(cyc, [r["asymmetry_limit"] for r in rs], ls=":", color=line.get_color())
        axes[2].plot(cyc, [r["permeability_m2"] for r in rs], ".-", lw=0.8, color=line.get_color())
    axes[0].set_ylabel("HETP (cm)")
    axes[1].set_ylabel("asymmetry")
    axes[2].set_ylabel("permeability (m2)")
    axes[2].set_xlabel("column cycle")
    axes[0].legend(fontsize=7, ncol=4)
    axes[0].set_title("Column performance across cycles (dotted: limits)")
    return _png(fig)


def img_markdown(png: bytes, alt: str) -> str:
    return f"![{alt}](data:image/png;base64,{base64.b64encode(png).decode()})"


def html_report(title: str, png: bytes, table: list[dict[str, Any]]) -> str:
    head = "".join(f"<th>{html.escape(str(k))}</th>" for k in (table[0] if table else {}))
    body = "".join(
        "<tr>" + "".join(f"<td>{html.escape(str(v))}</td>" for v in r.values()) + "</tr>"
        for r in table
    )
    return (
        f"<!doctype html><html><head><meta charset='utf-8'><title>{html.escape(title)}</title>"
        "<style>body{font-family:sans-serif}td,th{border:1px solid #ccc;padding:2px 6px;"
        "font-size:12px}</style></head><body>"
        f"<h1>{html.escape(title)}</h1>"
        f"<img alt='{html.escape(title)}' src='data:image/png;base64,{base64.b64encode(png).decode()}'>"
        f"<table><tr>{head}</tr>{body}</table></body></html>"
    )
