"""The dashboard's pages and forms, each scoped to the logged-in user's clinic and audited.

Every handler reads the logged-in user's clinic and nothing else; a patient id of another clinic answers 404
exactly like a missing one. Every view and every change writes an audit row.

======================================  ======================================================================
``GET /``                               patient list, those who need attention first (:mod:`.attention`)
``GET /patients/{id}``                  latest day, 28-day trend, feedback limit, notes, compare, export
``GET /patients/{id}/report/{day}``     the host's daily report of that day from the clinic's records
``GET /patients/{id}/compare?a=&b=``    two days or two ISO weeks side by side, with differences
``POST /patients/{id}/limit``           set the feedback limit (bumps the profile version: the host syncs it)
``POST /patients/{id}/notes``           add a note
``GET /patients/{id}/export.csv``       the steps of a date range as CSV (``from``, ``to``)
``GET /audit``                          the clinic's audit log, filterable (admins)
======================================  ======================================================================
"""

from __future__ import annotations

import math
import re
from datetime import date, timedelta
from typing import Any

from aiohttp import web
from sqlalchemy.ext.asyncio import AsyncConnection

from forcecast.clinic.dashboard import queries, reports
from forcecast.clinic.dashboard.attention import Attention, assess, rank
from forcecast.clinic.dashboard.queries import Patient, SessionUser
from forcecast.clinic.dashboard.state import Dashboard, dashboard_of, user_of
from forcecast.clinic.db.audit import audit
from forcecast.clinic.db.errors import NotFoundError
from forcecast.clinic.db.patients import change_profile
from forcecast.edge.errors import ForcecastValueError
from forcecast.host_app.analytics import day_bounds
from forcecast.host_app.report import TREND_DAYS

NOTE_MAX = 4000
MAX_ID = 2**31 - 1
"""Ids above this are no row of ours (and too large for an INTEGER column on PostgreSQL)."""
LIMIT_RANGE = (0.1, 10.0)
"""Feedback limits the form offers (the profile check of :mod:`forcecast.clinic.db.patients` decides)."""
DONE = {
    "limit": "Feedback limit saved. The patient's host delivers it to the device at its next sync.",
    "note": "Note added.",
}


def day_windows(dashboard: Dashboard, last_day: date, n_days: int) -> list[tuple[date, float, float]]:
    """``(day, start, end)`` of the ``n_days`` local days ending with ``last_day``, oldest first."""
    out = []
    for k in range(n_days - 1, -1, -1):
        day = last_day - timedelta(days=k)
        out.append((day, *day_bounds(day, dashboard.tz)))
    return out


async def _patient(conn: AsyncConnection, user: SessionUser, request: web.Request) -> Patient:
    """The path's patient if they are the user's clinic's; 404 otherwise (missing or another clinic's)."""
    patient_id = int(request.match_info["patient_id"])
    patient = await queries.clinic_patient(conn, user.clinic_id, patient_id) if patient_id <= MAX_ID else None
    if patient is None:
        raise web.HTTPNotFound(text=f"no patient {patient_id} in your clinic")
    return patient


# ---------------------------------------------------------------- patient list


async def patient_list(request: web.Request) -> web.StreamResponse:
    """GET /: every patient of the clinic, ordered by what needs attention, with the reasons."""
    dashboard, user = dashboard_of(request), user_of(request)
    config = dashboard.options.attention
    today = dashboard.today()
    yesterday = today - timedelta(days=1)
    async with dashboard.engine.begin() as conn:
        patients = await queries.clinic_patients(conn, user.clinic_id)
        figures = await queries.daily_figures(
            conn, user.clinic_id, day_windows(dashboard, yesterday, config.history_days)
        )
        await audit(
            conn, user.clinic_id, "patients.list", "clinic", user.clinic_id, user_id=user.user_id, at=dashboard.clock()
        )
    by_id = {p.id: p for p in patients}
    order = rank([assess(p.id, figures.get(p.id, []), today, config) for p in patients])
    rows = []
    for attention in order:
        latest = next((d for d in figures.get(attention.patient_id, []) if d.day == yesterday), None)
        level = "alert" if attention.flags else ("warn" if attention.reasons else "ok")
        rows.append(
            {
                "patient": by_id[attention.patient_id],
                "attention": attention,
                "yesterday": latest,
                "level": level,
                "badge": _badge(attention),
            }
        )
    return dashboard.render(
        request,
        "patients.html.j2",
        rows=rows,
        yesterday=yesterday,
        window_days=config.window_days,
        wear_target_h=config.wear_target_h,
    )


def _badge(attention: Attention) -> str:
    """The row's label: the most important reason's kind."""
    if attention.flags:
        return f"{len(attention.flags)} flag{'s' if len(attention.flags) > 1 else ''}"
    if attention.missing_days:
        return f"{len(attention.missing_days)} day{'s' if len(attention.missing_days) > 1 else ''} missing"
    return "low wear time" if attention.low_adherence else "nothing unusual"


# ---------------------------------------------------------------- one patient


async def patient_page(request: web.Request) -> web.StreamResponse:
    """GET /patients/{id}: latest day, trend, limit and notes forms, compare and export forms."""
    return await _patient_view(request)


async def _patient_view(
    request: web.Request, status: int = 200, error: str = "", conn_patient: Patient | None = None
) -> web.Response:
    dashboard, user = dashboard_of(request), user_of(request)
    config = dashboard.options.attention
    today = dashboard.today()
    async with dashboard.engine.begin() as conn:
        patient = conn_patient or await _patient(conn, user, request)
        history = max(config.history_days, TREND_DAYS)
        figures = (
            await queries.daily_figures(conn, user.clinic_id, day_windows(dashboard, today, history), patient.id)
        ).get(patient.id, [])
        notes = await queries.patient_notes(conn, user.clinic_id, patient.id)
        devices = await queries.patient_devices(conn, user.clinic_id, patient.id)
        await audit(
            conn, user.clinic_id, "patient.view", "patient", patient.id, user_id=user.user_id, at=dashboard.clock()
        )
    attention = assess(patient.id, figures, today, config)
    recent = [d for d in figures if d.day > today - timedelta(days=TREND_DAYS)]
    latest = recent[-1] if recent else None
    trend = await reports.off_loop(reports.trend_png, recent, today, TREND_DAYS, patient.feedback_limit_bw)
    applied = [d["profile_version_applied"] for d in devices if not d["revoked"]]
    last_week = today - timedelta(days=7)
    return dashboard.render(
        request,
        "patient.html.j2",
        status=status,
        patient=patient,
        attention=attention,
        window_days=config.window_days,
        latest=latest,
        days=[d for d in recent if d.steps or d.wear_min],
        trend_days=TREND_DAYS,
        trend_png=trend,
        notes=notes,
        devices=devices,
        applied_version=max(applied) if applied else None,
        message=DONE.get(request.query.get("done", ""), ""),
        error=error,
        limit_min=LIMIT_RANGE[0],
        limit_max=LIMIT_RANGE[1],
        note_max=NOTE_MAX,
        compare_a=_iso_week(last_week - timedelta(days=7)),
        compare_b=_iso_week(last_week),
        export_from=(today - timedelta(days=7)).isoformat(),
        export_to=(today - timedelta(days=1)).isoformat(),
    )


def _iso_week(day: date) -> str:
    year, week, _ = day.isocalendar()
    return f"{year}-W{week:02d}"


def _day(request: web.Request) -> date:
    try:
        return date.fromisoformat(request.match_info["day"])
    except ValueError:
        raise web.HTTPNotFound(text=f"{request.match_info['day']!r} is not a day (YYYY-MM-DD)") from None


async def report_page(request: web.Request) -> web.StreamResponse:
    """GET /patients/{id}/report/{day}: the host's daily report of that day, from the clinic's records."""
    dashboard, user = dashboard_of(request), user_of(request)
    day = _day(request)
    first, start, end = reports.report_window(day, dashboard.tz)
    async with dashboard.engine.begin() as conn:
        patient = await _patient(conn, user, request)
        earlier = await queries.patient_records(conn, user.clinic_id, patient.id, first, start)
        that_day = await queries.patient_records(conn, user.clinic_id, patient.id, start, end, waveforms=True)
        devices = await queries.patient_devices(conn, user.clinic_id, patient.id)
        await audit(
            conn,
            user.clinic_id,
            "report.view",
            "patient",
            patient.id,
            user_id=user.user_id,
            detail={"day": day.isoformat()},
            at=dashboard.clock(),
        )
    source = await reports.off_loop(reports.source_of, patient, [*earlier, *that_day], devices)
    html = await reports.off_loop(reports.render_report, source, patient, day, dashboard.tz)
    response = web.Response(text=html, content_type="text/html")
    response.headers["Cache-Control"] = "no-store"
    return response


async def compare_page(request: web.Request) -> web.StreamResponse:
    """GET /patients/{id}/compare?a=DAY|WEEK&b=DAY|WEEK: two periods side by side with differences."""
    dashboard, user = dashboard_of(request), user_of(request)
    async with dashboard.engine.begin() as conn:
        patient = await _patient(conn, user, request)
        try:
            a = reports.parse_period(request.query.get("a", ""))
            b = reports.parse_period(request.query.get("b", ""))
        except reports.PeriodError as exc:
            raise web.HTTPBadRequest(text=f"compare: {exc}") from None
        rows = []
        for period in (a, b):
            start, _ = day_bounds(period.first, dashboard.tz)
            _, end = day_bounds(period.last, dashboard.tz)
            rows.append(await queries.patient_records(conn, user.clinic_id, patient.id, start, end))
        await audit(
            conn,
            user.clinic_id,
            "compare.view",
            "patient",
            patient.id,
            user_id=user.user_id,
            detail={"a": a.label, "b": b.label},
            at=dashboard.clock(),
        )
    figures = []
    for period, found in zip((a, b), rows, strict=True):
        source = await reports.off_loop(reports.source_of, patient, found, [])
        figures.append(await reports.off_loop(reports.period_figures, source, patient, period, dashboard.tz))
    plot = await reports.off_loop(reports.compare_png, figures[0], figures[1])
    return dashboard.render(
        request,
        "compare.html.j2",
        patient=patient,
        a=_period_view(figures[0]),
        b=_period_view(figures[1]),
        rows=reports.compare_rows(figures[0], figures[1]),
        plot=plot,
    )


def _period_view(figures: reports.PeriodFigures) -> dict[str, Any]:
    return {"label": figures.period.label, "title": figures.period.title, "days_with_data": figures.days_with_data}


async def set_limit(request: web.Request) -> web.StreamResponse:
    """POST /patients/{id}/limit: set (or clear, when empty) the feedback limit; the profile version goes up."""
    dashboard, user = dashboard_of(request), user_of(request)
    form = await request.post()
    text = str(form.get("feedback_limit_bw", "")).strip()
    async with dashboard.engine.begin() as conn:
        patient = await _patient(conn, user, request)
    try:
        limit = None if text == "" else float(text)
        if limit is not None and not math.isfinite(limit):
            raise ValueError(text)
    except ValueError:
        return await _patient_view(request, 400, f"Feedback limit: {text!r} is not a number of body weights.", patient)
    try:
        async with dashboard.engine.begin() as conn:
            await change_profile(conn, user.clinic_id, patient.id, user.user_id, feedback_limit_bw=limit)
    except NotFoundError:
        raise web.HTTPNotFound(text=f"no patient {patient.id} in your clinic") from None
    except ForcecastValueError as exc:
        return await _patient_view(request, 400, f"Feedback limit not saved: {exc}.", patient)
    raise web.HTTPSeeOther(f"/patients/{patient.id}?done=limit")


async def add_note(request: web.Request) -> web.StreamResponse:
    """POST /patients/{id}/notes: add a note to the patient."""
    dashboard, user = dashboard_of(request), user_of(request)
    form = await request.post()
    text = str(form.get("text", "")).strip()
    async with dashboard.engine.begin() as conn:
        patient = await _patient(conn, user, request)
    if not text or len(text) > NOTE_MAX:
        return await _patient_view(request, 400, f"A note needs 1 to {NOTE_MAX} characters.", patient)
    async with dashboard.engine.begin() as conn:
        now = dashboard.clock()
        note_id = await queries.add_note(conn, patient.id, user.user_id, text, now)
        await audit(
            conn,
            user.clinic_id,
            "note.add",
            "patient",
            patient.id,
            user_id=user.user_id,
            detail={"note": note_id, "chars": len(text)},
            at=now,
        )
    raise web.HTTPSeeOther(f"/patients/{patient.id}?done=note")


def _query_day(request: web.Request, name: str) -> date:
    text = request.query.get(name, "")
    try:
        return date.fromisoformat(text)
    except ValueError:
        raise web.HTTPBadRequest(text=f"{name}: {text!r} is not a day (YYYY-MM-DD)") from None


async def export_csv(request: web.Request) -> web.StreamResponse:
    """GET /patients/{id}/export.csv?from=DAY&to=DAY: the steps of those days (inclusive) as CSV."""
    dashboard, user = dashboard_of(request), user_of(request)
    async with dashboard.engine.begin() as conn:
        patient = await _patient(conn, user, request)
        first, last = _query_day(request, "from"), _query_day(request, "to")
        if last < first or (last - first).days >= reports.MAX_EXPORT_DAYS:
            raise web.HTTPBadRequest(
                text=f"export: need from ≤ to and at most {reports.MAX_EXPORT_DAYS} days, not {first} to {last}"
            )
        start, _ = day_bounds(first, dashboard.tz)
        _, end = day_bounds(last, dashboard.tz)
        rows = await queries.patient_records(conn, user.clinic_id, patient.id, start, end, kinds=("step",))
        text, count = await reports.off_loop(reports.steps_csv, rows, dashboard.tz, patient.code)
        await audit(
            conn,
            user.clinic_id,
            "patient.export",
            "patient",
            patient.id,
            user_id=user.user_id,
            detail={"from": first.isoformat(), "to": last.isoformat(), "steps": count},
            at=dashboard.clock(),
        )
    name = re.sub(r"[^A-Za-z0-9_-]", "_", patient.code)
    response = web.Response(text=text, content_type="text/csv", charset="utf-8")
    response.headers["Content-Disposition"] = f'attachment; filename="{name}_steps_{first}_{last}.csv"'
    response.headers["Cache-Control"] = "no-store"
    return response


# ---------------------------------------------------------------- audit log


async def audit_page(request: web.Request) -> web.StreamResponse:
    """GET /audit: the clinic's audit log, filtered by action, user, object and dates (admins only)."""
    dashboard, user = dashboard_of(request), user_of(request)
    if not user.is_admin:
        raise web.HTTPForbidden(text="the audit log is for the clinic's administrators")
    query = request.query
    filters = {key: query.get(key, "").strip() for key in ("action", "user", "object_type", "object_id", "from", "to")}
    since = until = None
    try:
        if filters["from"]:
            since = day_bounds(date.fromisoformat(filters["from"]), dashboard.tz)[0]
        if filters["to"]:
            until = day_bounds(date.fromisoformat(filters["to"]), dashboard.tz)[1]
    except ValueError:
        raise web.HTTPBadRequest(text="audit: from and to are days (YYYY-MM-DD)") from None
    limit = 500
    async with dashboard.engine.begin() as conn:
        entries = await queries.audit_entries(
            conn,
            user.clinic_id,
            action=filters["action"],
            user_email=filters["user"],
            object_type=filters["object_type"],
            object_id=filters["object_id"],
            since=since,
            until=until,
            limit=limit,
        )
        await audit(
            conn,
            user.clinic_id,
            "audit.view",
            "clinic",
            user.clinic_id,
            user_id=user.user_id,
            detail={k: v for k, v in filters.items() if v} or None,
            at=dashboard.clock(),
        )
    return dashboard.render(request, "audit.html.j2", entries=entries, filters=filters, limit=limit)


def add_routes(app: web.Application) -> None:
    """Register the dashboard's pages and forms (patient ids are numbers; days are YYYY-MM-DD)."""
    patient = "/patients/{patient_id:\\d+}"
    app.router.add_get("/", patient_list, name="patients")
    app.router.add_get(patient, patient_page, name="patient")
    app.router.add_get(patient + "/report/{day:\\d{4}-\\d{2}-\\d{2}}", report_page, name="report")
    app.router.add_get(patient + "/compare", compare_page, name="compare")
    app.router.add_post(patient + "/limit", set_limit, name="limit")
    app.router.add_post(patient + "/notes", add_note, name="notes")
    app.router.add_get(patient + "/export.csv", export_csv, name="export")
    app.router.add_get("/audit", audit_page, name="audit")
