"""Renders message templates with a customer's attributes: safely, within limits, and fast.

Merge tags are Jinja2 (`{{ FirstName }}`, `{{ attributes["First Name"] }}`, `{% if %}`, `{% for %}`)
running in a sandbox narrowed further than Jinja's own:

- no templates loaded from anywhere: `{% include %}`, `{% extends %}` and `{% import %}` are refused
  when the template is compiled (and the loader refuses too);
- a short whitelist of filters and no globals but a budgeted `range`;
- attribute access limited to public, read-only methods of strings, dicts and lists (no `.format`, no
  `.append`), on top of the sandbox's ban on underscores and internals;
- the HTML part is autoescaped, the other parts (subject, text, payload, deep link) are not, and
  `{% autoescape %}` blocks are refused so the HTML part can never be switched to raw output.

A template author controls loops and arithmetic, so every render runs under a `_Budget`: a deadline
(TEMPLATE_MAX_RENDER_SECONDS), a total number of loop iterations (TEMPLATE_MAX_LOOP_ITERATIONS) and a
size cap per part (TEMPLATE_MAX_OUTPUT_BYTES). The checks sit where work or memory can grow: every
loop iteration (the compiler wraps each `for` iterable in a guard), every call (macros included), the
operators that can multiply sizes (`*`, `**`, `+`, `%`), string joins (`~`, captured blocks), every
filter result, and every chunk of output. Sizes are compared in characters before the work is done
(a character is at least one byte, so this never lets too much through) and in UTF-8 bytes on the
output. A template that breaks a limit fails only its own render, with a reason.

`default` here also replaces empty strings: Optimove sends "" for an attribute a customer lacks, so
`{{ FirstName | default("there") }}` greets "there" both when the attribute is missing and when it is
empty. Pass `false` as the second argument (`default("there", false)`) to replace only missing ones.

Compiled templates are cached per process by (pk, updated_at), so a million renders compile once.
Every write goes through `apps.message_templates.services`, which saves and so moves `updated_at`.
"""

from __future__ import annotations

import contextvars
import functools
import re
import threading
import time
from collections import OrderedDict
from collections.abc import Callable, Iterable, Iterator, Mapping
from dataclasses import dataclass
from datetime import date, datetime
from decimal import ROUND_HALF_UP, Decimal, InvalidOperation
from typing import TYPE_CHECKING, Any

from django.conf import settings
from django.core.signals import setting_changed
from django.dispatch import receiver
from jinja2 import BaseLoader, ChainableUndefined, TemplateNotFound, Undefined, nodes
from jinja2 import filters as jinja_filters
from jinja2.compiler import CodeGenerator, Frame, optimizeconst
from jinja2.environment import Template
from jinja2.exceptions import (
    FilterArgumentError,
    SecurityError,
    TemplateError,
    TemplateSyntaxError,
)
from jinja2.runtime import Context, LoopContext, markup_join, new_context, str_join
from jinja2.sandbox import SandboxedEnvironment
from jinja2.utils import pass_context, pass_eval_context

from apps.clients.models import ChannelKind
from apps.core.errors import TerminalError
from apps.core.logging import redact
from apps.message_templates.types import RenderedMessage

if TYPE_CHECKING:
    from jinja2 import Environment
    from jinja2.nodes import EvalContext

    from apps.message_templates.models import MessageTemplate

# Values campaigns may pass in `extra`; template_attribute_names leaves them out, because they are not
# customer attributes to request from Optimove.
EXTRA_NAMES: frozenset[str] = frozenset(
    {
        "customer_id",
        "campaign_id",
        "channel_id",
        "template_id",
        "promo_code",
        "send_id",
        "scheduled_time",
        "unsubscribe_url",  # email: the customer's unsubscribe link (apps.subscriptions.unsubscribe)
    }
)
# Names a template can use that are not customer attributes either.
BUILTIN_NAMES: frozenset[str] = EXTRA_NAMES | {"attributes", "range", "loop"}

# Integer products and powers beyond this many bits (about 3.4e38) are refused: no marketing message
# needs them, and huge powers (9**9**9) or products are an easy way to stall a worker.
MAX_INTEGER_BITS = 128
# Widths in printf-style formatting ("%10s") beyond this are refused.
MAX_FORMAT_WIDTH = 1000
# Compiled templates kept per process.
COMPILED_CACHE_SIZE = 1024

_LOOP_GUARD_FILTER = "loop-guard"  # not a valid identifier, so a template cannot name it


class TemplateRenderError(TerminalError):
    """A template could not be rendered. `reason` is readable and carries no customer data."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


class _LimitExceeded(Exception):
    """A render went over one of its limits; the message is the reason shown to people."""


# --------------------------------------------------------------------------------------------------
# The budget of one render
# --------------------------------------------------------------------------------------------------


@dataclass(slots=True)
class _Budget:
    deadline: float
    seconds: float
    max_chars: int
    loop_total: int
    loop_left: int

    def tick(self) -> None:
        if time.monotonic() > self.deadline:
            raise _LimitExceeded(f"rendering took longer than {self.seconds:g} s")


_current_budget: contextvars.ContextVar[_Budget | None] = contextvars.ContextVar(
    "message_template_budget", default=None
)


def _budget() -> _Budget:
    budget = _current_budget.get()
    if budget is None:
        # Only reachable if a compiled template were rendered outside template_render.
        raise _LimitExceeded("templates render only through template_render")
    return budget


@dataclass(frozen=True, slots=True)
class _Limits:
    max_chars: int
    seconds: float
    loop_iterations: int


_limits_cache: list[_Limits] = []


def _limits() -> _Limits:
    # Read once, not three times per render: Django's lazy settings cost microseconds per access,
    # which shows at a million renders. Reset when a test overrides a setting (the receiver below).
    if not _limits_cache:
        _limits_cache.append(
            _Limits(
                max_chars=int(settings.TEMPLATE_MAX_OUTPUT_BYTES),
                seconds=float(settings.TEMPLATE_MAX_RENDER_SECONDS),
                loop_iterations=int(settings.TEMPLATE_MAX_LOOP_ITERATIONS),
            )
        )
    return _limits_cache[0]


@receiver(setting_changed)
def _reset_limits(*, setting: str, **kwargs: Any) -> None:
    if setting.startswith("TEMPLATE_MAX_"):
        _limits_cache.clear()


def _max_chars() -> int:
    return _limits().max_chars


def _weight(value: Any, limit: int) -> int:
    """Roughly how many characters `value` prints as; stops counting once past `limit`."""
    if isinstance(value, str):
        return len(value)
    if isinstance(value, list | tuple):
        total = len(value)
        for item in value:
            total += _weight(item, limit)
            if total > limit:
                break
        return total
    if isinstance(value, dict):
        total = len(value)
        for key, item in value.items():
            total += _weight(key, limit) + _weight(item, limit)
            if total > limit:
                break
        return total
    return 1


def _check_size(value: Any, what: str) -> Any:
    limit = _max_chars()
    if (len(value) if isinstance(value, str) else _weight(value, limit)) > limit:
        raise _LimitExceeded(f"{what} would exceed the output limit of {limit} bytes")
    return value


def _size_checked(func: Callable[..., Any], name: str) -> Callable[..., Any]:
    @functools.wraps(func)  # keeps Jinja's pass_context/pass_environment marker
    def checked(*args: Any, **kwargs: Any) -> Any:
        result = func(*args, **kwargs)
        if isinstance(result, str) and len(result) <= _limits().max_chars:  # the common case, fast
            return result
        return _check_size(result, f"the {name} filter")

    return checked


# --------------------------------------------------------------------------------------------------
# Globals and filters
# --------------------------------------------------------------------------------------------------


def _budgeted_range(*args: int) -> range:
    numbers = range(*args)
    budget = _budget()
    try:
        count = len(numbers)
    except OverflowError:  # longer than sys.maxsize
        count = budget.loop_total + 1
    if count > budget.loop_left:
        raise _LimitExceeded(
            f"range() of {count} numbers is over the loop budget "
            f"({budget.loop_left} of {budget.loop_total} iterations left)"
        )
    return numbers


@pass_context  # also keeps Jinja's optimiser from evaluating it at compile time
def _loop_guard(context: Context, iterable: Iterable[Any]) -> Iterator[Any]:
    """Wrapped around every `for` iterable by the compiler: counts iterations and checks the clock."""
    budget = _budget()
    for item in iterable:
        budget.loop_left -= 1
        if budget.loop_left < 0:
            raise _LimitExceeded(f"loops ran more than {budget.loop_total} iterations in total")
        budget.tick()
        yield item


def _default(value: Any, default_value: Any = "", boolean: bool = True) -> Any:
    """Jinja's `default`, but replacing empty values too unless told `false` (see the module doc)."""
    return jinja_filters.do_default(value, default_value, boolean)


@pass_eval_context
def _replace(eval_ctx: EvalContext, s: Any, old: Any, new: Any, count: int | None = None) -> Any:
    text, old_text, new_text = str(s), str(old), str(new)
    occurrences = len(text) + 1 if old_text == "" else text.count(old_text)
    if count is not None and count >= 0:
        occurrences = min(occurrences, count)
    if len(text) + occurrences * (len(new_text) - len(old_text)) > _max_chars():
        raise _LimitExceeded(f"the replace filter would exceed the output limit of {_max_chars()} bytes")
    return jinja_filters.do_replace(eval_ctx, s, old, new, count)


@pass_eval_context
def _join(eval_ctx: EvalContext, value: Iterable[Any], d: str = "", attribute: Any = None) -> Any:
    items = list(value)
    limit = _max_chars()
    if _weight(items, limit) + max(len(items) - 1, 0) * len(str(d)) > limit:
        raise _LimitExceeded(f"the join filter would exceed the output limit of {limit} bytes")
    return jinja_filters.do_join(eval_ctx, items, d, attribute)


_DATE_FORMAT = re.compile(r"(?:[^%]|%[aAbBdHIjmMpSyYzZ%])*")


def _date(value: Any, format: str = "%Y-%m-%d") -> Any:
    """Formats an ISO date or Optimove's "YYYY-MM-DD HH:MM:SS"; a value that is no date stays as is."""
    if not isinstance(format, str) or not _DATE_FORMAT.fullmatch(format):
        raise FilterArgumentError(
            "date: the format may use only %a %A %b %B %d %H %I %j %m %M %p %S %y %Y %z %Z and %%"
        )
    if isinstance(value, datetime | date):
        moment: date = value
    else:
        try:
            moment = datetime.fromisoformat(str(value).strip())
        except ValueError:
            return value
    return moment.strftime(format)


def _money(value: Any, currency: str = "", places: int = 2) -> Any:
    """`{{ Balance | money("€") }}` -> "€1,234.50"; rounds half up; a value that is no number stays as is."""
    if not isinstance(places, int) or not 0 <= places <= 6:
        raise FilterArgumentError("money: places must be a whole number from 0 to 6")
    try:
        amount = Decimal(str(value).strip())
    except InvalidOperation:
        return value
    # Formatting 1e999999999 would print a billion digits.
    if not amount.is_finite() or amount.adjusted() > 18:
        return value
    amount = amount.quantize(Decimal(1).scaleb(-places), rounding=ROUND_HALF_UP)
    sign = "-" if amount < 0 else ""
    return f"{sign}{currency}{abs(amount):,.{places}f}"


_FILTERS: dict[str, Callable[..., Any]] = {
    "default": _default,
    "d": _default,
    "upper": jinja_filters.do_upper,
    "lower": jinja_filters.do_lower,
    "title": jinja_filters.do_title,
    "capitalize": jinja_filters.do_capitalize,
    "trim": jinja_filters.do_trim,
    "truncate": jinja_filters.do_truncate,
    "replace": _replace,
    "escape": jinja_filters.escape,
    "e": jinja_filters.escape,
    "urlencode": jinja_filters.do_urlencode,
    "int": jinja_filters.do_int,
    "float": jinja_filters.do_float,
    "round": jinja_filters.do_round,
    "length": len,
    "count": len,
    "join": _join,
    "first": jinja_filters.do_first,
    "last": jinja_filters.do_last,
    "date": _date,
    "money": _money,
}

_SAFE_METHODS: tuple[tuple[type, frozenset[str]], ...] = (
    (
        str,
        frozenset(
            {
                "upper",
                "lower",
                "title",
                "capitalize",
                "strip",
                "lstrip",
                "rstrip",
                "startswith",
                "endswith",
                "split",
                "rsplit",
                "splitlines",
                "count",
                "find",
                "rfind",
                "isdigit",
                "isalpha",
                "isalnum",
                "isspace",
                "islower",
                "isupper",
            }
        ),
    ),
    (dict, frozenset({"get", "keys", "values", "items"})),
    (list, frozenset({"count", "index"})),
    (tuple, frozenset({"count", "index"})),
    (LoopContext, frozenset({"cycle", "changed"})),
)

_PRINTF_SPEC = re.compile(r"%(?:\([^)]*\))?[-#0 +]*(\*|\d+)?(?:\.(\*|\d+))?")


def _check_repeat(left: Any, right: Any, limit: int) -> None:
    for sequence, times in ((left, right), (right, left)):
        if isinstance(sequence, str | list | tuple) and isinstance(times, int):
            if _weight(sequence, limit) * max(times, 0) > limit:
                raise _LimitExceeded(
                    f"repeating a text or list {times} times would exceed the output limit of {limit} bytes"
                )
            return
    both_int = isinstance(left, int) and isinstance(right, int)
    if both_int and left.bit_length() + right.bit_length() > MAX_INTEGER_BITS:
        raise _LimitExceeded(f"a product larger than {MAX_INTEGER_BITS} bits is refused")


def _check_power(base: Any, exponent: Any) -> None:
    if not (isinstance(base, int) and isinstance(exponent, int)) or exponent <= 0 or abs(base) <= 1:
        return
    # |base| >= 2**(bit_length - 1), so the result has at least exponent * (bit_length - 1) bits.
    if exponent > MAX_INTEGER_BITS or exponent * (base.bit_length() - 1) > MAX_INTEGER_BITS:
        raise _LimitExceeded(f"a power larger than {MAX_INTEGER_BITS} bits is refused")


def _check_add(left: Any, right: Any, limit: int) -> None:
    sequences = isinstance(left, str | list | tuple) and isinstance(right, str | list | tuple)
    if sequences and _weight(left, limit) + _weight(right, limit) > limit:
        raise _LimitExceeded(f"adding these would exceed the output limit of {limit} bytes")


def _check_printf(template: str) -> None:
    width = 0
    for match in _PRINTF_SPEC.finditer(template):
        for number in match.groups():
            if number == "*":
                raise _LimitExceeded("'*' widths in %-formatting are refused")
            if number is not None:
                width += int(number)
    if width > MAX_FORMAT_WIDTH:
        raise _LimitExceeded(f"%-formatting widths above {MAX_FORMAT_WIDTH} are refused")


def _check_binop(operator: str, left: Any, right: Any) -> None:
    """Refuses, before doing it, an operation whose result would be huge."""
    if operator == "*":
        _check_repeat(left, right, _max_chars())
    elif operator == "**":
        _check_power(left, right)
    elif operator == "+":
        _check_add(left, right, _max_chars())
    elif operator == "%" and isinstance(left, str):
        _check_printf(left)


# --------------------------------------------------------------------------------------------------
# The environment
# --------------------------------------------------------------------------------------------------


class _RefusingLoader(BaseLoader):
    """Message templates never load other templates (and so never files)."""

    def get_source(self, environment: Environment, template: str) -> tuple[str, str | None, None]:
        raise TemplateNotFound("message templates cannot include, extend or import other templates")


_FORBIDDEN_NODES: tuple[tuple[type[nodes.Node], str], ...] = (
    (nodes.Extends, "{% extends %} is not allowed in message templates"),
    (nodes.Include, "{% include %} is not allowed in message templates"),
    (nodes.Import, "{% import %} is not allowed in message templates"),
    (nodes.FromImport, "{% from ... import %} is not allowed in message templates"),
    (
        nodes.ScopedEvalContextModifier,
        "{% autoescape %} is not allowed: the HTML part is always escaped, the other parts never",
    ),
)


class _GuardedCodeGenerator(CodeGenerator):
    """Compiles templates with the checks the sandbox alone does not make (see the module doc)."""

    def visit_Template(self, node: nodes.Template, frame: Frame | None = None) -> None:
        for forbidden, message in _FORBIDDEN_NODES:
            found = node.find(forbidden)
            if found is not None:
                self.fail(message, found.lineno)
        for loop in node.find_all(nodes.For):
            if loop.recursive:
                self.fail("recursive loops are not allowed in message templates", loop.lineno)
            loop.iter = nodes.Filter(
                loop.iter, _LOOP_GUARD_FILTER, [], [], None, None, lineno=loop.iter.lineno
            )
        super().visit_Template(node, frame)

    def buffer(self, frame: Frame) -> None:
        # Captured output ({% set %} blocks, macros, {% filter %}, {% call %}) is counted as it grows,
        # so a loop cannot pile up gigabytes before the final join.
        frame.buffer = self.temporary_identifier()
        self.writeline(f"{frame.buffer} = environment.bounded_buffer()")

    @optimizeconst
    def visit_Concat(self, node: nodes.Concat, frame: Frame) -> None:
        # `a ~ b ~ c`: the parts go to the environment, which weighs them before turning them into
        # text (a list of big strings would otherwise be printed into a huge one first).
        self.write("environment.checked_join((")
        for part in node.nodes:
            self.visit(part, frame)
            self.write(", ")
        self.write("))")


class _MessageSandbox(SandboxedEnvironment):
    intercepted_binops = frozenset({"*", "**", "+", "%"})
    code_generator_class = _GuardedCodeGenerator

    def __init__(self, *, autoescape: bool) -> None:
        super().__init__(
            autoescape=autoescape,
            undefined=ChainableUndefined,
            loader=_RefusingLoader(),
            keep_trailing_newline=True,
            auto_reload=False,
            cache_size=0,
            finalize=_finalize,
        )
        # No globals at all: `range` (budgeted) travels in each render's context, which also spares
        # Jinja from merging a globals mapping into every context.
        self.globals.clear()
        self.filters = {name: _size_checked(func, name) for name, func in _FILTERS.items()}
        self.filters[_LOOP_GUARD_FILTER] = _loop_guard

    def is_safe_attribute(self, obj: Any, attr: str, value: Any) -> bool:
        if not super().is_safe_attribute(obj, attr, value):
            return False
        if not callable(value):
            return True
        return any(isinstance(obj, kind) and attr in names for kind, names in _SAFE_METHODS)

    def unsafe_undefined(self, obj: Any, attribute: str) -> Any:
        # Jinja returns an Undefined that prints as nothing; a template reaching for internals or a
        # refused method should fail loudly instead.
        kind = "a missing value" if isinstance(obj, Undefined) else f"a {type(obj).__name__!r} object"
        raise SecurityError(f"access to attribute {attribute!r} of {kind}")

    def wrap_str_format(self, value: Any) -> None:
        # str.format / format_map are not on the method whitelist, so never hand out a wrapper.
        return None

    @staticmethod
    def bounded_buffer() -> _BoundedBuffer:
        return _BoundedBuffer()

    def call(
        __self,  # Jinja's own signature: a template's keyword arguments cannot clash with these
        __context: Any,
        __obj: Any,
        *args: Any,
        **kwargs: Any,
    ) -> Any:
        _budget().tick()
        result = SandboxedEnvironment.call(__self, __context, __obj, *args, **kwargs)
        return _check_size(result, "a call's result")

    def call_binop(self, context: Any, operator: str, left: Any, right: Any) -> Any:
        _budget().tick()
        _check_binop(operator, left, right)
        return super().call_binop(context, operator, left, right)

    def checked_join(self, parts: tuple[Any, ...]) -> str:
        """Every `~`, refused before the join if the result would be over the output limit."""
        limit = _max_chars()
        total = 0
        for part in parts:
            total += _weight(part, limit)
            if total > limit:
                raise _LimitExceeded(f"joining texts with ~ would exceed the output limit of {limit} bytes")
        # {% autoescape %} blocks are refused, so whether to escape is fixed per environment.
        return markup_join(parts) if self.autoescape else str_join(parts)

    @staticmethod
    def concat(parts: Iterable[str]) -> str:
        """Joins captured output ({% set %} blocks, macros, {% filter %}), refusing an oversized one."""
        pieces = parts if isinstance(parts, list) else list(parts)
        limit = _max_chars()
        total = 0
        for piece in pieces:
            total += len(piece)
            if total > limit:
                raise _LimitExceeded(f"a captured block would exceed the output limit of {limit} bytes")
        _budget().tick()
        return "".join(pieces)


class _BoundedBuffer(list[str]):
    """The list Jinja collects captured output in, refusing to grow past the output limit."""

    __slots__ = ("_limit", "_size")

    def __init__(self) -> None:
        super().__init__()
        self._size = 0
        self._limit = _max_chars()

    def append(self, item: str) -> None:
        self._size += len(item)
        if self._size > self._limit:
            raise _LimitExceeded(f"a captured block would exceed the output limit of {self._limit} bytes")
        super().append(item)

    def extend(self, items: Iterable[str]) -> None:
        for item in items:
            self.append(item)


def _finalize(value: Any) -> Any:
    """Every printed value passes here before it becomes text."""
    if value is None:  # `None` from extra (no promo code) prints as nothing rather than "None"
        return ""
    if isinstance(value, list | tuple | dict):
        # A literal list of big strings would print as one huge text: refuse it before printing.
        _check_size(value, "printing this value")
    return value


@functools.cache
def _environment(*, html: bool) -> _MessageSandbox:
    return _MessageSandbox(autoescape=html)


# --------------------------------------------------------------------------------------------------
# Compilation and the per-process cache
# --------------------------------------------------------------------------------------------------

# A part is either constant text (no merge tags: no need for Jinja) or a compiled template.
_Part = Template | str
_TAG_MARKERS = ("{{", "{%", "{#")
_NEWLINES = re.compile(r"\r\n|\r")


def _is_constant(source: str) -> bool:
    return not any(marker in source for marker in _TAG_MARKERS)


# Jinja parses recursively and compiles a template into Python source that Python compiles in turn:
# a template nested deeply enough (5,000 parentheses, 300 nested ifs, 21 nested loops) breaks one of
# their limits with a RecursionError or Python's own SyntaxError. Either is this template's syntax error.
_TOO_DEEP = "the template is nested too deeply"


def _parse(source: str, *, html: bool) -> nodes.Template:
    try:
        return _environment(html=html).parse(source)
    except RecursionError:
        raise TemplateSyntaxError(_TOO_DEEP, lineno=1) from None


def _compile(source: str, *, html: bool) -> _Part:
    if _is_constant(source):
        # What Jinja's lexer does to template text, so both paths give the same output.
        return _NEWLINES.sub("\n", source)
    ast = _parse(source, html=html)
    try:
        return _environment(html=html).from_string(ast)
    except (RecursionError, SyntaxError):  # not TemplateSyntaxError, which is no SyntaxError
        raise TemplateSyntaxError(_TOO_DEEP, lineno=1) from None


def template_source_error(source: str, *, html: bool = False) -> str | None:
    """The reason `source` does not compile (a syntax error, an unknown filter, a forbidden tag)."""
    try:
        _compile(source, html=html)
    except TemplateSyntaxError as exc:
        return _syntax_reason(exc)
    return None


def _syntax_reason(exc: TemplateSyntaxError) -> str:
    return f"syntax error on line {exc.lineno}: {exc.message}"


@dataclass(frozen=True, slots=True)
class _Compiled:
    subject: _Part
    html: _Part
    text: _Part
    deep_link: _Part
    payload: Any  # the payload's shape with a _Part at each string leaf
    error: str | None = None  # the compile error, kept so a broken template fails fast every time


def _payload_leaves(payload: Any, path: str = "$") -> Iterator[tuple[str, str]]:
    if isinstance(payload, str):
        yield path, payload
    elif isinstance(payload, dict):
        for key, value in payload.items():
            yield from _payload_leaves(value, f"{path}.{key}")
    elif isinstance(payload, list):
        for index, value in enumerate(payload):
            yield from _payload_leaves(value, f"{path}[{index}]")


def _compile_payload(payload: Any) -> Any:
    if isinstance(payload, str):
        return _compile(payload, html=False)
    if isinstance(payload, dict):
        return {key: _compile_payload(value) for key, value in payload.items()}
    if isinstance(payload, list):
        return [_compile_payload(value) for value in payload]
    return payload


def _compile_template(template: MessageTemplate) -> _Compiled:
    part = "subject"
    try:
        subject = _compile(template.subject, html=False)
        part = "html_body"
        html = _compile(template.html_body, html=True)
        part = "text_body"
        text = _compile(template.text_body, html=False)
        part = "deep_link"
        deep_link = _compile(template.deep_link, html=False)
        part = "payload"
        payload = _compile_payload(template.payload)
    except TemplateSyntaxError as exc:
        return _Compiled("", "", "", "", None, error=f"{part}: {_syntax_reason(exc)}")
    return _Compiled(subject, html, text, deep_link, payload)


@dataclass(frozen=True, slots=True)
class CacheInfo:
    hits: int
    misses: int
    size: int


class _CompiledCache:
    """A small thread-safe LRU; keyed by (pk, updated_at) so a saved edit is a new key."""

    def __init__(self, maxsize: int) -> None:
        self._maxsize = maxsize
        self._entries: OrderedDict[tuple[int, datetime], _Compiled] = OrderedDict()
        self._lock = threading.Lock()
        self.hits = 0
        self.misses = 0

    def get(self, template: MessageTemplate) -> _Compiled:
        if template.pk is None:  # an unsaved template (never cached: it has no stable key)
            return _compile_template(template)
        key = (template.pk, template.updated_at)
        with self._lock:
            entry = self._entries.get(key)
            if entry is not None:
                self._entries.move_to_end(key)
                self.hits += 1
                return entry
            self.misses += 1
        # Compiled outside the lock: two threads may both compile a new template once; harmless.
        entry = _compile_template(template)
        with self._lock:
            self._entries[key] = entry
            self._entries.move_to_end(key)
            while len(self._entries) > self._maxsize:
                self._entries.popitem(last=False)
        return entry

    def clear(self) -> None:
        with self._lock:
            self._entries.clear()
            self.hits = self.misses = 0

    def info(self) -> CacheInfo:
        with self._lock:
            return CacheInfo(hits=self.hits, misses=self.misses, size=len(self._entries))


_cache = _CompiledCache(COMPILED_CACHE_SIZE)


def template_cache_info() -> CacheInfo:
    """Hits, misses and size of this process's compiled-template cache."""
    return _cache.info()


def template_cache_clear() -> None:
    _cache.clear()


# --------------------------------------------------------------------------------------------------
# Rendering
# --------------------------------------------------------------------------------------------------


def _utf8_length(text: str) -> int:
    return len(text) if text.isascii() else len(text.encode("utf-8", "surrogatepass"))


def _render_part(part: _Part, context: dict[str, Any], budget: _Budget, allowance: int) -> str:
    """Renders one part chunk by chunk, stopping at the size cap or the deadline.

    Chunks are counted in characters on the way (cheap, and never more than the bytes) and the
    finished text once in UTF-8 bytes, so a part holds at most 4x the cap in memory before failing.
    """
    if isinstance(part, str):
        text = part
    else:
        # shared=True and no globals: Jinja uses our dict as is instead of merging globals into a
        # copy for every part; the context already holds `range` (see _render_context).
        generator = part.root_render_func(
            new_context(part.environment, part.name, part.blocks, context, shared=True)
        )
        chunks: list[str] = []
        used = 0
        # The clock is checked where work happens (loops, calls, operators), not per chunk here.
        for chunk in generator:
            used += len(chunk)
            if used > allowance:
                raise _LimitExceeded(f"the output is over the limit of {budget.max_chars} bytes")
            chunks.append(chunk)
        text = "".join(chunks)
    if _utf8_length(text) > allowance:
        raise _LimitExceeded(f"the output is over the limit of {budget.max_chars} bytes")
    return text


def _render_payload(payload: Any, context: dict[str, Any], budget: _Budget, used: list[int]) -> Any:
    # String leaves are rendered one by one, so a value can never break the JSON around it.
    if isinstance(payload, Template | str):
        text = _render_part(payload, context, budget, budget.max_chars - used[0])
        used[0] += _utf8_length(text)
        return text
    if isinstance(payload, dict):
        return {key: _render_payload(value, context, budget, used) for key, value in payload.items()}
    if isinstance(payload, list):
        return [_render_payload(value, context, budget, used) for value in payload]
    return payload


def _scrub(message: str, values: Iterable[Any]) -> str:
    """Keeps customer data out of a reason: known values are masked, then emails and phones."""
    for text in values:
        if isinstance(text, str) and len(text) >= 3:
            message = message.replace(text, "[value]")
            quoted = repr(text)[1:-1]
            if quoted != text:
                message = message.replace(quoted, "[value]")
    message = redact(message)
    return message if len(message) <= 300 else message[:297] + "..."


def _reason(exc: BaseException, values: Iterable[Any]) -> str:
    if isinstance(exc, _LimitExceeded):
        return str(exc)
    if isinstance(exc, TemplateSyntaxError):
        return _syntax_reason(exc)
    if isinstance(exc, RecursionError):
        return "nested too deeply (a macro calling itself?)"
    if isinstance(exc, MemoryError):
        return "ran out of memory"
    if isinstance(exc, SecurityError):
        return _scrub(f"not allowed: {exc}", values)
    if isinstance(exc, TemplateError):
        return _scrub(str(exc), values)
    return _scrub(f"{type(exc).__name__}: {exc}", values)


def _render_context(attributes: Mapping[str, str], extra: Mapping[str, Any]) -> dict[str, Any]:
    # Attributes by name, the whole mapping as `attributes` (for names that are not identifiers),
    # then the platform's extras and `range`, which win over an attribute of the same name.
    context: dict[str, Any] = dict(attributes)
    context["attributes"] = dict(attributes)
    context.update(extra)
    context["range"] = _budgeted_range
    return context


def template_render(
    *,
    template: MessageTemplate,
    attributes: Mapping[str, str],
    extra: Mapping[str, Any] | None = None,
) -> RenderedMessage:
    """Renders every part of `template` for one customer.

    `extra` may hold only EXTRA_NAMES (customer_id, campaign_id, channel_id, template_id, promo_code,
    send_id, scheduled_time, unsubscribe_url). Raises TemplateRenderError with a readable reason and no
    customer data for any problem in the template; the limits apply to this render alone.
    """
    extra = extra or {}
    unknown = set(extra) - EXTRA_NAMES
    if unknown:
        # A programming error, not a template problem: the name would be taken for an attribute.
        raise ValueError(
            f"template_render: unknown extra names {sorted(unknown)}; allowed: {sorted(EXTRA_NAMES)}"
        )
    compiled = _cache.get(template)
    if compiled.error is not None:
        raise TemplateRenderError(compiled.error)

    limits = _limits()
    max_chars = limits.max_chars
    budget = _Budget(
        deadline=time.monotonic() + limits.seconds,
        seconds=limits.seconds,
        max_chars=max_chars,
        loop_total=limits.loop_iterations,
        loop_left=limits.loop_iterations,
    )
    context = _render_context(attributes, extra)
    token = _current_budget.set(budget)
    part_name = "subject"
    try:
        subject = _render_part(compiled.subject, context, budget, max_chars)
        part_name = "html_body"
        html = _render_part(compiled.html, context, budget, max_chars)
        part_name = "text_body"
        text = _render_part(compiled.text, context, budget, max_chars)
        part_name = "deep_link"
        deep_link = _render_part(compiled.deep_link, context, budget, max_chars)
        part_name = "payload"
        payload = _render_payload(compiled.payload, context, budget, [0])
    except Exception as exc:  # any failure of a template is that template's render error
        raise TemplateRenderError(
            f"{part_name}: {_reason(exc, [*attributes.values(), *extra.values()])}"
        ) from None
    finally:
        _current_budget.reset(token)

    if template.channel.kind == ChannelKind.PUSH:
        # FCM data values are strings; the model validates that push data is a flat object of text.
        if payload is not None and not isinstance(payload, dict):
            raise TemplateRenderError("payload: push data must be a JSON object")
        data = {str(key): str(value) for key, value in (payload or {}).items()}
        return RenderedMessage(subject=subject, html=html, text=text, data=data, deep_link=deep_link)
    return RenderedMessage(subject=subject, html=html, text=text, deep_link=deep_link, payload=payload)


# --------------------------------------------------------------------------------------------------
# Which attributes a template needs
# --------------------------------------------------------------------------------------------------


def _is_attributes(node: nodes.Node) -> bool:
    return isinstance(node, nodes.Name) and node.name == "attributes"


def _names_in(ast: nodes.Template) -> set[str]:
    from jinja2 import meta

    names = set(meta.find_undeclared_variables(ast)) - BUILTIN_NAMES
    # attributes["First Name"] and attributes.FirstName name attributes too.
    for node in ast.find_all((nodes.Getitem, nodes.Getattr)):
        if isinstance(node, nodes.Getattr) and _is_attributes(node.node):
            names.add(node.attr)
        elif (
            isinstance(node, nodes.Getitem)
            and _is_attributes(node.node)
            and isinstance(node.arg, nodes.Const)
            and isinstance(node.arg.value, str)
        ):
            names.add(node.arg.value)
    return names


def template_attribute_names(*, template: MessageTemplate) -> frozenset[str]:
    """The customer attributes the template's merge tags use, across every part and payload leaf.

    Names used only through a computed key (`attributes[some_variable]`) cannot be known and are not
    listed. Raises TemplateRenderError if a part does not compile.
    """
    sources: list[tuple[str, str, bool]] = [
        ("subject", template.subject, False),
        ("html_body", template.html_body, True),
        ("text_body", template.text_body, False),
        ("deep_link", template.deep_link, False),
    ]
    sources += [(f"payload at {path}", leaf, False) for path, leaf in _payload_leaves(template.payload)]
    names: set[str] = set()
    for part_name, source, html in sources:
        if _is_constant(source):
            continue
        try:
            names |= _names_in(_parse(source, html=html))
        except TemplateSyntaxError as exc:
            raise TemplateRenderError(f"{part_name}: {_syntax_reason(exc)}") from None
        except RecursionError:  # a tree Jinja could parse but its visitor cannot walk
            too_deep = TemplateSyntaxError(_TOO_DEEP, lineno=1)
            raise TemplateRenderError(f"{part_name}: {_syntax_reason(too_deep)}") from None
    return frozenset(names)


__all__ = [
    "BUILTIN_NAMES",
    "EXTRA_NAMES",
    "CacheInfo",
    "TemplateRenderError",
    "template_attribute_names",
    "template_cache_clear",
    "template_cache_info",
    "template_render",
    "template_source_error",
]
