"""Secrets never appear in output: one canary finds and masks them in every encoding.

A system logs a password in many shapes: as typed, URL-encoded in a form body or query
string (``%22``, ``%c3%b6``, ``+`` for a space, even ``%2522``), inside a base64 Basic
``Authorization`` header, JSON-escaped (``\\"``, ``\\\\``, ``\\u00f6``), HTML-escaped,
as hex, or split over two fields of one record. :class:`Canary` compiles every such form
of a set of secrets into one regular expression; the ``secret_leak`` check scans log
windows with it and the report writers scrub with it, so what one finds the other masks.

How it stays exhaustive and small: each character of a secret is matched in any of its
escapes (so mixed escaping, as ``json.dumps`` writes ``p\\u00f6ss``, is found), and base64
is matched by its *cores*: the characters that depend on the secret alone, at each of the
three byte alignments, so the secret is found inside any base64 blob (``user:secret``,
padded or not, standard or URL alphabet). The expression runs on RE2 (linear time) when
``google-re2`` is installed, else on :mod:`re`.

Rendered reports, console lines and logs pass through :func:`scrub` (text) or
:func:`scrub_data` (values, before they are serialised) in the one place that writes them.
"""

from __future__ import annotations

import base64
import bisect
import dataclasses
import functools
import html
import html.entities
import json
import re
import threading
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any
from urllib.parse import quote, quote_plus

try:  # linear-time matching; the alternation of every form is large (BENCHMARKS.md)
    import re2 as _re2
except ImportError:  # pragma: no cover - google-re2 is a dependency; `re` is the fallback
    _re2 = None

MASK = "***"
MIN_LEN = 4
"""Secrets shorter than this cannot be masked without masking ordinary words; config
refuses them (:func:`too_short`)."""

_lock = threading.Lock()
_secrets: set[str] = set()


def too_short(value: str) -> bool:
    """Whether a secret value is too short to be scrubbed safely (empty is no secret)."""
    return 0 < len(value) < MIN_LEN


# -- the forms of a secret -------------------------------------------------------------------

def _hex(n: int, width: int) -> str:
    """``n`` in hex as a regex that accepts either case of a-f."""
    return "".join(f"[{d}{d.upper()}]" if d.isalpha() else d for d in f"{n:0{width}x}")


_SHORT_ESCAPES = {"\n": "n", "\r": "r", "\t": "t", "\b": "b", "\f": "f"}


@functools.lru_cache(maxsize=4096)
def _char(c: str) -> str:
    """A regex for ``c`` written any way a log may carry it."""
    if c.isascii() and c.isalnum():
        return re.escape(c)  # letters and digits are never escaped by an encoder
    code = ord(c)
    utf8 = c.encode("utf-8")
    alts = [
        "\\\\*" + re.escape(c),                                    # c, \c, \\c (JSON, shells)
        "".join("%(?:25)?" + _hex(b, 2) for b in utf8),            # %XX, %25XX (twice)
        "".join("\\\\+x" + _hex(b, 2) for b in utf8),              # \xc3\xb6 (bytes repr)
        f"&#0*{code};", f"&#[xX]0*{_hex(code, 1)};",              # &#34; &#x22;
    ]
    if code < 0x10000:
        alts.append("\\\\+u" + _hex(code, 4))                      # \u00f6, \\u00f6
    else:                                                          # a surrogate pair
        v = code - 0x10000
        high, low = 0xD800 + (v >> 10), 0xDC00 + (v & 0x3FF)
        alts.append("\\\\+u" + _hex(high, 4) + "\\\\+u" + _hex(low, 4))
        alts.append("\\\\+U" + _hex(code, 8))                    # \U0001f600 (Python)
    if 0x80 <= code < 0x100:
        alts.append("\\\\+x" + _hex(code, 2))                      # '\xf6' (str repr)
    if c == " ":
        alts.append("\\+")                                         # form encoding
    if c in _SHORT_ESCAPES:
        alts.append("\\\\+" + _SHORT_ESCAPES[c])                   # \n \t \r (JSON, repr)
    name = html.entities.codepoint2name.get(code)
    if name:
        alts.append(f"&{name};")
    if c == "'":
        alts.append("&apos;")
    return "(?:" + "|".join(alts) + ")"


@dataclass(frozen=True)
class Form:
    """One searchable form of a secret: the text itself, a base64 core, or hex."""

    kind: str    # "text" | "base64" | "base64url" | "hex"
    text: str


def _b64_cores(data: bytes) -> list[tuple[str, str]]:
    """The base64 characters that depend on ``data`` alone, at each of the 3 alignments."""
    out: list[tuple[str, str]] = []
    for k in range(3):
        encoded = base64.b64encode(b"\0" * k + data).decode()
        # character i covers bits [6i, 6i+6); the secret holds bits [8k, 8k + 8*len)
        core = encoded[-(-8 * k // 6):(8 * k + 8 * len(data)) // 6]
        if core:
            out.append(("base64", core))
            url = core.replace("+", "-").replace("/", "_")
            if url != core:
                out.append(("base64url", url))
    return out


@functools.lru_cache(maxsize=512)
def forms(secret: str) -> tuple[Form, ...]:
    """Every form :class:`Canary` searches for ``secret`` in (each char in any escape)."""
    data = secret.encode("utf-8")
    found = [("text", secret), ("hex", data.hex()), ("hex", data.hex().upper())]
    found += _b64_cores(data)
    try:  # Basic auth was latin-1 before RFC 7617; old clients still send it
        latin = secret.encode("latin-1")
    except UnicodeEncodeError:
        latin = data
    if latin != data:
        found += [*_b64_cores(latin), ("hex", latin.hex())]
    return tuple(Form(kind, text) for kind, text in dict.fromkeys(found))


def encodings(secret: str, user: str | None = None) -> dict[str, str]:
    """``secret`` as systems write it, by name: for tests and artifact scans to plant/seek."""
    basic = f"{user if user is not None else 'user'}:{secret}".encode()
    data = secret.encode()
    b64, b64u = base64.b64encode, base64.urlsafe_b64encode
    out = {
        "raw": secret,
        "url.quote": quote(secret, safe=""),
        "url.quote_lower": re.sub(r"%[0-9A-F]{2}", lambda m: m[0].lower(),
                                  quote(secret, safe="")),
        "url.quote_plus": quote_plus(secret, safe=""),
        "url.quote_plus_lower": re.sub(r"%[0-9A-F]{2}", lambda m: m[0].lower(),
                                       quote_plus(secret, safe="")),
        "url.path": quote(secret),
        "url.js": quote(secret, safe="!'()*"),          # encodeURIComponent
        "url.twice": quote(quote(secret, safe=""), safe=""),
        "base64": b64(data).decode(),
        "base64.nopad": b64(data).decode().rstrip("="),
        "base64url": b64u(data).decode(),
        "base64url.nopad": b64u(data).decode().rstrip("="),
        "basic": "Basic " + b64(basic).decode(),
        "basic.nopad": b64(basic).decode().rstrip("="),
        "basic.url": b64u(basic).decode(),
        "json": json.dumps(secret, ensure_ascii=False)[1:-1],
        "json.ascii": json.dumps(secret)[1:-1],
        "json.twice": json.dumps(json.dumps(secret))[3:-3],
        "html": html.escape(secret),
        "html.numeric": "".join(c if c.isascii() and c.isalnum() else f"&#{ord(c)};"
                                for c in secret),
        "hex": data.hex(),
        "repr.bytes": repr(data)[2:-1],
        "python.escape": secret.encode("unicode_escape").decode(),
    }
    return out


# -- the canary --------------------------------------------------------------------------

@dataclass(frozen=True)
class Hit:
    """Where a secret was found: the span, which secret (index) and in which encoding."""

    start: int
    end: int
    secret: int
    encoding: str


HAVE_RE2 = _re2 is not None
"""Whether the canary runs on RE2 (google-re2 installed) rather than :mod:`re`."""


_SHORT = 2048  # characters: shorter texts are searched with `re` (see Canary._engine)


def _compile(pattern: str, use_re2: bool = True) -> Any:
    if _re2 is not None and use_re2:
        try:
            options = _re2.Options()
            options.max_mem = 256 << 20  # many secrets make a large automaton
            return _re2.compile(pattern, options)
        except _re2.error:  # pragma: no cover - beyond RE2's limits: `re` can still do it
            pass
    return re.compile(pattern)


# A base64 / hex match is widened to its whole token (and base64's padding), so no part
# of the blob survives: its edges hold a few bits of the secret, and the user name.
_ALNUM = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789"
# a core without + or / is both alphabets' at once: widen over both
_B64 = frozenset(_ALNUM + "+/-_")
_WIDEN = {"base64": (_B64, "="), "base64url": (_B64, "="),
          "hex": (frozenset("0123456789abcdefABCDEF"), "")}


def _widen(text: str, start: int, end: int, kind: str, low: int, high: int
           ) -> tuple[int, int]:
    chars, pad = _WIDEN[kind]
    while start > low and text[start - 1] in chars:
        start -= 1
    while end < high and text[end] in chars:
        end += 1
    while pad and end < high and text[end] == pad:
        end += 1
    return start, end


def _text_encoding(matched: str, secret: str) -> str:
    if matched == secret:
        return "raw"
    kinds = []
    if matched.count("%") > secret.count("%") or matched.count("+") > secret.count("+"):
        kinds.append("url-encoded")
    if matched.count("\\") > secret.count("\\"):
        kinds.append("escaped")
    if matched.count("&") > secret.count("&"):
        kinds.append("html-escaped")
    return "+".join(kinds) or "encoded"


class Canary:
    """Finds and masks a set of secrets in every encoding a system might log them in."""

    def __init__(self, secrets: Iterable[str], *, use_re2: bool = True) -> None:
        self.secrets: tuple[str, ...] = tuple(dict.fromkeys(s for s in secrets if s))
        table = [(i, f) for i, s in enumerate(self.secrets) for f in forms(s)]
        # longest first, so a secret that contains another is masked whole
        table.sort(key=lambda item: len(item[1].text), reverse=True)
        self._table = table
        self._patterns = ["".join(_char(c) for c in f.text) for _, f in table]
        self._any = _compile("|".join(self._patterns), use_re2) if table else None
        self._short: re.Pattern[str] | None = None
        self._each: dict[int, re.Pattern[str]] = {}

    def _engine(self, text: str) -> Any:
        # RE2's per-call cost (the text is encoded to UTF-8 first) outweighs its speed on
        # short texts: a probe's URL or a console line is faster through `re`
        if len(text) >= _SHORT or self._any is None:
            return self._any
        if self._short is None:
            self._short = re.compile("|".join(self._patterns))
        return self._short

    def __bool__(self) -> bool:
        return self._any is not None

    def _classify(self, matched: str) -> tuple[int, str]:
        for n, (index, form) in enumerate(self._table):
            each = self._each.get(n)
            if each is None:
                each = self._each[n] = re.compile(self._patterns[n])
            if each.fullmatch(matched):
                if form.kind == "text":
                    return index, _text_encoding(matched, self.secrets[index])
                return index, form.kind
        return 0, "encoded"  # pragma: no cover - every match is one of the forms

    def hits(self, text: str, *, stops: list[int] | None = None) -> list[Hit]:
        """Every place a secret occurs in ``text`` (base64 and hex widened to the token, but
        not across ``stops``: the sorted offsets where joined values begin)."""
        if self._any is None or not text:
            return []
        out = []
        for m in self._engine(text).finditer(text):
            index, kind = self._classify(m.group())
            start, end = m.start(), m.end()
            if kind in _WIDEN:
                low, high = 0, len(text)
                if stops:
                    at = bisect.bisect_right(stops, start) - 1
                    low = stops[at] if at >= 0 else 0
                    after = bisect.bisect_left(stops, end)
                    high = stops[after] if after < len(stops) else len(text)
                start, end = _widen(text, start, end, kind, low, high)
            out.append(Hit(start, end, index, kind))
        return out

    def found(self, text: str) -> bool:
        """Whether any secret occurs in ``text`` in any encoding."""
        return self._any is not None and bool(text) and \
            self._engine(text).search(text) is not None

    def scrub(self, text: str) -> str:
        """``text`` with every occurrence of every secret, in any encoding, masked."""
        if self._any is None or not text or self._engine(text).search(text) is None:
            return text
        return _mask_spans(text, [(h.start, h.end) for h in self.hits(text)])

    def leaking(self, records: list[Any]) -> set[int]:
        """Which of ``records`` hold a secret, in a value, a key or split over two values
        (one scan of every record's :func:`joined` text)."""
        if self._any is None or not records:
            return set()
        texts = [joined(record) for record in records]
        starts, at = [], 0
        for text in texts:
            starts.append(at)
            at += len(text) + 1
        return {bisect.bisect_right(starts, m.start()) - 1
                for m in self._any.finditer("\0".join(texts))}

    def scrub_data(self, value: Any) -> Any:
        """``value`` (dicts, lists, dataclasses, strings) with secrets masked in every string,
        including a secret split over two neighbouring values (masked in both)."""
        if self._any is None:
            return value
        texts = _string_leaves(value)
        starts, whole = _offsets(texts)
        cuts: dict[int, list[tuple[int, int]]] = {}
        # one scan of all values joined: finds each value's own secrets and split ones
        for hit in self.hits(whole, stops=starts):
            first = bisect.bisect_right(starts, hit.start) - 1
            last = bisect.bisect_right(starts, max(hit.end - 1, hit.start)) - 1
            for n in range(first, last + 1):
                a = max(hit.start, starts[n]) - starts[n]
                b = min(hit.end, starts[n] + len(texts[n])) - starts[n]
                if a < b:
                    cuts.setdefault(n, []).append((a, b))
        in_keys = self.found("\0".join(_dict_keys(value)))
        if not cuts and not in_keys:
            return value  # nothing to mask: the value itself, not a copy
        masked = iter([_mask_spans(texts[n], cuts[n]) if n in cuts else texts[n]
                       for n in range(len(texts))])
        keys: dict[str, str] = {}  # keys repeat (one per record): scrub each once

        def key_fn(key: str) -> str:
            if not in_keys:
                return key
            if key not in keys:
                keys[key] = self.scrub(key)
            return keys[key]

        return _map_strings(value, lambda _: next(masked), key_fn)


def _mask_spans(text: str, spans: list[tuple[int, int]]) -> str:
    out, pos = [], 0
    for start, end in sorted(spans):
        if end <= pos:
            continue
        start = max(start, pos)
        out += [text[pos:start], MASK]
        pos = end
    out.append(text[pos:])
    return "".join(out)


def _offsets(texts: list[str]) -> tuple[list[int], str]:
    starts, total = [], 0
    for text in texts:
        starts.append(total)
        total += len(text)
    return starts, "".join(texts)


def _fields(value: Any) -> list[str] | None:
    """The init field names of a dataclass instance (None for anything else)."""
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        return [f.name for f in dataclasses.fields(value) if f.init]
    return None


_PLAIN = (int, float, bool, type(None))
_SCALAR = (str, *_PLAIN)


def _map_strings(value: Any, fn: Any, key_fn: Any) -> Any:
    """``value`` rebuilt with ``fn`` applied to every string value (in the order of
    :func:`_string_leaves`) and ``key_fn`` to every string dict key."""
    if isinstance(value, str):
        return fn(value)
    if isinstance(value, _PLAIN):
        return value
    if isinstance(value, dict):
        return {(key_fn(k) if isinstance(k, str) else k): _map_strings(v, fn, key_fn)
                for k, v in value.items()}
    if isinstance(value, list):
        return [_map_strings(v, fn, key_fn) for v in value]
    if isinstance(value, tuple):
        items = [_map_strings(v, fn, key_fn) for v in value]
        return type(value)(*items) if hasattr(value, "_fields") else tuple(items)
    names = _fields(value)
    if names is not None:
        return dataclasses.replace(value, **{
            name: _map_strings(getattr(value, name), fn, key_fn) for name in names})
    return value


def _string_leaves(value: Any, out: list[str] | None = None) -> list[str]:
    """Every string value (not dict keys) inside ``value``, in order."""
    out = [] if out is None else out
    if isinstance(value, str):
        out.append(value)
    elif isinstance(value, _PLAIN):
        pass
    elif isinstance(value, dict | list | tuple):
        for v in value.values() if isinstance(value, dict) else value:
            if isinstance(v, str):
                out.append(v)
            elif not isinstance(v, _PLAIN):
                _string_leaves(v, out)
    else:
        for name in _fields(value) or ():
            _string_leaves(getattr(value, name), out)
    return out


def _dict_keys(value: Any, out: list[str] | None = None) -> list[str]:
    """Every string dict key inside ``value``."""
    out = [] if out is None else out
    if isinstance(value, dict):
        out.extend(k for k in value if isinstance(k, str))
        for v in value.values():
            if not isinstance(v, _SCALAR):
                _dict_keys(v, out)
    elif isinstance(value, list | tuple):
        for v in value:
            if not isinstance(v, _SCALAR):
                _dict_keys(v, out)
    elif not isinstance(value, _SCALAR):
        for name in _fields(value) or ():
            _dict_keys(getattr(value, name), out)
    return out


def _values(node: Any, keys: list[Any]) -> str:
    # type() checks, not isinstance: this runs once per log line of a whole window
    kind = type(node)
    if kind is str:
        return str(node)
    if kind is dict:
        keys.extend(node)
        return "".join([v if type(v) is str else _values(v, keys) for v in node.values()])
    if kind is list or kind is tuple:
        return "".join([v if type(v) is str else _values(v, keys) for v in node])
    if kind is int or kind is float:
        return str(node)
    if isinstance(node, str):  # str subclasses (enums)
        return str(node)
    return ""


def joined(value: Any) -> str:
    """Every value inside a record (strings and numbers) concatenated, then every key:
    scanned as one text, a secret split over two neighbouring fields shows up whole."""
    keys: list[Any] = []
    values = _values(value, keys)
    return values + "\0" + "".join([k if type(k) is str else str(k) for k in keys])


@functools.lru_cache(maxsize=64)
def canary(secrets: tuple[str, ...]) -> Canary:
    """The (cached) :class:`Canary` of these secrets."""
    return Canary(secrets)


# -- the process-wide registry -----------------------------------------------------------------

_canary = Canary(())


def register(*values: str | None) -> None:
    """Remember secret values so that :func:`scrub` masks them everywhere.

    Values shorter than :data:`MIN_LEN` are not registered: config refuses them with an
    error naming the key, so none should arrive here.
    """
    global _canary
    with _lock:
        fresh = {v for v in values if v and len(v) >= MIN_LEN} - _secrets
        if fresh:
            _secrets.update(fresh)
            _canary = Canary(sorted(_secrets))


def registered() -> frozenset[str]:
    """The secret values known so far (for scans in tests and selftests)."""
    with _lock:
        return frozenset(_secrets)


def scrub(text: str) -> str:
    """``text`` with every registered secret, in any encoding, replaced by ``***``."""
    return _canary.scrub(text)


def scrub_data(value: Any) -> Any:
    """``value`` with every registered secret masked in its strings (before serialising)."""
    return _canary.scrub_data(value)


def leaking(records: list[Any]) -> set[int]:
    """Which of ``records`` hold a registered secret (see :meth:`Canary.leaking`)."""
    return _canary.leaking(records)


def find_leaks(text: str, secrets: Iterable[str] | None = None) -> list[str]:
    """Which secrets occur in ``text``, in any encoding (masked: first two characters)."""
    chosen = canary(tuple(sorted({s for s in (secrets if secrets is not None
                                              else registered()) if s})))
    which = sorted({h.secret for h in chosen.hits(text)})
    return [chosen.secrets[i][:2] + MASK for i in which]
