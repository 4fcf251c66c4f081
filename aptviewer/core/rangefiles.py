"""Range file readers (RRNG, RNG, CAMECA double RNG, ENV) and the RRNG writer.

None of these formats has a published specification; real files differ from one program
(and one version) to the next. The readers accept what such files contain (fields in any
order, keys in any case, ``#`` comments, CRLF, comma decimals, repeated keys, the same
definitions repeated many times, ranges given only a ``Name:``, trailing text...) and say
so: every oddity that changes or drops something is a :class:`RangeFileWarning` naming the
file and the line (repeats of one oddity are gathered into one warning that lists the
lines). Harmless variations (case, spacing, comments, CRLF, a missing ``Vol``) pass quietly.
What cannot be read unambiguously - a range with ``low >= high``, overlapping ranges, an
element symbol that is not an element - is a :class:`RangeError` naming the file and line.

Ranges are half-open (``low <= m < high``), so ENV files whose ranges touch are valid.
"""

from __future__ import annotations

import logging
import re
import warnings
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from .ranging import (
    DEFAULT_ION_COLOR,
    Ion,
    MassRange,
    RangeError,
    RangeFileWarning,
    RangeSet,
    hill_composition,
    hill_formula,
    is_element,
    looks_like_formula,
    normalize_color,
    parse_formula,
)
from .writers import atomic_output

logger = logging.getLogger(__name__)

#: Range file formats by extension.
RANGE_EXTENSIONS = {".rrng": "rrng", ".rng": "rng", ".env": "env"}

_SECTION = re.compile(r"\[\s*([^\]]*?)\s*\]\s*(.*)")
_INLINE_COMMENT = re.compile(r"(^|\s)#.*$")
_RANGE_KEY = re.compile(r"range\s*(\d+)", re.IGNORECASE)
_ION_KEY = re.compile(r"ion\s*(\d+)", re.IGNORECASE)


# ---------------------------------------------------------------------------------------
# Shared helpers: lines, notes (warnings gathered by kind), numbers, ion names
# ---------------------------------------------------------------------------------------


class _Notes:
    """Oddities of one file, gathered by message so that a repeat is one warning."""

    def __init__(self, path: Path):
        self.path = path
        self._by_message: dict[str, list[int]] = {}

    def add(self, line: int, message: str) -> None:
        lines = self._by_message.setdefault(message, [])
        if line not in lines:
            lines.append(line)

    def error(self, line: int | None, message: str) -> RangeError:
        return RangeError(message, self.path, line)

    def emit(self) -> None:
        for message, lines in self._by_message.items():
            more = ""
            if len(lines) > 1:
                shown = ", ".join(map(str, lines[1:11]))
                tail = ", ..." if len(lines) > 11 else ""
                more = f" (also on {len(lines) - 1} more line{'s' if len(lines) > 2 else ''}: {shown}{tail})"
            warnings.warn(RangeFileWarning(f"{self.path}:{lines[0]}: {message}{more}"), stacklevel=4)


def _read_lines(path: Path, notes: _Notes) -> list[tuple[int, str]]:
    """``[(line_number, text)]`` of the file (any newline convention; UTF-8 or Latin-1)."""
    try:
        data = path.read_bytes()
    except OSError as exc:
        raise RangeError(f"cannot read the range file: {exc.strerror or exc}", path) from None
    try:
        text = data.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        text = data.decode("latin-1")
        notes.add(data.count(b"\n", 0, exc.start) + 1, "the file is not UTF-8; read as Latin-1")
    if "\x00" in text:
        raise RangeError("this is a binary file, not a range file", path)
    return list(enumerate(text.splitlines(), start=1))


def _strip_comment(text: str, *, anywhere: bool = False) -> str:
    if anywhere:
        return text.split("#", 1)[0].strip()
    return _INLINE_COMMENT.sub("", text).strip()


def _number(token: str, notes: _Notes, line: int, what: str) -> float:
    """A finite float; a comma decimal (``51,5``) is accepted with a note."""
    try:
        value = float(token)
    except ValueError:
        if token.count(",") == 1 and "." not in token:
            try:
                value = float(token.replace(",", "."))
            except ValueError:
                raise notes.error(line, f"{what}: {token!r} is not a number") from None
            notes.add(line, "comma used as the decimal separator")
        else:
            raise notes.error(line, f"{what}: {token!r} is not a number") from None
    if not np.isfinite(value):
        raise notes.error(line, f"{what}: {token!r} is not a finite number")
    return value


def _is_number(token: str) -> bool:
    try:
        float(token.replace(",", ".") if token.count(",") == 1 and "." not in token else token)
    except ValueError:
        return False
    return True


def _count(token: str, notes: _Notes, line: int, what: str) -> int:
    value = _number(token, notes, line, what)
    if value != int(value) or value < 0:
        raise notes.error(line, f"{what}: {token!r} is not a whole number")
    return int(value)


def _ion_from_name(name: str, color: str, notes: _Notes, line: int) -> Ion:
    """An ion named in an RNG/ENV file: a formula (``CrO``, ``Fe++``) or an unknown species."""
    stripped = name.rstrip("+")
    charge = len(name) - len(stripped) or None
    if looks_like_formula(stripped):
        try:
            composition = parse_formula(stripped)
        except ValueError as exc:
            raise notes.error(line, f"ion {name!r}: {exc}") from None
        return Ion(hill_formula(composition), hill_composition(composition), charge, color)
    notes.add(line, f"ion name {name!r} is not a chemical formula: read as a species of unknown composition "
                    "(in the ionic composition, not the atomic one)")
    return Ion.unknown(name, color)


def _rgb_color(tokens: list[str], notes: _Notes, line: int) -> str:
    rgb = [_number(t, notes, line, "colour") for t in tokens]
    if all(0.0 <= c <= 1.0 for c in rgb):
        return normalize_color(rgb)
    if all(0.0 <= c <= 255.0 for c in rgb):
        notes.add(line, "colour given as 0..255 components instead of 0..1")
        return normalize_color([c / 255.0 for c in rgb])
    notes.add(line, f"colour {' '.join(tokens)} is not an r g b triple; the default colour is used")
    return DEFAULT_ION_COLOR


@dataclass
class _Entry:
    """A range read from a file, with the line it came from."""

    line: int
    low: float
    high: float
    ion: Ion
    volume: float | None = None
    key: str = ""

    def identity(self):
        return (self.low, self.high, self.ion.name, self.ion.composition, self.ion.charge)

    def describe(self) -> str:
        return f"{self.ion.name} [{self.low:g}, {self.high:g}) on line {self.line}"


def _build(entries: list[_Entry], notes: _Notes) -> RangeSet:
    """Drop exact repeats (noted), reject bad and overlapping ranges naming lines, sort."""
    kept: list[_Entry] = []
    seen: dict[tuple, _Entry] = {}
    for entry in entries:
        first = seen.get(entry.identity())
        if first is not None:
            if first.volume != entry.volume or first.ion.color != entry.ion.color:
                notes.add(entry.line, f"range {first.describe()} defined again with another volume or colour; "
                                      "the first definition is kept")
            else:
                notes.add(entry.line, f"range {first.describe()} repeated; the repeat is ignored")
            continue
        if entry.low >= entry.high:
            raise notes.error(entry.line, f"range of {entry.ion.name}: low ({entry.low:g}) must be below "
                                          f"high ({entry.high:g})")
        seen[entry.identity()] = entry
        kept.append(entry)
    by_name: dict[str, _Entry] = {}
    for entry in kept:
        first = by_name.setdefault(entry.ion.name, entry)
        if first.ion.composition != entry.ion.composition:
            raise notes.error(entry.line, f"ion {entry.ion.name!r} has another composition on line {first.line} "
                                          f"({first.ion.formula or 'unknown'} and {entry.ion.formula or 'unknown'})")
    ordered = sorted(kept, key=lambda e: (e.low, e.high))
    for a, b in zip(ordered, ordered[1:]):
        if b.low < a.high:
            raise notes.error(b.line, f"ranges overlap: {a.describe()} and {b.describe()}")
    try:
        return RangeSet(MassRange(e.low, e.high, e.ion, e.volume) for e in kept)
    except RangeError as exc:
        raise RangeError(exc.problem, notes.path) from None


# ---------------------------------------------------------------------------------------
# RRNG
# ---------------------------------------------------------------------------------------


def _fields(text: str) -> list[str]:
    """Whitespace tokens, with ``Key: value`` (a space after the colon) joined into one."""
    tokens = text.split()
    joined: list[str] = []
    i = 0
    while i < len(tokens):
        token = tokens[i]
        if token.endswith(":") and len(token) > 1 and i + 1 < len(tokens) and ":" not in tokens[i + 1]:
            token += tokens[i + 1]
            i += 1
        joined.append(token)
        i += 1
    return joined


def _element_key(key: str, notes: _Notes, line: int) -> str:
    if is_element(key):
        return key
    fixed = key[:1].upper() + key[1:].lower()
    if is_element(fixed):
        notes.add(line, f"element written {key!r}; read as {fixed!r}")
        return fixed
    raise notes.error(line, f"{key!r} is not an element symbol")


def _parse_rrng_range(key: str, value: str, notes: _Notes, line: int) -> _Entry:
    tokens = _fields(value)
    if len(tokens) < 2 or not (_is_number(tokens[0]) and _is_number(tokens[1])):
        raise notes.error(line, f"{key}: expected 'low high' masses first, got {value.strip()!r}")
    low = _number(tokens[0], notes, line, f"{key} low")
    high = _number(tokens[1], notes, line, f"{key} high")
    composition: dict[str, int] = {}
    volume = color = name = charge = None
    seen: set[str] = set()
    for token in tokens[2:]:
        if ":" not in token:
            notes.add(line, f"text {token!r} after the range fields ignored")
            continue
        field, _, content = token.partition(":")
        lower = field.strip().lower()
        if lower in seen:
            notes.add(line, f"field {field!r} repeated in one range; the last value is kept")
        seen.add(lower)
        if lower == "vol":
            volume = _number(content, notes, line, f"{key} Vol") if content else None
        elif lower in ("color", "colour"):
            try:
                color = normalize_color(content)
            except ValueError:
                notes.add(line, f"colour {content!r} is not 6 hex digits; the default colour is used")
        elif lower == "name":
            name = content
        elif lower == "charge":
            charge = _count(content, notes, line, f"{key} Charge")
        else:
            symbol = _element_key(field.strip(), notes, line)
            n = _count(content, notes, line, f"{key} {symbol}") if content else 1
            if n == 0:
                notes.add(line, f"{symbol}:0 in a range ignored")
                continue
            composition[symbol] = n
    color = color or DEFAULT_ION_COLOR
    if composition:
        ion = Ion(hill_formula(composition), hill_composition(composition), charge or None, color)
    elif name:
        notes.add(line, f"range given only a name ({name!r}): a species of unknown composition "
                        "(in the ionic composition, not the atomic one)")
        ion = Ion(name, (), charge or None, color)
    else:
        notes.add(line, f"{key} names no ion: read as the unknown species 'unassigned'")
        ion = Ion("unassigned", (), None, color)
    return _Entry(line, low, high, ion, volume, key)


def parse_rrng(path: Path, lines, notes: _Notes) -> RangeSet:
    section = None
    unknown_section_line = None
    numbers: dict[str, tuple[int, int]] = {}
    ion_keys: dict[int, tuple[str, int]] = {}
    range_keys: dict[int, int] = {}
    entries: list[_Entry] = []
    for line, raw in lines:
        text = _strip_comment(raw)
        if not text:
            continue
        header = _SECTION.fullmatch(text)
        if header:
            section = header.group(1).lower()
            if header.group(2):
                notes.add(line, f"text {header.group(2)!r} after the section header ignored")
            if section not in ("ions", "ranges"):
                notes.add(line, f"section [{header.group(1)}] is not [Ions] or [Ranges]; its lines are ignored")
                unknown_section_line = line
            continue
        if section is None:
            notes.add(line, "line before the first section ignored")
            continue
        if section not in ("ions", "ranges"):
            logger.debug("%s:%d: line of section started on line %s ignored", path, line, unknown_section_line)
            continue
        key, equal, value = text.partition("=")
        key = key.strip()
        if not equal:
            notes.add(line, f"line without '=' in [{section.title()}] ignored")
            continue
        if key.lower() == "number":
            count = _count(value.strip().split()[0] if value.split() else "", notes, line, f"[{section.title()}] Number")
            if section in numbers and numbers[section][0] != count:
                notes.add(line, f"[{section.title()}] Number given again with another value ({count}); "
                                "the first one is kept")
            numbers.setdefault(section, (count, line))
            continue
        if section == "ions":
            match = _ION_KEY.fullmatch(key)
            if not match:
                notes.add(line, f"key {key!r} in [Ions] is not IonN; ignored")
                continue
            number, name = int(match.group(1)), value.strip()
            previous = ion_keys.get(number)
            if previous is not None and previous[0] != name:
                notes.add(line, f"{key} defined again as {name!r} (it was {previous[0]!r} on line {previous[1]})")
            elif previous is not None:
                notes.add(line, f"{key}={name} repeated")
            ion_keys.setdefault(number, (name, line))
            continue
        match = _RANGE_KEY.fullmatch(key)
        if not match:
            notes.add(line, f"key {key!r} in [Ranges] is not RangeN; ignored")
            continue
        entry = _parse_rrng_range(key, value, notes, line)
        number = int(match.group(1))
        if number in range_keys:
            first = next(e for e in entries if e.line == range_keys[number])
            if first.identity() != entry.identity():
                notes.add(line, f"{key} defined again (first on line {first.line}) with another range; both are kept")
        range_keys.setdefault(number, line)
        entries.append(entry)
    if section is None and not entries:
        raise notes.error(None, "no [Ions] or [Ranges] section: not an RRNG file")
    ranges = _build(entries, notes)
    declared = numbers.get("ranges")
    if declared is not None and declared[0] != len(ranges):
        notes.add(declared[1], f"[Ranges] Number={declared[0]} but {len(ranges)} distinct ranges were read")
    listed = {name for name, _ in ion_keys.values()}
    if ion_keys:
        for r in ranges:
            for symbol in r.ion.elements:
                if symbol not in listed:
                    notes.add(numbers.get("ions", (0, min(line for _, line in ion_keys.values())))[1],
                              f"element {symbol} is used by a range but not listed in [Ions]")
    return ranges


# ---------------------------------------------------------------------------------------
# RNG (ORNL) and CAMECA's double RNG
# ---------------------------------------------------------------------------------------


@dataclass
class _RngBlock:
    names: list[str]
    ions: list[Ion]
    entries: list[_Entry]
    end: int  # index in the line list just after the block


def _content_lines(lines) -> list[tuple[int, str]]:
    out = []
    for line, raw in lines:
        text = _strip_comment(raw, anywhere=True)
        if text:
            out.append((line, text))
    return out


def _parse_rng_block(content, start: int, notes: _Notes, what: str) -> _RngBlock:
    if start >= len(content):
        raise notes.error(None, f"{what}: the file ends before the 'ions ranges' header")
    line, text = content[start]
    tokens = text.split()
    if len(tokens) < 2 or not all(t.isdigit() for t in tokens[:2]):
        raise notes.error(line, f"{what}: expected the header 'number_of_ions number_of_ranges', got {text!r}")
    if len(tokens) > 2:
        notes.add(line, f"text {' '.join(tokens[2:])!r} after the RNG header ignored")
    n_ions, n_ranges = int(tokens[0]), int(tokens[1])
    i = start + 1
    names, colors, name_lines = [], [], []
    for k in range(n_ions):
        if i + 1 >= len(content):
            raise notes.error(content[-1][0], f"{what}: the file ends inside the list of {n_ions} ions")
        (long_line, long_text), (short_line, short_text) = content[i], content[i + 1]
        if long_text.startswith("-"):
            raise notes.error(long_line, f"{what}: the header announces {n_ions} ions but only {k} are listed")
        if len(long_text.split()) > 1:
            notes.add(long_line, f"text after the ion name {long_text.split()[0]!r} ignored")
        parts = short_text.split()
        if len(parts) < 4:
            raise notes.error(short_line, f"{what}: expected 'name red green blue' for ion {k + 1}, got {short_text!r}")
        if len(parts) > 4:
            notes.add(short_line, f"text {' '.join(parts[4:])!r} after the ion colour ignored")
        names.append(parts[0])
        colors.append(_rgb_color(parts[1:4], notes, short_line))
        name_lines.append(short_line)
        i += 2
    if i >= len(content) or not content[i][1].startswith("-"):
        where = content[i][0] if i < len(content) else content[-1][0]
        raise notes.error(where, f"{what}: expected the table separator line of dashes after the {n_ions} ions")
    sep_line, sep_text = content[i]
    headers = sep_text.lstrip("-").split()
    if headers and headers != names:
        notes.add(sep_line, f"table headings {' '.join(headers)} differ from the ion names {' '.join(names)}; "
                            "the columns are read in the order of the ion names")
    i += 1
    ions = [_ion_from_name(name, color, notes, line) for name, color, line in zip(names, colors, name_lines)]
    table: list[tuple[int, float, float, list[int]]] = []
    while i < len(content):
        line, text = content[i]
        if text.startswith("-"):
            break
        tokens = text.split()
        if tokens and not _is_number(tokens[0]):
            tokens = tokens[1:]  # the leading marker ('.') of each range line
        if len(tokens) < 2 or not (_is_number(tokens[0]) and _is_number(tokens[1])):
            break
        if len(tokens) < 2 + n_ions:
            raise notes.error(line, f"{what}: a range line needs low, high and {n_ions} ion columns; got {text!r}")
        if len(tokens) > 2 + n_ions:
            notes.add(line, f"text {' '.join(tokens[2 + n_ions:])!r} after the ion columns ignored")
        low = _number(tokens[0], notes, line, "range low")
        high = _number(tokens[1], notes, line, "range high")
        table.append((line, low, high, [_count(t, notes, line, "ion column") for t in tokens[2:2 + n_ions]]))
        i += 1
    if len(table) != n_ranges:
        notes.add(sep_line, f"the header announces {n_ranges} ranges but the table has {len(table)}")
    # Some programs name molecular ions in columns that no range uses (3Depict reads the
    # same convention): such a column lends its name and colour to a matching range.
    named = [ion for k, ion in enumerate(ions) if ion.is_known and not any(row[k] for *_, row in table)]
    entries = [_rng_entry(line, low, high, row, ions, named, notes) for line, low, high, row in table]
    return _RngBlock(names, ions, entries, i)


def _rng_entry(line, low, high, row, ions, named, notes: _Notes) -> _Entry:
    used = [(ion, n) for ion, n in zip(ions, row) if n]
    if not used:
        notes.add(line, "range assigned to no ion column: read as the unknown species 'unassigned'")
        return _Entry(line, low, high, Ion("unassigned"))
    if len(used) == 1 and used[0][1] == 1:
        return _Entry(line, low, high, used[0][0])
    if any(not ion.is_known for ion, _ in used):
        raise notes.error(line, "a range combines ion columns of unknown composition: "
                                + ", ".join(ion.name for ion, _ in used))
    composition: dict[str, int] = {}
    for ion, n in used:
        for symbol, k in ion.composition:
            composition[symbol] = composition.get(symbol, 0) + n * k
    for candidate in named:
        if candidate.elements == composition:
            return _Entry(line, low, high, candidate)
    name = hill_formula(composition)
    if len(used) > 1:
        notes.add(line, f"range combines several ion columns: read as the molecular ion {name}")
    return _Entry(line, low, high, Ion(name, hill_composition(composition), used[0][0].charge, used[0][0].color))


def parse_rng(path: Path, lines, notes: _Notes) -> RangeSet:
    content = _content_lines(lines)
    if not content:
        raise notes.error(None, "the file is empty")
    block = _parse_rng_block(content, 0, notes, "RNG")
    entries = block.entries
    rest = block.end
    if rest < len(content):
        sep_line, _ = content[rest]
        # CAMECA's "double" RNG: a dash line, then a second RNG block naming the molecular
        # ions; its ranges match ranges of the first block by their bounds.
        following = content[rest + 1][1].split() if rest + 1 < len(content) else []
        if len(following) >= 2 and all(t.isdigit() for t in following[:2]):
            extension = _parse_rng_block(content, rest + 1, notes, "RNG polyatomic extension")
            entries = _merge_polyatomic(entries, extension.entries, notes)
            rest = extension.end
        if rest < len(content):
            first, last = content[rest][0], content[-1][0]
            notes.add(first, f"lines {first}-{last} after the range table are not ranges; ignored"
                      if last != first else "line after the range table is not a range; ignored")
        logger.debug("%s: RNG table ends before line %d", path, sep_line)
    return _build(entries, notes)


def _merge_polyatomic(entries: list[_Entry], extension: list[_Entry], notes: _Notes) -> list[_Entry]:
    by_bounds = {}
    for index, entry in enumerate(entries):
        by_bounds.setdefault((entry.low, entry.high), index)
    merged = list(entries)
    for ext in extension:
        index = by_bounds.get((ext.low, ext.high))
        if index is None:
            notes.add(ext.line, f"polyatomic range {ext.describe()} matches no range of the first table; ignored")
            continue
        base = merged[index]
        ion = ext.ion
        if ion.is_known and base.ion.is_known and ion.elements != base.ion.elements:
            notes.add(ext.line, f"polyatomic name {ion.name} disagrees with the composition "
                                f"{base.ion.formula} of line {base.line}; the composition of line {base.line} is kept")
            ion = Ion(ion.name if not looks_like_formula(ion.name) else base.ion.name,
                      base.ion.composition, base.ion.charge, ion.color)
        elif not ion.is_known and base.ion.is_known:
            ion = Ion(ion.name, base.ion.composition, base.ion.charge, ion.color)
        merged[index] = _Entry(base.line, base.low, base.high, ion, base.volume, base.key)
    return merged


# ---------------------------------------------------------------------------------------
# ENV (GPM Rouen)
# ---------------------------------------------------------------------------------------


def parse_env(path: Path, lines, notes: _Notes) -> RangeSet:
    content = [(line, text.split()) for line, text in _content_lines(lines)]
    if not content:
        raise notes.error(None, "the file is empty")
    line, tokens = content[0]
    if len(tokens) < 2 or not all(t.isdigit() for t in tokens[:2]):
        raise notes.error(line, f"expected the header 'number_of_ions number_of_ranges', got {' '.join(tokens)!r}")
    if len(tokens) > 2:
        notes.add(line, f"text {' '.join(tokens[2:])!r} after the header ignored")
    n_ions, n_ranges = int(tokens[0]), int(tokens[1])
    header_line = line
    i = 1
    ions: dict[str, Ion] = {}
    while i < len(content):
        line, tokens = content[i]
        is_ion = len(tokens) == 4 and not _is_number(tokens[0]) and all(_is_number(t) for t in tokens[1:])
        if not is_ion:
            break
        name = tokens[0]
        if name in ions:
            notes.add(line, f"ion {name} listed again; the first colour is kept")
        else:
            ions[name] = _ion_from_name(name, _rgb_color(tokens[1:4], notes, line), notes, line)
        i += 1
    if len(ions) != n_ions:
        notes.add(header_line, f"the header announces {n_ions} ions but {len(ions)} are listed")
    entries: list[_Entry] = []
    # The header's range count ends the table: the settings that follow in a GPM file can
    # look like ranges ("Voltage 1 2").
    while i < len(content) and len(entries) < n_ranges:
        line, tokens = content[i]
        if len(tokens) < 3 or _is_number(tokens[0]) or not (_is_number(tokens[1]) and _is_number(tokens[2])):
            break
        name = tokens[0]
        ion = ions.get(name)
        if ion is None:
            notes.add(line, f"range of {name}, an ion not listed before the ranges; default colour used")
            ion = ions[name] = _ion_from_name(name, DEFAULT_ION_COLOR, notes, line)
        if len(tokens) > 5:
            notes.add(line, f"text {' '.join(tokens[5:])!r} after the range fields ignored")
        low = _number(tokens[1], notes, line, "range low")
        high = _number(tokens[2], notes, line, "range high")
        entries.append(_Entry(line, low, high, ion))
        i += 1
    if len(entries) != n_ranges:
        notes.add(header_line, f"the header announces {n_ranges} ranges but {len(entries)} were read")
    if i < len(content):
        first, last = content[i][0], content[-1][0]
        notes.add(first, f"lines {first}-{last} after the range table are not ranges (other settings); ignored")
    return _build(entries, notes)


# ---------------------------------------------------------------------------------------
# Entry points
# ---------------------------------------------------------------------------------------


def sniff_range_format(lines) -> str | None:
    """``"rrng"``, ``"rng"`` or ``"env"`` from a file's content, or None."""
    content = _content_lines(lines)
    for _, text in content:
        if _SECTION.fullmatch(text) and _SECTION.fullmatch(text).group(1).lower() in ("ions", "ranges"):
            return "rrng"
    if not content:
        return None
    first = content[0][1].split()
    if len(first) >= 2 and all(t.isdigit() for t in first[:2]):
        return "rng" if any(text.startswith("-") for _, text in content[1:]) else "env"
    return None


_PARSERS = {"rrng": parse_rrng, "rng": parse_rng, "env": parse_env}


def read_range_file(path, *, format: str | None = None) -> RangeSet:
    """See :func:`aptviewer.core.ranging.read_ranges`."""
    path = Path(path)
    notes = _Notes(path)
    if path.is_dir():
        raise RangeError("is a folder, not a range file", path)
    lines = _read_lines(path, notes)
    sniffed = sniff_range_format(lines)
    if format is None:
        by_extension = RANGE_EXTENSIONS.get(path.suffix.lower())
        if sniffed in ("rng", "env") and by_extension in ("rng", "env"):
            sniffed = by_extension  # both start with 'ions ranges'; the extension decides
        format = sniffed or by_extension
        if by_extension and sniffed and sniffed != by_extension:
            notes.add(1, f"the content is {sniffed.upper()}, not {by_extension.upper()} as the extension says; "
                         f"read as {sniffed.upper()}")
        if format is None:
            raise RangeError("not a range file (expected RRNG, RNG or ENV content)", path)
    elif format not in _PARSERS:
        raise ValueError(f"unknown range format {format!r}; formats are: {', '.join(_PARSERS)}")
    # (on an error the exception says what matters; the notes so far are not emitted)
    ranges = _PARSERS[format](path, lines, notes)
    notes.emit()
    logger.info("%s: %d ranges of %d ions read", path, len(ranges), len(ranges.ions))
    return ranges


def _plain(x: float) -> str:
    return np.format_float_positional(float(x), unique=True, trim="-")


def format_rrng(ranges: RangeSet) -> str:
    """The RRNG text of ``ranges`` (the layout IVAS and AP Suite write)."""
    basic: list[str] = []
    for ion in ranges.ions:
        for symbol in (ion.elements or {ion.name: 1}) if ion.is_known else ():
            if symbol not in basic:
                basic.append(symbol)
    lines = ["[Ions]", f"Number={len(basic)}"]
    lines += [f"Ion{k}={symbol}" for k, symbol in enumerate(basic, start=1)]
    lines += ["[Ranges]", f"Number={len(ranges)}"]
    for k, r in enumerate(ranges, start=1):
        fields = [_plain(r.low), _plain(r.high)]
        if r.volume is not None:
            fields.append(f"Vol:{_plain(r.volume)}")
        if r.ion.is_known:
            fields += [f"{symbol}:{n}" for symbol, n in r.ion.composition]
        else:
            fields.append(f"Name:{r.ion.name}")
        fields.append(f"Color:{r.ion.color[1:].upper()}")
        lines.append(f"Range{k}=" + " ".join(fields))
    return "\n".join(lines) + "\n"


def write_rrng_file(ranges: RangeSet, path) -> Path:
    """Write ``ranges`` as RRNG through :func:`~aptviewer.core.writers.atomic_output`.

    RRNG has no charge field: charges are not written (names and compositions are).
    """
    path = Path(path)
    text = format_rrng(ranges)
    with atomic_output(path) as temp:
        temp.write_text(text, encoding="utf-8", newline="\n")
    return path
