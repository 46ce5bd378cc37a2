"""The baseline for bench/ingest.py: a FastAPI endpoint that only reads and parses the JSON."""

import json

from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse

app = FastAPI()


@app.post("/webhooks/alertmanager")
async def parse_only(request: Request) -> JSONResponse:
    body = json.loads(await request.body())
    return JSONResponse({"status": "accepted", "alerts": len(body["alerts"])})


@app.get("/healthz")
def healthz() -> dict[str, str]:
    return {"status": "ok"}
