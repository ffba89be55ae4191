"""A minimal EPCIS 2.0 repository: asynchronous capture jobs that validate every document
against the GS1 JSON Schema, keep each event once by ``eventID``, and refuse a document that
contradicts what was captured before:

* an ``eventID`` already held with different content (history rewritten);
* an AggregationEvent ADD of a child that is already in a container, or a DELETE of a child
  that is not in that container (two packings of one case without an unpacking between).

Validation can be switched off for load tests, where the schema check would dominate.
"""

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


class Repository:
    """What was captured: events by id, and where each child is packed."""

    def __init__(self) -> None:
        self.events: dict[str, dict[str, Any]] = {}
        self.parent_of: dict[str, str] = {}

    def conflicts(self, events: list[dict[str, Any]]) -> list[str]:
        """Why ``events`` cannot be stored beside what is held; stores them when none."""
        problems: list[str] = []
        parent_of = dict(self.parent_of)
        fresh: dict[str, dict[str, Any]] = {}
        for event in events:
            held = self.events.get(event["eventID"]) or fresh.get(event["eventID"])
            if held is not None:
                if held != event:
                    problems.append(f"{event['eventID']}: already captured with other content")
                continue
            fresh[event["eventID"]] = event
        for event in sorted(fresh.values(), key=lambda e: e["eventTime"]):
            if event["type"] != "AggregationEvent" or "parentID" not in event:
                continue
            parent = event["parentID"]
            for child in event.get("childEPCs", []):
                if event["action"] == "ADD":
                    if child in parent_of:
                        problems.append(f"{child} is packed in {parent_of[child]}; an ADD to "
                                        f"{parent} at {event['eventTime']} needs a DELETE first")
                    parent_of[child] = parent
                elif event["action"] == "DELETE":
                    if parent_of.get(child) != parent:
                        problems.append(f"{child} is not in {parent}; it cannot be unpacked")
                    parent_of.pop(child, None)
        if not problems:
            self.events.update(fresh)
            self.parent_of = parent_of
        return problems[:20]


def create_app(schema_file: Path, processing_s: float = 0.05, validate: bool = True) -> FastAPI:
    """The repository; capture jobs take ``processing_s`` before they finish."""
    schema = json.loads(schema_file.read_text())
    validator = jsonschema.Draft7Validator(
        schema, format_checker=jsonschema.Draft7Validator.FORMAT_CHECKER)
    app = FastAPI(title="EPCIS repository (simulated)")
    jobs: dict[str, dict[str, Any]] = {}
    held = Repository()
    ids = itertools.count(1)
    tasks: set[asyncio.Task[None]] = set()

    async def run(job_id: str, document: Any) -> None:
        await asyncio.sleep(processing_s)
        errors = [f"{list(e.path)}: {e.message}"
                  for e in validator.iter_errors(document)][:20] if validate else []
        if not errors:
            errors = held.conflicts(document["epcisBody"]["eventList"])
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
        return {"count": len(held.events), "eventIDs": sorted(held.events)}

    return app
