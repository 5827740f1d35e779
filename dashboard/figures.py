"""Plotly figures (plain `{"data", "layout"}` dicts) built from the `data.py` infos; no data logic here.

Figures are dicts rather than `plotly.graph_objects.Figure` so a 10,000-point study is drawn without
plotly's per-property validation; the tests check every figure against plotly's schema.
Trace `customdata` holds the trial number: the page opens that trial when a point is clicked.
Text from the DB (plan summaries, failure notes, family and metric names) goes through `plain`:
plotly reads `<a>`, `<b>`, ... in figure text as markup, so `&`, `<`, `>` are sent as entities.
"""

from __future__ import annotations

import math
from typing import Any

from autopeft.dashboard.data import SIZE_NAMES, HypervolumeInfo, LayerMapInfo, ParetoFrontInfo, PlanInfo, RefinementInfo

ACCENT = "#4338ca"
MUTED = "#94a3b8"
FAIL = "#dc2626"
BUDGET = "#d97706"
REFINED = "#059669"
FONT = {"family": "system-ui, -apple-system, Segoe UI, Roboto, sans-serif", "size": 13, "color": "#1e293b"}
SIZES_SCALE = [[0.0, "#e0e7ff"], [0.5, "#818cf8"], [1.0, "#312e81"]]

Figure = dict[str, Any]


def plain(text: Any) -> str:
    """`text` for plotly as plain text: `&`, `<`, `>` as entities (no link, no tag), `%{` not a template field."""
    return str(text).replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;").replace("%{", "%&#123;")


def _layout(**extra: Any) -> dict[str, Any]:
    base = {"font": FONT, "paper_bgcolor": "rgba(0,0,0,0)", "plot_bgcolor": "#ffffff",
            "margin": {"l": 64, "r": 24, "t": 24, "b": 56}, "hovermode": "closest",
            "legend": {"orientation": "h", "yanchor": "bottom", "y": 1.02, "x": 0}}
    base.update(extra)
    return base


def _axis(title: str, **extra: Any) -> dict[str, Any]:
    return {"title": {"text": title}, "gridcolor": "#e2e8f0", "zeroline": False, "linecolor": "#cbd5e1",
            "automargin": True, **extra}


def pareto_figure(info: ParetoFrontInfo, metric_name: str = "metric", refined: RefinementInfo | None = None) -> Figure:
    """Front as a step line with markers, dominated trials faded, failed ones as crosses, budget line;
    with a refinement, the refined means with ± sd error bars (hollow when off the refined front)."""
    metric_name = plain(metric_name)
    hover = "<b>trial %{customdata}</b><br>%{text}<br>" + metric_name + " %{y:.4f}<br>params %{x:.4g}%<extra></extra>"
    traces = [
        {"type": "scatter", "mode": "markers", "name": f"dominated ({len(info.dominated)})",
         "x": [p.params_pct for p in info.dominated], "y": [p.metric for p in info.dominated],
         "customdata": [p.number for p in info.dominated], "text": [plain(p.summary) for p in info.dominated],
         "hovertemplate": hover, "marker": {"color": MUTED, "size": 6, "opacity": 0.45}},
        {"type": "scatter", "mode": "markers", "name": f"failed ({len(info.failed)})",
         "x": [p.params_pct for p in info.failed], "y": [info.failed_y] * len(info.failed),
         "customdata": [p.number for p in info.failed], "text": [f"{plain(p.summary)}<br>{plain(p.note)}" for p in info.failed],
         "hovertemplate": "<b>trial %{customdata}</b> failed<br>%{text}<extra></extra>",
         "marker": {"color": FAIL, "size": 7, "symbol": "x-thin-open", "opacity": 0.5, "line": {"width": 1.5}}},
        {"type": "scatter", "mode": "lines+markers", "name": f"Pareto front ({len(info.front)})",
         "x": [p.params_pct for p in info.front], "y": [p.metric for p in info.front],
         "customdata": [p.number for p in info.front], "text": [plain(p.summary) for p in info.front],
         "hovertemplate": hover, "line": {"shape": "hv", "color": ACCENT, "width": 2},
         "marker": {"color": ACCENT, "size": 9, "line": {"color": "#ffffff", "width": 1.5}}},
    ]
    if refined is not None:
        traces += _refined_traces(refined)
    shapes, annotations = [], []
    if info.budget_pct:
        x = info.budget_pct
        shapes.append({"type": "line", "xref": "x", "yref": "paper", "x0": x, "x1": x, "y0": 0, "y1": 1,
                       "line": {"color": BUDGET, "width": 1.5, "dash": "dash"}})
        # plotly places annotations on a log axis by log10 of the value (shapes by the value itself)
        annotations.append({"xref": "x", "yref": "paper", "x": math.log10(x), "y": 1, "yanchor": "bottom", "showarrow": False,
                            "text": f"budget {info.budget_pct:g}%", "font": {"color": BUDGET, "size": 12}})
    return {"data": traces, "layout": _layout(
        xaxis=_axis("trainable parameters (% of the model, log scale)", type="log"),
        yaxis=_axis(metric_name), shapes=shapes, annotations=annotations, height=460,
        margin={"l": 64, "r": 24, "t": 48, "b": 56})}


def _refined_traces(refined: RefinementInfo) -> list[dict[str, Any]]:
    """Refined mean ± sd per refined front trial, and the refined front as a dashed step line."""
    points = [p for p in refined.comparison.points if p.refined_mean is not None]
    front = [p for p in points if p.refined_front]
    metric = plain(refined.refinement.metric)
    hover = ("<b>trial %{customdata}</b> refined<br>" + metric + " %{y:.4f} ± %{error_y.array:.4f}<br>"
             "%{text}<br>params %{x:.4g}%<extra></extra>")
    return [
        {"type": "scatter", "mode": "lines", "name": "refined front", "x": [p.params_pct for p in front],
         "y": [p.refined_mean for p in front], "hoverinfo": "skip",
         "line": {"shape": "hv", "color": REFINED, "width": 1.5, "dash": "dash"}},
        {"type": "scatter", "mode": "markers", "name": f"refined mean ± sd ({len(points)})",
         "x": [p.params_pct for p in points], "y": [p.refined_mean for p in points],
         "error_y": {"type": "data", "array": [p.refined_sd or 0.0 for p in points], "visible": True,
                     "color": REFINED, "thickness": 1.5, "width": 4},
         "customdata": [p.trial for p in points],
         "text": [f"search {p.search_metric:.4f}, {p.refined_n} seed(s)" for p in points], "hovertemplate": hover,
         "marker": {"color": REFINED, "size": 9, "line": {"color": REFINED, "width": 1.5},
                    "symbol": ["diamond" if p.refined_front else "diamond-open" for p in points]}},
    ]


def hypervolume_figure(info: HypervolumeInfo) -> Figure:
    """Two panels: hypervolume against trial number, and against wall-clock completion time."""
    line = {"color": ACCENT, "width": 2, "shape": "hv"}
    traces = [
        {"type": "scatter", "mode": "lines", "name": "by trial", "x": info.numbers, "y": info.by_number,
         "line": line, "hovertemplate": "trial %{x}<br>hypervolume %{y:.4g}<extra></extra>", "showlegend": False},
        {"type": "scatter", "mode": "lines", "name": "by time", "x": info.times, "y": info.by_time,
         "xaxis": "x2", "yaxis": "y2", "line": line, "showlegend": False,
         "hovertemplate": "%{x}<br>hypervolume %{y:.4g}<extra></extra>"},
    ]
    return {"data": traces, "layout": _layout(
        xaxis=_axis("trial number", domain=[0, 0.47]), yaxis=_axis("hypervolume"),
        xaxis2=_axis("completed at", domain=[0.53, 1], type="date"), yaxis2=_axis("", anchor="x2"),
        height=300)}


def _size_heatmap(sizes: list[list[int]], family: str, x: list[int], y: list[str], axis: str,
                  customdata: list[list[int]] | None, showscale: bool) -> dict[str, Any]:
    """Heatmap of sizes; absent (0) cells are blank; colour = log2(size) so ranks 2 and 64 both read."""
    z = [[math.log2(s) + 1 if s else None for s in row] for row in sizes]
    text = [[str(s) if s else "" for s in row] for row in sizes]
    what = SIZE_NAMES.get(family.split(":")[0], "size")
    family = plain(family)
    trace = {"type": "heatmap", "z": z, "x": x, "y": y, "text": text, "texttemplate": "%{text}",
             "xaxis": f"x{axis}", "yaxis": f"y{axis}", "colorscale": SIZES_SCALE, "zmin": 1, "zmax": 11,
             "showscale": False, "xgap": 2, "ygap": 2, "name": family,
             "hovertemplate": f"{family} {what} %{{text}}<br>layer %{{x}}<extra>%{{y}}</extra>"}
    if customdata is not None:
        trace["customdata"] = customdata
    return trace


def _panels(families: list[str], gap: float = 0.04) -> list[list[float]]:
    width = (1 - gap * (len(families) - 1)) / max(len(families), 1)
    return [[k * (width + gap), k * (width + gap) + width] for k in range(len(families))]


def layer_map_figure(info: LayerMapInfo) -> Figure:
    """One panel per module family: Pareto-optimal trials (rows, cheapest at the bottom) x layers."""
    layers = list(range(info.num_layers))
    labels = [f"#{n} · {pct:.3g}%" for n, pct in zip(info.numbers, info.params_pct, strict=True)]
    traces, layout = [], _layout(height=max(220, 70 + 22 * len(info.numbers)), margin={"l": 110, "r": 16, "t": 40, "b": 48})
    annotations = []
    for k, (family, domain) in enumerate(zip(info.families, _panels(info.families), strict=True)):
        axis = "" if k == 0 else str(k + 1)
        custom = [[n] * info.num_layers for n in info.numbers]
        traces.append(_size_heatmap(info.sizes[family], family, layers, labels, axis, custom, showscale=False))
        layout[f"xaxis{axis}"] = _axis("layer", domain=domain, dtick=1, showgrid=False, anchor=f"y{axis}")
        layout[f"yaxis{axis}"] = _axis("", anchor=f"x{axis}", showgrid=False, type="category",
                                       showticklabels=k == 0, **({} if k == 0 else {"matches": "y"}))
        annotations.append({"xref": f"x{axis} domain", "yref": "paper", "x": 0.5, "y": 1.0, "yanchor": "bottom",
                            "showarrow": False, "text": f"<b>{plain(family)}</b> ({SIZE_NAMES.get(family.split(':')[0], 'size')})"})
    layout["annotations"] = annotations
    return {"data": traces, "layout": layout}


def plan_figure(info: PlanInfo) -> Figure:
    """A single plan: module families (rows) x layers (columns), cell = size."""
    sizes = [info.sizes[f] for f in info.families]
    labels = [f"{plain(f)} ({SIZE_NAMES.get(f.split(':')[0], 'size')})" for f in info.families]
    trace = _size_heatmap(sizes, "", list(range(info.num_layers)), labels, "", None, showscale=False)
    trace["hovertemplate"] = "%{y}: %{text}<br>layer %{x}<extra></extra>"
    return {"data": [trace], "layout": _layout(
        xaxis=_axis("layer", dtick=1, showgrid=False), yaxis=_axis("", showgrid=False, type="category"),
        height=max(160, 90 + 44 * len(info.families)), margin={"l": 120, "r": 16, "t": 16, "b": 48})}
