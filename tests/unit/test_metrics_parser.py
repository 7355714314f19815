"""A strict parser of the Prometheus text exposition format (0.0.4), and its own tests.

No client library is installed and none is added: this parser is what the metrics
tests (unit and integration) read ``/metrics`` with. It is stricter than Prometheus
where that catches our mistakes: every family has exactly one ``# HELP`` and one
``# TYPE`` before its samples, a family's samples are contiguous, counters end in
``_total``, no sample repeats, and a histogram's buckets are cumulative and end with
``+Inf`` equal to ``_count``.
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass, field

import pytest

NAME = r"[a-zA-Z_:][a-zA-Z0-9_:]*"
LABEL_NAME = r"[a-zA-Z_][a-zA-Z0-9_]*"
HELP = re.compile(rf"^# HELP ({NAME}) (.*)$")
TYPE = re.compile(rf"^# TYPE ({NAME}) (counter|gauge|histogram|summary|untyped)$")
SAMPLE = re.compile(rf"^({NAME})(?:\{{(.*)\}})? (\S+)(?: (-?\d+))?$")
LABEL = re.compile(rf'({LABEL_NAME})="((?:[^"\\\n]|\\[\\"n])*)"')
SUFFIXES = {"histogram": ("_bucket", "_sum", "_count"), "summary": ("", "_sum", "_count")}

Labels = frozenset[tuple[str, str]]


class ExpositionError(AssertionError):
    """The text is not valid exposition format (or breaks one of our rules)."""


@dataclass
class ParsedFamily:
    name: str
    kind: str = ""
    help: str | None = None
    samples: dict[tuple[str, Labels], float] = field(default_factory=dict)


@dataclass
class Exposition:
    families: dict[str, ParsedFamily]

    def value(self, sample: str, **labels: str) -> float:
        """The value of one sample; KeyError when it is not there."""
        for family in self.families.values():
            found = family.samples.get((sample, frozenset(labels.items())))
            if found is not None:
                return found
        raise KeyError(f"{sample}{labels} is not exposed")

    def labelled(self, sample: str) -> dict[Labels, float]:
        """Every sample named ``sample``, by its labels."""
        return {
            labels: v
            for family in self.families.values()
            for (name, labels), v in family.samples.items()
            if name == sample
        }


def _unescape(text: str) -> str:
    return re.sub(r"\\(.)", lambda m: {"n": "\n"}.get(m.group(1), m.group(1)), text)


def _labels(text: str | None, line: str) -> Labels:
    if not text:
        return frozenset()
    pairs = []
    pos = 0
    while pos < len(text):
        match = LABEL.match(text, pos)
        if match is None:
            raise ExpositionError(f"bad labels in {line!r}")
        pairs.append((match.group(1), _unescape(match.group(2))))
        pos = match.end()
        if pos < len(text):
            if text[pos] != ",":
                raise ExpositionError(f"bad labels in {line!r}")
            pos += 1
            if pos == len(text):
                raise ExpositionError(f"trailing comma in {line!r}")
    names = [k for k, _ in pairs]
    if len(set(names)) != len(names):
        raise ExpositionError(f"a label repeats in {line!r}")
    return frozenset(pairs)


def _value(text: str, line: str) -> float:
    if text in ("+Inf", "-Inf", "NaN"):
        return float(text.replace("Inf", "inf").replace("NaN", "nan"))
    if not re.fullmatch(r"-?(\d+(\.\d*)?|\.\d+)([eE][+-]?\d+)?", text):
        raise ExpositionError(f"bad value in {line!r}")
    return float(text)


def _family_of(sample: str, current: ParsedFamily | None) -> ParsedFamily:
    if current is None or not current.kind:
        raise ExpositionError(f"sample {sample} has no # TYPE before it")
    if sample not in {current.name + s for s in SUFFIXES.get(current.kind, ("",))}:
        raise ExpositionError(f"sample {sample} does not belong to family {current.name}")
    return current


def _check_family(family: ParsedFamily) -> None:
    if family.help is None or not family.kind:
        raise ExpositionError(f"family {family.name} lacks # HELP or # TYPE")
    if family.kind == "counter" and not family.name.endswith("_total"):
        raise ExpositionError(f"counter {family.name} does not end in _total")
    if family.kind != "histogram":
        return
    series: dict[Labels, list[tuple[float, float]]] = {}
    for (name, labels), v in family.samples.items():
        if name.endswith("_bucket"):
            le = dict(labels).get("le")
            if le is None:
                raise ExpositionError(f"a bucket of {family.name} has no le")
            series.setdefault(labels - {("le", le)}, []).append((_value(le, le), v))
    for rest, buckets in series.items():
        buckets.sort()
        counts = [c for _, c in buckets]
        if counts != sorted(counts):
            raise ExpositionError(f"buckets of {family.name}{dict(rest)} are not cumulative")
        if not math.isinf(buckets[-1][0]):
            raise ExpositionError(f"{family.name}{dict(rest)} has no +Inf bucket")
        if family.samples.get((family.name + "_count", rest)) != counts[-1]:
            raise ExpositionError(f"{family.name}{dict(rest)}: +Inf bucket is not _count")
        if (family.name + "_sum", rest) not in family.samples:
            raise ExpositionError(f"{family.name}{dict(rest)} has no _sum")


def parse(text: str) -> Exposition:
    """The families of ``text``; ExpositionError (an AssertionError) on anything wrong."""
    if not text.endswith("\n"):
        raise ExpositionError("the text does not end with a newline")
    families: dict[str, ParsedFamily] = {}
    current: ParsedFamily | None = None

    def family(name: str) -> ParsedFamily:
        nonlocal current
        if current is not None and current.name == name:
            return current
        if name in families:
            raise ExpositionError(f"family {name} appears twice, or not contiguously")
        if current is not None:
            _check_family(current)
        current = families[name] = ParsedFamily(name)
        return current

    for line in text[:-1].split("\n"):
        if line.startswith("#"):
            if (match := HELP.match(line)) is not None:
                found = family(match.group(1))
                if found.help is not None or found.samples:
                    raise ExpositionError(f"misplaced # HELP: {line!r}")
                found.help = _unescape(match.group(2))
            elif (match := TYPE.match(line)) is not None:
                found = family(match.group(1))
                if found.kind or found.samples:
                    raise ExpositionError(f"misplaced # TYPE: {line!r}")
                found.kind = match.group(2)
            else:
                raise ExpositionError(f"unexpected comment {line!r}")
            continue
        match = SAMPLE.match(line)
        if match is None:
            raise ExpositionError(f"not a sample: {line!r}")
        name = match.group(1)
        owner = _family_of(name, current)
        key = (name, _labels(match.group(2), line))
        if key in owner.samples:
            raise ExpositionError(f"sample repeats: {line!r}")
        owner.samples[key] = _value(match.group(3), line)
    if current is not None:
        _check_family(current)
    return Exposition(families)


# -- the parser's own tests: it must reject what Prometheus (or our rules) would ------------

GOOD = """\
# HELP a_total Things, with a \\\\ and a \\n.
# TYPE a_total counter
a_total{reason="x \\"y\\""} 3
a_total{reason="z"} 0
# HELP b_seconds How long.
# TYPE b_seconds histogram
b_seconds_bucket{route="/p/{id}",le="0.1"} 1
b_seconds_bucket{route="/p/{id}",le="+Inf"} 2
b_seconds_sum{route="/p/{id}"} 0.35
b_seconds_count{route="/p/{id}"} 2
"""


def test_a_good_exposition_is_read() -> None:
    parsed = parse(GOOD)
    assert parsed.families["a_total"].help == "Things, with a \\ and a \n."
    assert parsed.value("a_total", reason='x "y"') == 3
    assert parsed.value("b_seconds_count", route="/p/{id}") == 2
    assert parsed.families["b_seconds"].kind == "histogram"


@pytest.mark.parametrize(
    "bad",
    [
        GOOD[:-1],  # no final newline
        GOOD.replace("# HELP a_total Things, with a \\\\ and a \\n.\n", ""),  # no HELP
        GOOD.replace("# TYPE a_total counter\n", ""),  # no TYPE
        GOOD.replace("# TYPE a_total counter", "# TYPE a_total counter\n# TYPE a_total counter"),
        GOOD.replace('a_total{reason="z"} 0', 'a_total{reason="x \\"y\\""} 0'),  # repeat
        GOOD.replace('reason="z"', "reason=z"),
        GOOD.replace('reason="z"', 'reason="z",'),
        GOOD.replace("} 0\n", "} zero\n"),
        GOOD.replace('le="0.1"} 1', 'le="0.1"} 3'),  # not cumulative
        GOOD.replace('b_seconds_count{route="/p/{id}"} 2', 'b_seconds_count{route="/p/{id}"} 5'),
        GOOD + 'a_total{reason="w"} 1\n',  # family not contiguous
        GOOD.replace("# TYPE a_total counter", "# TYPE a counter").replace("a_total", "a"),
    ],
)
def test_a_bad_exposition_is_refused(bad: str) -> None:
    with pytest.raises(ExpositionError):
        parse(bad)
