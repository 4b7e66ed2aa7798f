"""The evidence behind docs/analytics.md, "Multivariate monitoring: which library": the same
multiway PCA fitted by process-improve (BatchPCA), pyphi-mvda (mpca) and the platform's own
compact implementation on scikit-learn (chrom_platform/lib/analytics/mspc.py), on the nylon
autoclave batches (Kassidas 1997; Wold, Kettaneh-Wold, MacGregor and Dunn 2009), a published
batch data set process-improve ships; then timed on a unit's binned batches here.

Not part of the platform or its tests (neither library is a dependency); run it with both
installed beside the project:

    python3 -m uv run --with process-improve --with pyphi-mvda python scripts/mspc_libraries.py
"""

from __future__ import annotations

import time
import warnings

import numpy as np

warnings.filterwarnings("ignore")

A = 3


def nylon() -> tuple[list[str], np.ndarray, list[str]]:
    from process_improve.batch.datasets import load_nylon

    batches = load_nylon()
    n = min(len(b) for b in batches.values())
    ids = list(batches)
    tags = list(next(iter(batches.values())).columns)
    # aligned by truncation to the shortest batch (113 samples): the three fits see the
    # same matrix, which is what is being compared
    x = np.stack([batches[b][tags].to_numpy(dtype=float)[:n] for b in ids])
    return [str(b) for b in ids], x, tags


def ours(ids: list[str], x: np.ndarray, tags: list[str]) -> dict[str, object]:
    from chrom_platform.lib.analytics import mspc
    from chrom_platform.lib.analytics.envelope import BinnedBatches

    keys = [(1, "all", k) for k in range(x.shape[1])]
    g = BinnedBatches("nylon", "autoclave", ids, keys, x, np.zeros(x.shape[:2]))
    t0 = time.perf_counter()
    core = mspc._fit_core(x, A, tags)
    fit_s = time.perf_counter() - t0
    _, _, scores, xs, _ = mspc._stats(core, x)
    # the full-batch statistics: scores after the last sample, SPE over the whole batch
    resid = xs - np.einsum("kja,nka->nkj", core.loadings, scores[:, -1:, :].repeat(x.shape[1], 1))
    t_full = scores[:, -1, :]
    lam = t_full.var(axis=0, ddof=1)
    model_t0 = time.perf_counter()
    mspc.fit(g, list(range(len(ids))), mspc.MspcParams(components=A, signals=tuple(tags)))
    return {
        "r2": core.explained,
        "t2": np.sum(t_full**2 / lam, axis=1),
        "spe": np.sum(resid**2, axis=(1, 2)),
        "scores": t_full,
        "fit_s": fit_s,
        "model_s": time.perf_counter() - model_t0,
    }


def process_improve(ids: list[str], x: np.ndarray, tags: list[str]) -> dict[str, object]:
    import pandas as pd
    from process_improve.batch import BatchMonitor, BatchPCA

    data = {b: pd.DataFrame(x[i], columns=tags) for i, b in enumerate(ids)}
    t0 = time.perf_counter()
    m = BatchPCA(n_components=A).fit(data)
    fit_s = time.perf_counter() - t0
    t1 = time.perf_counter()
    BatchMonitor(m).fit(data)
    return {
        "r2": np.asarray(m.r2_per_component_),
        # its rows follow its own batch order: back to ours
        "t2": m.hotellings_t2_.iloc[:, -1]
        .reindex(m.batch_ids_)
        .set_axis(m.batch_ids_)
        .loc[ids]
        .to_numpy(),
        "spe": m.spe_.iloc[:, -1].set_axis(m.batch_ids_).loc[ids].to_numpy(),
        "scores": m.scores_.set_axis(m.batch_ids_).loc[ids].to_numpy(),
        "fit_s": fit_s,
        "model_s": time.perf_counter() - t1 + fit_s,
    }


def pyphi(ids: list[str], x: np.ndarray, tags: list[str]) -> dict[str, object]:
    import pandas as pd
    from pyphi import batch as phib

    rows = [
        pd.DataFrame({"batch": b, **{t: x[i, :, j] for j, t in enumerate(tags)}})
        for i, b in enumerate(ids)
    ]
    frame = pd.concat(rows, ignore_index=True)
    t0 = time.perf_counter()
    m = phib.mpca(frame, A)
    fit_s = time.perf_counter() - t0
    return {
        "r2": np.asarray(m["r2x"]).ravel(),
        "t2": np.asarray(m["T2"]).ravel(),
        "spe": np.asarray(m["speX"]).ravel(),
        "scores": np.asarray(m["T"]),
        "fit_s": fit_s,
        "model_s": float("nan"),
    }


def main() -> None:
    ids, x, tags = nylon()
    print(f"nylon: {x.shape[0]} batches x {x.shape[1]} samples x {x.shape[2]} tags, {A} components")
    got = {}
    for name, f in (
        ("ours (scikit-learn)", ours),
        ("process-improve", process_improve),
        ("pyphi-mvda", pyphi),
    ):
        try:
            got[name] = f(ids, x, tags)
        except Exception as e:  # report and go on: the comparison says what failed
            print(f"{name}: failed: {type(e).__name__}: {e}")
    ref = got["ours (scikit-learn)"]
    for name, r in got.items():
        corr = [abs(np.corrcoef(r["scores"][:, a], ref["scores"][:, a])[0, 1]) for a in range(A)]
        t2 = np.corrcoef(r["t2"], ref["t2"])[0, 1]
        spe = np.corrcoef(r["spe"], ref["spe"])[0, 1]
        print(
            f"{name:22s} R2 per component {np.round(r['r2'], 4)}  |corr| of scores with ours "
            f"{np.round(corr, 6)}  T2 corr {t2:.6f}  SPE corr {spe:.6f}  "
            f"fit {1000 * r['fit_s']:.0f} ms  with online limits {1000 * r['model_s']:.0f} ms"
        )
        top = np.argsort(-r["t2"])[:5]
        print(f"{'':22s} largest T2: batches {[ids[i] for i in top]}")


if __name__ == "__main__":
    main()
