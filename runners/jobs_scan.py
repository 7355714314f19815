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
import json
from dataclasses import asdict
from pathlib import Path
from typing import Any
from urllib.parse import urljoin, urlsplit

from runners.artifacts import PNG
from runners.errors import ArtifactNotFound, TargetInvalid
from runners.jobs_context import JobContext, NodeConfig, json_object, text_field
from runners.jobs_report import JobReporter, NodeOutcome
from runners.scan import scan
from runners.vrt import compare
from streams.jobs import Dispatch

# The node's result is one field of one Kafka message: what a page logs or requests must
# not make it unpublishable (the job would be run again and again). Each console message
# and blocked address is cut, the lists are cut, then halved until the JSON fits.
MAX_LISTED = 100
MAX_ITEM_TEXT = 1000
RESULT_BUDGET = 128_000


def _fit(summary: dict[str, Any]) -> None:
    """Halve the console and blocked lists of ``summary`` until its JSON (as
    ``JobReporter.outcome`` writes it) is within ``RESULT_BUDGET`` bytes."""
    while len(json.dumps(summary, sort_keys=True, separators=(",", ":"))) > RESULT_BUDGET:
        longest = max(("console", "blocked_requests"), key=lambda key: len(summary[key]))
        if not summary[longest]:
            return
        summary[longest] = summary[longest][: len(summary[longest]) // 2]


def target_url(dispatch: Dispatch) -> str:
    """The node's ``uri`` (absolute, or a path on the Site), else the Site's URL."""
    data = json_object(dispatch.job.data_json)
    uri = text_field(data, "uri").strip()
    if "://" in uri:
        url = uri
    elif not dispatch.site_url:
        raise TargetInvalid(f"site {dispatch.job.site_id} has no URL (deleted or unknown)")
    else:
        try:  # urllib raises ValueError on a malformed address ("//[bad")
            url = urljoin(dispatch.site_url, uri) if uri else dispatch.site_url
        except ValueError as exc:
            raise TargetInvalid(f"scan uri {uri!r} is not a URL: {exc}") from exc
    try:  # the Flow does not check a scan node's uri: catch what urllib cannot split
        urlsplit(url).port  # noqa: B018
    except ValueError as exc:
        raise TargetInvalid(f"scan uri {uri!r} is not a URL: {exc}") from exc
    return url


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


def _wants_vrt(data_json: str) -> bool:
    """Whether the node's ``data.type`` (its checks, as in the reference: ``html``,
    ``logs``, ``vrt``, ...) asks for the visual comparison; no list means every check.
    The other checks are always recorded: they cost nothing beyond the load."""
    try:
        kinds = json.loads(data_json).get("type")
    except (ValueError, AttributeError):
        return True
    return not isinstance(kinds, list) or "vrt" in kinds


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
        "console": [
            {"level": entry.level[:MAX_ITEM_TEXT], "text": entry.text[:MAX_ITEM_TEXT]}
            for entry in result.console[:MAX_LISTED]
        ],
        "console_count": result.console_count,
        "console_errors": result.console_errors,
        "timings": asdict(result.timings),
        "requests": result.requests,
        "bytes": result.bytes,
        "blocked_requests": [url[:MAX_ITEM_TEXT] for url in result.blocked_requests[:MAX_LISTED]],
        "blocked_count": len(result.blocked_requests),
    }
    _fit(summary)
    baseline_path = _baseline_file(ctx.baselines, dispatch.job.site_id, url)
    previous = await asyncio.to_thread(_read_baseline, baseline_path)
    if not _wants_vrt(dispatch.job.data_json):
        previous = None  # recorded, and the baseline moves on, but not compared
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
