"""A minimal EPCIS 2.0 repository: asynchronous capture jobs that validate every document
against the GS1 JSON Schema, and a query of what was captured."""

from __future__ import annotations

import asyncio
import datetime as dt
import itertools
import json
from pathlib import Path
from typing import Any

import jsonschema
from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse


def create_app(schema_file: Path, processing_s: float = 0.05) -> FastAPI:
    """The repository; capture jobs take ``processing_s`` before they finish."""
    schema = json.loads(schema_file.read_text())
    validator = jsonschema.Draft7Validator(
        schema, format_checker=jsonschema.Draft7Validator.FORMAT_CHECKER)
    app = FastAPI(title="EPCIS repository (simulated)")
    jobs: dict[str, dict[str, Any]] = {}
    events: dict[str, dict[str, Any]] = {}
    ids = itertools.count(1)
    tasks: set[asyncio.Task[None]] = set()

    async def run(job_id: str, document: Any) -> None:
        await asyncio.sleep(processing_s)
        errors = [f"{list(e.path)}: {e.message}" for e in validator.iter_errors(document)][:20]
        if not errors:
            for event in document["epcisBody"]["eventList"]:
                events[event["eventID"]] = event  # same eventID: stored once
        jobs[job_id].update(running=False, success=not errors, errors=errors,
                            finishedAt=dt.datetime.now(dt.UTC).isoformat())

    @app.post("/capture")
    async def capture(request: Request) -> JSONResponse:
        try:
            document = json.loads(await request.body())
        except ValueError:
            return JSONResponse({"type": "epcisException:ValidationException",
                                 "title": "not JSON"}, 400)
        job_id = f"id{next(ids)}"
        jobs[job_id] = {"captureID": job_id, "running": True, "success": True,
                        "captureErrorBehaviour": "rollback", "errors": [],
                        "createdAt": dt.datetime.now(dt.UTC).isoformat()}
        task = asyncio.create_task(run(job_id, document))
        tasks.add(task)
        task.add_done_callback(tasks.discard)
        return JSONResponse(None, 202, headers={"Location": f"/capture/{job_id}"})

    @app.get("/capture/{job_id}")
    async def job(job_id: str) -> JSONResponse:
        if job_id not in jobs:
            return JSONResponse({"title": "no such capture job"}, 404)
        return JSONResponse(jobs[job_id])

    @app.get("/events")
    async def stored() -> dict[str, Any]:
        return {"count": len(events), "eventIDs": sorted(events)}

    return app
