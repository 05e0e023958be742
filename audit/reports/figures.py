"""The report's charts as plotly figures, shared by the static reports and the dashboard's Reports page.

Each function takes the JSON-ready data of a :class:`~audit.reports.model.Figure` block
(its ``data`` mapping, as keyword arguments) and returns a ``plotly.graph_objects.Figure``;
:func:`draw` picks the function a block names. Nothing here imports streamlit: the HTML
renderer embeds these figures with plotly.js inline, and the dashboard shows the same
figures with ``st.plotly_chart``. Text from data (group names, galleries) is set as plotly
text, which plotly escapes.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from typing import Any

import plotly.graph_objects as go
from plotly.subplots import make_subplots

__all__ = ["FIGURES", "draw", "group_rates", "one_to_n_chance", "review_outcomes", "usage_over_time"]

_WIDTH, _HEIGHT = 680, 320
_STATUS_COLOURS = {"confirmed": "#2e7d32", "rejected": "#c62828", "vetoed": "#6a1b9a", "pending": "#f9a825"}


def _layout(fig: go.Figure, title: str, height: int = _HEIGHT) -> go.Figure:
    fig.update_layout(title={"text": title, "font": {"size": 14}}, width=_WIDTH, height=height,
                      margin={"l": 60, "r": 20, "t": 50, "b": 50}, template="plotly_white",
                      legend={"orientation": "h", "y": -0.2})
    return fig


def usage_over_time(months: Sequence[str], series: Mapping[str, Sequence[int]]) -> go.Figure:
    """Draw uses per month, stacked by action."""
    fig = go.Figure([go.Bar(x=list(months), y=list(values), name=name) for name, values in series.items()])
    fig.update_layout(barmode="stack", xaxis={"title": "month (UTC)", "type": "category"}, yaxis_title="uses")
    return _layout(fig, "Uses per month")


def review_outcomes(outcomes: Mapping[str, int]) -> go.Figure:
    """Candidates by review status."""
    names = list(outcomes)
    fig = go.Figure(go.Bar(x=names, y=[outcomes[n] for n in names], text=[outcomes[n] for n in names],
                           marker_color=[_STATUS_COLOURS.get(n, "#546e7a") for n in names]))
    fig.update_layout(xaxis_title="status under the two-person rule", yaxis_title="candidates", showlegend=False)
    return _layout(fig, "Review outcomes")


def _bar(fig: go.Figure, rows: Sequence[Mapping[str, Any]], metric: str, col: int) -> None:
    values = [r[metric] or 0.0 for r in rows]
    fig.add_trace(go.Bar(
        y=[r["group"] for r in rows], x=values, orientation="h", name=metric.upper(), showlegend=False,
        error_x={"type": "data", "symmetric": False,
                 "array": [max((r[f"{metric}_hi"] or v) - v, 0.0) for r, v in zip(rows, values, strict=True)],
                 "arrayminus": [max(v - (r[f"{metric}_lo"] or v), 0.0) for r, v in zip(rows, values, strict=True)]},
    ), row=1, col=col)


def group_rates(rows: Sequence[Mapping[str, Any]]) -> go.Figure:
    """FMR and FNMR per group with their 95% intervals (two panels)."""
    fig = make_subplots(rows=1, cols=2, subplot_titles=("false match rate", "false non-match rate"),
                        shared_yaxes=True, horizontal_spacing=0.08)
    _bar(fig, rows, "fmr", 1)
    _bar(fig, rows, "fnmr", 2)
    fig.update_xaxes(tickformat=".1e", row=1, col=1)
    fig.update_xaxes(tickformat=".0%", row=1, col=2)
    return _layout(fig, "Error rates by group (95% intervals)", height=140 + 28 * max(len(rows), 1))


def one_to_n_chance(sizes: Sequence[int], chance: Sequence[float | None], threshold: float | None,
                    searched: Sequence[Mapping[str, Any]]) -> go.Figure:
    """Chance of at least one false candidate against gallery size, with the galleries searched marked."""
    fig = go.Figure(go.Scatter(x=list(sizes), y=list(chance), mode="lines", name="chance at this threshold"))
    fig.add_trace(go.Scatter(x=[s["size"] for s in searched], y=[s["chance"] for s in searched],
                             mode="markers+text", text=[s["gallery"] for s in searched], textposition="top left",
                             marker={"size": 10, "color": "#c62828"}, name="galleries searched"))
    fig.update_layout(xaxis={"type": "log", "title": "gallery size (faces)"},
                      yaxis={"title": "chance of a false candidate", "tickformat": ".0%", "range": [0, 1.05]})
    return _layout(fig, f"False-candidate chance against gallery size (threshold {threshold})")


#: Figure name (in a :class:`~audit.reports.model.Figure` block) -> function.
FIGURES: dict[str, Callable[..., go.Figure]] = {"usage_over_time": usage_over_time, "review_outcomes": review_outcomes, "group_rates": group_rates,
           "one_to_n_chance": one_to_n_chance}


def draw(name: str, data: Mapping[str, Any]) -> go.Figure:
    """Draw the figure a block names with its data.

    Raises
    ------
    KeyError
        No figure of that name.
    """
    return FIGURES[name](**dict(data))
