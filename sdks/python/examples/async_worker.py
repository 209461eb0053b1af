"""An asyncio worker: `async def` handlers run on the worker's event loop."""

import asyncio
import os

import pfc

worker = pfc.Worker(os.environ.get("PFC_ADDR", "localhost:50051"), concurrency=64)


@worker.handler("fetch")
async def fetch(job):
    await asyncio.sleep(0.1)  # e.g. an HTTP call with aiohttp
    return {"url": job.payload["url"], "status": 200}


worker.run()
