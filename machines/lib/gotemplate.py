"""Go's text/template, as far as `docker-machine inspect --format` used it.

docker-machine marshals the host to JSON, unmarshals it into a map and executes the user's
template on that map with two functions of its own, `json` and `prettyjson`. So the data is
JSON (dicts, lists, strings, float64 numbers, booleans, null), and printing follows Go's
fmt: numbers as float64 (`1e+06`), null as `<no value>`, maps as `map[k:v]`. Supported:
fields (`.A.B`, `$`), literals, parentheses, pipelines, if/else/with/range/end, comments and
`{{-`/`-}}` trimming, and the functions below. A missing key is an error (Go's
`missingkey=error` wording), in one line, rather than a silent `<no value>`.
"""

from __future__ import annotations

import json
import re

from machines.lib.gofmt import FUNCTIONS, TemplateError, call, go_print, go_type, truth

__all__ = ["TemplateError", "execute", "parse", "render"]


_TOKEN = re.compile(
    r"""\s*(?:
      (?P<str>"(?:[^"\\\n]|\\.)*") | (?P<raw>`[^`]*`) | (?P<num>-?\d+(?:\.\d+)?(?:[eE][-+]?\d+)?)
    | (?P<field>(?:\$\w*)?(?:\.\w+)+|\.|\$\w*) | (?P<ident>[A-Za-z_]\w*)
    | (?P<op>:=|[()|,=]) | (?P<bad>\S)
    )""",
    re.X,
)
_KEYWORDS = {"if", "else", "end", "range", "with"}


# -- parsing ---------------------------------------------------------------------------


def parse(text: str) -> list:
    """The template as a tree of nodes; TemplateError (Go's wording) if it is malformed."""
    parser = _Parser(text)
    nodes, end = parser.parse_list()
    if end is not None:
        raise parser.error(f"unexpected {{{{{end[0]}}}}}", end[2])
    return nodes


class _Parser:
    def __init__(self, text: str) -> None:
        self.text = text
        self.actions = list(_actions(text))
        self.i = 0

    def error(self, message: str, pos: int) -> TemplateError:
        line = self.text.count("\n", 0, pos) + 1
        return TemplateError(f"template parsing error: template: :{line}: {message}")

    def parse_list(self) -> tuple[list, tuple | None]:
        """Nodes up to an {{else}} or {{end}} (returned as the terminator), or the end."""
        nodes: list = []
        while self.i < len(self.actions):
            kind, body, pos = self.actions[self.i]
            self.i += 1
            if kind == "text":
                nodes.append(("text", body))
                continue
            tokens = _tokens(body, pos, self)
            if not tokens:
                continue  # a comment
            word = tokens[0][1] if tokens[0][0] == "ident" else ""
            if word in ("else", "end"):
                return nodes, (word, tokens[1:], pos)
            if word in ("if", "with", "range"):
                nodes.append(self.parse_block(word, tokens[1:], pos))
            else:
                nodes.append(("action", self.pipeline(tokens, pos), pos))
        return nodes, None

    def parse_block(self, word: str, tokens: list, pos: int) -> tuple:
        pipe = self.pipeline(tokens, pos)
        body, end = self.parse_list()
        other: list = []
        if end is not None and end[0] == "else":
            rest = end[1]
            if rest and rest[0] == ("ident", "if", rest[0][2]):
                return (word, pipe, body, [self.parse_block("if", rest[1:], end[2])], pos)
            other, end = self.parse_list()
        if end is None or end[0] != "end":
            raise self.error(f"unexpected EOF in {word}", pos)
        return (word, pipe, body, other, pos)

    def pipeline(self, tokens: list, pos: int) -> list:
        if not tokens:
            raise self.error("missing value for command", pos)
        if any(t[0] == "op" and t[1] in (":=", "=", ",") for t in tokens):
            raise self.error("variables are not supported in inspect --format", pos)
        commands, depth, start = [], 0, 0
        for i, tok in enumerate(tokens):
            if tok[:2] == ("op", "("):
                depth += 1
            elif tok[:2] == ("op", ")"):
                depth -= 1
            if depth == 0 and tok[:2] == ("op", "|"):
                commands.append(self.command(tokens[start:i], pos))
                start = i + 1
        commands.append(self.command(tokens[start:], pos))
        return commands

    def command(self, tokens: list, pos: int) -> list:
        if not tokens:
            raise self.error("missing command", pos)
        operands, i = [], 0
        while i < len(tokens):
            kind, value, at = tokens[i]
            i += 1
            if (kind, value) == ("op", "("):
                depth, j = 1, i
                while j < len(tokens) and depth:
                    depth += {"(": 1, ")": -1}.get(tokens[j][1], 0) if tokens[j][0] == "op" else 0
                    j += 1
                if depth:
                    raise self.error("unclosed left paren", at)
                operands.append(("pipe", self.pipeline(tokens[i : j - 1], at), at))
                i = j
            elif kind == "ident":
                if value not in FUNCTIONS:
                    raise self.error(f'function "{value}" not defined', at)
                operands.append(("func", value, at))
            elif kind == "op":
                raise self.error(f'unexpected "{value}" in command', at)
            else:
                operands.append((kind, value, at))
        return operands


def _actions(text: str):
    """("text", str, pos) and ("action", inside, pos) in order, with {{- and -}} trimmed."""
    pos, trim_next = 0, False
    while True:
        start = text.find("{{", pos)
        chunk = text[pos:] if start < 0 else text[pos:start]
        if trim_next:
            chunk = chunk.lstrip()
        if start < 0:
            if chunk:
                yield ("text", chunk, pos)
            return
        inner = start + 2
        if text.startswith("- ", inner) or text.startswith("-\t", inner):
            chunk, inner = chunk.rstrip(), inner + 1
        if chunk:
            yield ("text", chunk, pos)
        end = _close(text, inner)
        body = text[inner:end]
        trim_next = body.endswith(" -")
        yield ("action", body[:-2] if trim_next else body, inner)
        pos = end + 2


def _close(text: str, i: int) -> int:
    quote = ""
    while i < len(text) - 1:
        c = text[i]
        if quote:
            if c == "\\" and quote == '"':
                i += 1
            elif c == quote:
                quote = ""
        elif c in '"`':
            quote = c
        elif text.startswith("}}", i):
            return i
        i += 1
    line = text.count("\n", 0, i) + 1
    raise TemplateError(f"template parsing error: template: :{line}: unclosed action")


def _tokens(body: str, pos: int, parser: _Parser) -> list:
    stripped = body.strip()
    if stripped.startswith("/*") and stripped.endswith("*/"):
        return []
    tokens, i = [], 0
    while i < len(body) and body[i:].strip():
        m = _TOKEN.match(body, i)
        kind = m.lastgroup
        value = m.group(kind)
        at = pos + m.start(kind)
        if kind == "bad":
            raise parser.error(f'unexpected "{value}" in command', at)
        tokens.append(_token(kind, value, at))
        i = m.end()
    return tokens


_CONSTANTS = {"true": True, "false": False, "nil": None}


def _token(kind: str, value: str, at: int) -> tuple:
    if kind == "str":
        return ("lit", json.loads(value), at)
    if kind == "raw":
        return ("lit", value[1:-1], at)
    if kind == "num":
        return ("lit", float(value) if re.search(r"[.eE]", value) else int(value), at)
    if kind == "ident" and value in _CONSTANTS:
        return ("lit", _CONSTANTS[value], at)
    return (kind, value, at)


# -- executing -------------------------------------------------------------------------


def execute(nodes: list, data, text: str = "") -> str:
    """The template's output for `data`; TemplateError in Go's words on a missing key."""
    out: list[str] = []
    _Exec(data, text).run(nodes, data, out)
    return "".join(out)


def render(template: str, data) -> str:
    return execute(parse(template), data, template)


class _Exec:
    def __init__(self, root, text: str) -> None:
        self.root = root
        self.text = text

    def error(self, at: int, node: str, message: str) -> TemplateError:
        line = self.text.count("\n", 0, at) + 1
        col = at - (self.text.rfind("\n", 0, at) + 1)
        return TemplateError(f'template: :{line}:{col}: executing "" at <{node}>: {message}')

    def run(self, nodes: list, dot, out: list[str]) -> None:
        for node in nodes:
            kind = node[0]
            if kind == "text":
                out.append(node[1])
            elif kind == "action":
                out.append(go_print(self.pipeline(node[1], dot)))
            else:
                _, pipe, body, other, _pos = node
                value = self.pipeline(pipe, dot)
                if kind == "range" and truth(value):
                    items = [value[k] for k in sorted(value)] if isinstance(value, dict) else value
                    for item in items:
                        self.run(body, item, out)
                elif kind != "range" and truth(value):
                    self.run(body, value if kind == "with" else dot, out)
                else:
                    self.run(other, dot, out)

    def pipeline(self, commands: list, dot):
        value, piped = None, False
        for command in commands:
            value = self.command(command, dot, [value] if piped else [])
            piped = True
        return value

    def command(self, operands: list, dot, piped: list):
        head = operands[0]
        if head[0] == "func":
            args = [self.operand(o, dot) for o in operands[1:]] + piped
            try:
                return call(head[1], args)
            except TemplateError as e:
                raise self.error(head[2], head[1], str(e)) from None
        if len(operands) > 1 or piped:
            raise self.error(head[2], _shown(head), "can't give argument to non-function")
        return self.operand(head, dot)

    def operand(self, operand: tuple, dot):
        kind, value, at = operand
        if kind == "lit":
            return value
        if kind == "pipe":
            return self.pipeline(value, dot)
        if kind == "func":
            return call(value, [])
        base, *names = value.split(".")
        current = self.root if base.startswith("$") else dot
        for name in filter(None, names):
            current = self.field(current, name, at, value)
        return current

    def field(self, value, name: str, at: int, shown: str):
        if isinstance(value, dict):
            if name not in value:
                raise self.error(at, shown, f'map has no entry for key "{name}"')
            return value[name]
        if value is None:
            raise self.error(at, shown, f"nil pointer evaluating interface {{}}.{name}")
        raise self.error(at, shown, f"can't evaluate field {name} in type {go_type(value)}")


def _shown(operand: tuple) -> str:
    kind, value, _ = operand
    return json.dumps(value) if kind == "lit" else str(value)
