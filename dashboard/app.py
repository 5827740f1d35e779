"""The dashboard's FastAPI app: HTML pages, the JSON API behind them, exports. Read-only.

`create_app(storage_url, token)` builds everything (storage, caches) — nothing happens at import.
Pages are small HTML shells; `static/dashboard.js` fills them from the JSON API with `textContent`
only (study names, plan fields and error texts are never parsed as HTML) and polls it for live
updates. Responses of the study API carry an ETag so an unchanged study costs a 304.
"""

from __future__ import annotations

import contextlib
import hmac
import secrets
import tempfile
import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from enum import Enum
from pathlib import Path
from typing import Any
from urllib.parse import urlencode

from fastapi import FastAPI, HTTPException, Query, Request, Response
from fastapi.responses import FileResponse, HTMLResponse, JSONResponse, RedirectResponse
from fastapi.staticfiles import StaticFiles

from autopeft.dashboard import figures, pages
from autopeft.dashboard.data import (
    STATES,
    TrialQuery,
    hypervolume_info,
    layer_map_info,
    pareto_front_info,
    plan_info,
    refinement_info,
    trial_detail,
    trial_table,
)
from autopeft.search_spaces import families
from autopeft.search_spaces.families import NAMES as FAMILIES
from autopeft.store import StudyError, spec_record, summarize
from autopeft.store.attrs import trial_attr
from autopeft.store.connect import open_readonly
from autopeft.store.linked import read_refinement
from autopeft.store.reader import StudyInfo, StudyReader, TrialRow

STATIC = Path(__file__).parent / "static"
TOKEN_COOKIE = "autopeft_dashboard_token"
CSP = ("default-src 'self'; script-src 'self'; style-src 'self' 'unsafe-inline'; img-src 'self' data: blob:; "
       "connect-src 'self'; object-src 'none'; base-uri 'none'; frame-ancestors 'none'; form-action 'self'")


# What `autopeft export --format` writes: peft `adapter_config.json`, AdapterHub config, autopeft YAML.
ExportFormat = Enum("ExportFormat", {f: f for f in families.FORMATS}, type=str)


@dataclass
class StudyView:
    """Everything the study page draws, computed once per study version."""

    version: int
    info: StudyInfo
    rows: list[TrialRow]
    summary: dict[str, Any]
    pareto: Any
    pareto_numbers: frozenset[int]
    hypervolume: Any
    layer_map: Any
    refinement: Any = None  # RefinementInfo of the newest `autopeft refine` study, or None
    key: tuple = ()  # what the view was built from: (trials version, (refinement id, its version) or None)
    _figures: dict[str, Any] | None = field(default=None, repr=False)
    _data: dict[str, Any] | None = field(default=None, repr=False)

    def refinement_data(self) -> dict[str, Any] | None:
        return self.refinement.to_dict() if self.refinement is not None else None

    def data(self) -> dict[str, Any]:
        if self._data is None:
            self._data = {"version": self.version, "summary": self.summary,
                          "spec": spec_record(self.info.spec), "pareto_front": self.pareto.to_dict(),
                          "hypervolume": self.hypervolume.to_dict(), "layer_map": self.layer_map.to_dict(),
                          "refinement": self.refinement_data()}
        return self._data

    def figures(self) -> dict[str, Any]:
        if self._figures is None:
            objective = self.info.objective
            name = "task metric" if objective.metric in ("auto", "metric") else objective.metric
            self._figures = {"pareto": figures.pareto_figure(self.pareto, f"{name} {objective.arrow}", self.refinement),
                             "hypervolume": figures.hypervolume_figure(self.hypervolume),
                             "layer_map": figures.layer_map_figure(self.layer_map)}
        return self._figures


class Views:
    """Per-study `StudyView` cache keyed by the reader's version (recomputed only after a change)."""

    def __init__(self, reader: StudyReader):
        self.reader = reader
        self._views: dict[int, StudyView] = {}
        self._lock = threading.Lock()

    def get(self, study_id: int) -> StudyView:
        """The study's view; rebuilt when a trial of the study, or of its newest refinement, changed.

        `StudyView.version` counts rebuilds of this study's view (it is what pages poll and ETags carry).
        """
        info = self._info(study_id)
        version, rows = self.reader.snapshot(study_id)
        linked = self.reader.refinements(info.name)
        key = (version, (linked[-1][0], self.reader.snapshot(linked[-1][0])[0]) if linked else None)
        with self._lock:
            view = self._views.get(study_id)
            if view is None or view.key != key:
                refinement = read_refinement(self.reader.storage, linked[-1][1]) if linked else None
                view = self._build(info, view.version + 1 if view else 1, rows, refinement, [n for _, n in linked])
                view.key = key
                self._views[study_id] = view
            return view

    def warm(self) -> None:
        """Build every study's view (the server's warm-up); a study that cannot be read is skipped here."""
        for info in self.reader.studies():
            if info.spec is not None:
                try:
                    self.get(info.study_id)
                except Exception:  # noqa: BLE001  the request for that study will report the error
                    continue

    def _info(self, study_id: int) -> StudyInfo:
        try:
            info = self.reader.study(study_id)
        except StudyError as exc:
            raise HTTPException(404, str(exc)) from None
        if info.spec is None:
            raise HTTPException(404, f"study {info.name!r} was not made by autopeft (it stores no spec)")
        return info

    @staticmethod
    def _build(info: StudyInfo, version: int, rows: list[TrialRow], refinement=None,
               refinements: list[str] | None = None) -> StudyView:
        spec, objective = info.spec, info.objective
        budget = spec.budget.max_params_pct
        pareto = pareto_front_info(rows, budget, objective.maximize)
        numbers = frozenset(p.number for p in pareto.front)
        by_number = {r.number: r for r in rows}
        return StudyView(
            version=version, info=info, rows=rows,
            summary=summarize(info, rows, refinements or []).to_dict(),
            pareto=pareto, pareto_numbers=numbers,
            hypervolume=hypervolume_info(rows, objective.reference_point(budget), objective.maximize),
            layer_map=layer_map_info([by_number[p.number] for p in pareto.front]),
            refinement=refinement_info(pareto.front, refinement, refinements or []) if refinement else None,
        )


def create_app(storage_url: str, token: str | None = None, *, allowed_hosts: list[str] | None = None,
               poll_seconds: float = 3.0) -> FastAPI:
    """The dashboard app on the study DB at `storage_url` (opened read-only).

    `token`: when set, every request needs it (`Authorization: Bearer`, or `?token=` once, which sets
    a cookie). `allowed_hosts`: accepted `Host` headers (the CLI passes the loopback names when bound
    to loopback, against DNS rebinding). Raises `StudyError` when the storage cannot be opened.
    """
    reader = StudyReader(open_readonly(storage_url))
    views = Views(reader)
    nonce = secrets.token_hex(4)  # ETags of one server process never match another's

    @contextlib.asynccontextmanager
    async def lifespan(_app: FastAPI):
        # Read every study once in the background, so the first page view does not pay for it.
        threading.Thread(target=views.warm, name="dashboard-warmup", daemon=True).start()
        yield

    app = FastAPI(title="autopeft dashboard", version="1", docs_url=None, redoc_url=None, lifespan=lifespan,
                  description="Read-only JSON API of the autopeft study DB: studies, Pareto fronts, trials, exports.")
    app.state.reader = reader
    app.state.views = views

    _add_security(app, token, allowed_hosts)
    app.mount("/static", StaticFiles(directory=STATIC), name="static")

    # --- assets and docs ------------------------------------------------------------------------
    @app.get("/static-vendor/plotly.min.js", include_in_schema=False)
    def plotly_js() -> FileResponse:
        import plotly

        path = Path(plotly.__file__).parent / "package_data" / "plotly.min.js"
        return FileResponse(path, media_type="text/javascript", headers={"Cache-Control": "public, max-age=86400"})

    @app.get("/docs", include_in_schema=False, response_class=HTMLResponse)
    def docs() -> HTMLResponse:
        return HTMLResponse(pages.docs_page(app.openapi()))

    # --- HTML pages ----------------------------------------------------------------------------
    @app.get("/", include_in_schema=False, response_class=HTMLResponse)
    def studies_page() -> HTMLResponse:
        return HTMLResponse(pages.page("studies", "Studies", {"poll": poll_seconds}))

    @app.get("/studies/{study_id}", include_in_schema=False, response_class=HTMLResponse)
    def study_page(study_id: int) -> HTMLResponse:
        view = views.get(study_id)
        return HTMLResponse(pages.page("study", view.info.name, {"study": study_id, "poll": poll_seconds,
                                                              "families": ",".join(FAMILIES)}))

    @app.get("/studies/{study_id}/trials/{number}", include_in_schema=False, response_class=HTMLResponse)
    def trial_page(study_id: int, number: int) -> HTMLResponse:
        view = views.get(study_id)
        return HTMLResponse(pages.page("trial", f"Trial {number} · {view.info.name}",
                                       {"study": study_id, "trial": number, "poll": poll_seconds}))

    # --- JSON API ------------------------------------------------------------------------------
    @app.get("/api/studies", tags=["studies"])
    def list_studies() -> list[dict[str, Any]]:
        """Every autopeft study in the DB: model, task, space, trials by state, best metric within the
        budget (and its trial), hypervolume, Pareto-front size, last update."""
        return [views.get(info.study_id).summary for info in reader.studies() if info.spec is not None]

    def _etagged(request: Request, view: StudyView, key: str, build: Callable[[], dict[str, Any]]) -> Response:
        etag = f'"{nonce}-{view.info.study_id}-{view.version}-{key}"'
        if etag in request.headers.get("if-none-match", ""):
            return Response(status_code=304, headers={"ETag": etag})
        return JSONResponse(build(), headers={"ETag": etag, "Cache-Control": "no-cache"})

    @app.get("/api/studies/{study_id}", tags=["studies"])
    def get_study(study_id: int, request: Request) -> Any:
        """One study: its summary and spec, and the plot data of the study page — the Pareto front
        (Pareto-optimal, dominated and failed trials, budget), the hypervolume history by trial number
        and by time, the layer placement of the Pareto-optimal configurations, and `refinement`: the
        newest `autopeft refine` of the study (fidelity, seeds, refined mean ± sd per front trial, whether
        the refined front reorders the search front) or null. `version` changes whenever a trial does."""
        view = views.get(study_id)
        return _etagged(request, view, "data", view.data)

    @app.get("/api/studies/{study_id}/figures", tags=["studies"])
    def get_study_figures(study_id: int, request: Request) -> Any:
        """The study page's plotly figures (`{data, layout}` each), built from `/api/studies/{id}`'s data."""
        view = views.get(study_id)
        return _etagged(request, view, "figures", lambda: {"version": view.version, "summary": view.summary,
                                                           "refinement": view.refinement_data(), **view.figures()})

    @app.get("/api/studies/{study_id}/trials", tags=["trials"])
    def list_trials(
        study_id: int,
        state: str | None = Query(None, description=f"one of {', '.join(STATES)}"),
        family: str | None = Query(None, description=f"module family used: one of {', '.join(FAMILIES)}"),
        min_metric: float | None = None, max_metric: float | None = None,
        min_params_pct: float | None = None, max_params_pct: float | None = None,
        pareto: bool = Query(False, description="Pareto-optimal trials only"),
        sort: str = Query("number", pattern="^(number|metric|params_pct|params|state)$"),
        order: str = Query("asc", pattern="^(asc|desc)$"),
        offset: int = Query(0, ge=0), limit: int = Query(100, ge=1, le=1000),
    ) -> dict[str, Any]:
        """The trials table: filtered by state, module family, metric and params % ranges; sorted; paged."""
        if state is not None and state not in STATES:
            raise HTTPException(422, f"state: expected one of {', '.join(STATES)}, got {state!r}")
        if family is not None and family not in FAMILIES:
            raise HTTPException(422, f"family: expected one of {', '.join(FAMILIES)}, got {family!r}")
        view = views.get(study_id)
        query = TrialQuery(state=state, family=family, min_metric=min_metric, max_metric=max_metric,
                           min_params_pct=min_params_pct, max_params_pct=max_params_pct, pareto_only=pareto,
                           sort=sort, descending=order == "desc", offset=offset, limit=limit)
        return {"version": view.version, **trial_table(view.rows, query, view.pareto_numbers).to_dict()}

    def _trial(study_id: int, number: int):
        view = views.get(study_id)
        try:
            return view, reader.trial(study_id, number)
        except KeyError as exc:
            raise HTTPException(404, str(exc.args[0])) from None

    @app.get("/api/studies/{study_id}/trials/{number}", tags=["trials"])
    def get_trial(study_id: int, number: int) -> dict[str, Any]:
        """One trial: state, metric and every metric, params, plan (and per layer), fidelity, timings,
        memory, worker, the failure reason if any; `exports` lists the download URLs."""
        view, trial = _trial(study_id, number)
        detail = trial_detail(trial, study_id, number in view.pareto_numbers)
        detail["study_name"] = view.info.name
        detail["plan_layers"] = plan_info(detail["plan"], detail["summary"]).to_dict() if detail["plan"] else None
        from autopeft.export import formats_for  # only the formats that can express this trial's plan
        from autopeft.search_spaces import PlanError

        try:
            formats = formats_for(trial.user_attrs) if detail["state"] == "complete" else []
        except PlanError:  # a plan this autopeft cannot read (an unknown family): shown, not exportable
            formats = []
        detail["exports"] = {f: f"/api/studies/{study_id}/trials/{number}/export/{f}" for f in formats}
        return detail

    @app.get("/api/studies/{study_id}/trials/{number}/figure", tags=["trials"])
    def get_trial_figure(study_id: int, number: int) -> dict[str, Any]:
        """The trial's plan as a plotly figure: module families x layers, cell = size."""
        _, trial = _trial(study_id, number)
        plan = trial_attr(trial.user_attrs, "plan")
        if not isinstance(plan, dict):
            raise HTTPException(404, f"trial {number}: records no plan")
        return figures.plan_figure(plan_info(plan, trial.user_attrs.get("plan_summary", "")))

    @app.get("/api/studies/{study_id}/trials/{number}/export/{fmt}", tags=["trials"])
    def export(study_id: int, number: int, fmt: ExportFormat) -> Response:
        """Download the file `autopeft export --format FMT` writes for this trial (generated on the fly)."""
        view, trial = _trial(study_id, number)
        return _export(view.info, trial, fmt.value)

    return app


def _export(info: StudyInfo, trial, fmt: str) -> Response:
    """Write the export into a fresh temporary directory and return that file's bytes.

    Same code path as `autopeft.export.export_trial` (its `export_frozen_trial` with the stored spec),
    without loading every trial of the study to find this one.
    """
    from optuna.trial import TrialState

    from autopeft.export import export_frozen_trial
    from autopeft.optional import MissingExtra
    from autopeft.search_spaces import ModelError, PlanError

    if trial.state != TrialState.COMPLETE:
        raise HTTPException(409, f"trial {trial.number}: is {trial.state.name.lower()}, not complete; "
                                 "export a complete trial")
    if not isinstance(trial_attr(trial.user_attrs, "plan"), dict):  # a long plan is stored as JSON text
        raise HTTPException(409, f"trial {trial.number}: records no plan (it was not run by autopeft); "
                                 "export another trial")
    try:
        with tempfile.TemporaryDirectory(prefix="autopeft-export-") as tmp:
            path = export_frozen_trial(trial, info.spec, fmt, tmp).path
            content, name = path.read_bytes(), path.name
    except (PlanError, ModelError, ValueError, KeyError, TypeError, MissingExtra) as exc:
        raise HTTPException(409, f"cannot export trial {trial.number} as {fmt}: {exc}") from None
    media = "application/json" if name.endswith(".json") else "application/yaml"
    return Response(content, media_type=media, headers={"Content-Disposition": f'attachment; filename="{name}"'})


def _hardened(response: Response) -> Response:
    """`response` with the headers every answer carries (CSP, nosniff, no referrer), refusals included."""
    response.headers.setdefault("Content-Security-Policy", CSP)
    response.headers.setdefault("X-Content-Type-Options", "nosniff")
    response.headers.setdefault("Referrer-Policy", "no-referrer")
    return response


def same_origin(path: str) -> str:
    """`path` as a path on this server: `//evil.example/x` (or `/\\evil.example`) would leave it."""
    return "/" + path.lstrip("/\\")


def _add_security(app: FastAPI, token: str | None, allowed_hosts: list[str] | None) -> None:
    """Token check (when set), Host check (when given), and headers that keep pages to their own assets."""

    @app.middleware("http")
    async def security(request: Request, call_next):
        if allowed_hosts is not None:
            host = request.headers.get("host", "").rsplit(":", 1)[0].strip("[]").lower()
            if host not in allowed_hosts:
                return _hardened(JSONResponse({"detail": f"host {host!r} not allowed"}, status_code=400))
        if token is not None:
            given = request.query_params.get("token")
            if given is not None and hmac.compare_digest(given.encode(), token.encode()):
                params = {k: v for k, v in request.query_params.multi_items() if k != "token"}
                target = same_origin(request.scope["path"]) + (f"?{urlencode(params)}" if params else "")
                redirect = RedirectResponse(target, status_code=303)
                redirect.set_cookie(TOKEN_COOKIE, token, httponly=True, samesite="strict")
                return _hardened(redirect)
            bearer = request.headers.get("authorization", "")
            presented = bearer[7:] if bearer.lower().startswith("bearer ") else request.cookies.get(TOKEN_COOKIE, "")
            if not hmac.compare_digest(presented.encode(), token.encode()):
                return _hardened(JSONResponse({"detail": "access token required: open the dashboard URL with "
                                                         "?token=TOKEN, or send 'Authorization: Bearer TOKEN'"},
                                              status_code=401))
        return _hardened(await call_next(request))
