"""The ``scan`` job: load the node's page, compare its screenshot with the last scan of
the same page (visual regression), and say whether the node passed.

The node passes when the similarity with the previous screenshot is at least its
``threshold`` (percent); the first scan of a page has nothing to compare and passes.
The baseline is the screenshot hash of the last scan of the same Site and URL, kept in
a small file per page under ``JobContext.baselines`` (shared by the runners of one
machine; the images themselves are artifacts).
"""

from __future__ import annotations

import asyncio
import hashlib
from dataclasses import asdict
from pathlib import Path
from typing import Any
from urllib.parse import urljoin

from runners.artifacts import PNG
from runners.errors import ArtifactNotFound, TargetInvalid
from runners.jobs_context import JobContext, NodeConfig, json_object, text_field
from runners.jobs_report import JobReporter, NodeOutcome
from runners.scan import scan
from runners.vrt import compare
from streams.jobs import Dispatch


def target_url(dispatch: Dispatch) -> str:
    """The node's ``uri`` (absolute, or a path on the Site), else the Site's URL."""
    data = json_object(dispatch.job.data_json)
    uri = text_field(data, "uri").strip()
    if "://" in uri:
        return uri
    if not dispatch.site_url:
        raise TargetInvalid(f"site {dispatch.job.site_id} has no URL (deleted or unknown)")
    return urljoin(dispatch.site_url, uri) if uri else dispatch.site_url


def _baseline_file(root: Path, site_id: str, url: str) -> Path:
    return root / hashlib.sha256(f"{site_id}\n{url}".encode()).hexdigest()


def _read_baseline(path: Path) -> str | None:
    try:
        return path.read_text().strip() or None
    except FileNotFoundError:
        return None


def _write_baseline(path: Path, digest: str) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(".tmp")
    tmp.write_text(digest)
    tmp.replace(path)


async def run_scan(ctx: JobContext, dispatch: Dispatch, report: JobReporter) -> NodeOutcome:
    config = NodeConfig.from_json(dispatch.job.configs_json)
    url = target_url(dispatch)
    await report.log(f"scanning {url}")
    result = await scan(
        ctx.browser,
        ctx.guard,
        ctx.store,
        url,
        timeout=config.max_wait_time + config.min_wait_time,
        settle=config.min_wait_time,
    )
    summary: dict[str, Any] = {
        "url": result.requested_url,
        "final_url": result.final_url,
        "status": result.status,
        "html": result.html_hash,
        "screenshot": result.screenshot_hash,
        "console": [asdict(entry) for entry in result.console[:100]],
        "console_errors": result.console_errors,
        "timings": asdict(result.timings),
        "requests": result.requests,
        "bytes": result.bytes,
        "blocked_requests": list(result.blocked_requests),
    }
    baseline_path = _baseline_file(ctx.baselines, dispatch.job.site_id, url)
    previous = await asyncio.to_thread(_read_baseline, baseline_path)
    threshold = dispatch.job.threshold
    passed = True
    exception = None
    if previous is not None and previous != result.screenshot_hash:
        try:
            before, _ = await asyncio.to_thread(ctx.store.get, previous)
        except ArtifactNotFound:
            before = None
        if before is not None:
            after, _ = await asyncio.to_thread(ctx.store.get, result.screenshot_hash)
            wanted = (threshold if threshold is not None else 0.0) / 100
            diff = await asyncio.to_thread(compare, before, after, wanted)
            diff_hash = await asyncio.to_thread(ctx.store.put, diff.diff_png, PNG)
            summary["vrt"] = {
                "baseline": previous,
                "diff": diff_hash,
                "diff_share": diff.diff_share,
                "similarity": diff.similarity,
                "threshold": threshold,
            }
            if threshold is not None and not diff.passed:
                passed = False
                exception = (
                    f"similarity {diff.similarity * 100:.2f}% is below the threshold {threshold:g}%"
                )
    elif previous is not None:
        summary["vrt"] = {"baseline": previous, "diff_share": 0.0, "similarity": 1.0}
    await asyncio.to_thread(_write_baseline, baseline_path, result.screenshot_hash)
    await report.log(
        f"scanned {result.final_url}: HTTP {result.status}, {result.requests} requests, "
        f"{result.console_errors} console errors"
    )
    return NodeOutcome(passed, summary, exception)
