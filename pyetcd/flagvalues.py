"""Flag values as Go's flag package and etcd's flag types parse them, refused in their words.

etcd's users see these messages when a value is wrong, so pyetcd gives the same ones:
Go's `flag` says only "parse error" for numbers, booleans and durations, while
time.ParseDuration (used for --auto-compaction-retention) explains itself.
"""

from __future__ import annotations

PARSE_ERROR = "parse error"
INT64_MAX = 2**63 - 1
UINT64_MAX = 2**64 - 1

_GO_TRUE = frozenset({"1", "t", "T", "TRUE", "true", "True"})
_GO_FALSE = frozenset({"0", "f", "F", "FALSE", "false", "False"})
_DURATION_UNITS = {"ns": 1e-9, "us": 1e-6, "µs": 1e-6, "μs": 1e-6, "ms": 1e-3, "s": 1.0, "m": 60.0, "h": 3600.0}


def parse_go_bool(text: str) -> bool:
    """strconv.ParseBool: only the spellings Go accepts."""
    if text in _GO_TRUE:
        return True
    if text in _GO_FALSE:
        return False
    raise ValueError(PARSE_ERROR)


def parse_go_int(text: str, *, unsigned: bool = False) -> int:
    """strconv.ParseInt/ParseUint with base 0 (0x, 0o, 0b prefixes), 64 bits."""
    body = text[1:] if text[:1] in "+-" else text
    if not body or unsigned and text.startswith("-"):
        raise ValueError(PARSE_ERROR)
    try:
        value = int(text, 0)
    except ValueError:
        if not body.isdigit():
            raise ValueError(PARSE_ERROR) from None
        value = int(text, 8)  # Go reads a leading 0 as octal
    if (unsigned and value > UINT64_MAX) or (not unsigned and not -INT64_MAX - 1 <= value <= INT64_MAX):
        raise ValueError(PARSE_ERROR)
    return value


def parse_go_duration(text: str) -> float:
    """time.ParseDuration, in seconds; failures carry Go's message (`time: invalid duration "x"`)."""
    quoted = f'"{text}"'
    rest = text
    sign = 1.0
    if rest[:1] in "+-":
        sign = -1.0 if rest[0] == "-" else 1.0
        rest = rest[1:]
    if rest == "0":
        return 0.0
    if not rest:
        raise ValueError(f"time: invalid duration {quoted}")
    total = 0.0
    while rest:
        number_end = 0
        while number_end < len(rest) and (rest[number_end].isdigit() or rest[number_end] == "."):
            number_end += 1
        number = rest[:number_end]
        if not number or number == "." or number.count(".") > 1:
            raise ValueError(f"time: invalid duration {quoted}")
        rest = rest[number_end:]
        unit_end = 0
        while unit_end < len(rest) and not (rest[unit_end].isdigit() or rest[unit_end] == "."):
            unit_end += 1
        unit = rest[:unit_end]
        if not unit:
            raise ValueError(f"time: missing unit in duration {quoted}")
        if unit not in _DURATION_UNITS:
            raise ValueError(f'time: unknown unit "{unit}" in duration {quoted}')
        total += float(number) * _DURATION_UNITS[unit]
        rest = rest[unit_end:]
    return sign * total
