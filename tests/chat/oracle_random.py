"""Random templates for the differential test against jinja2 (oracle_test.py): statements and
expressions drawn from the subset chat templates use, with random whitespace control around every
tag and random text (spaces, tabs, newlines) between tags, over the variables of
oracle_constructs.VARS. Seeded: the same seed gives the same template, so a failure replays with
`oracle_test.py -k random/SEED`.

Avoided on purpose, since Python prints them with a memory address or mii does not model them
(docs/chat-templates.md): printing methods, generators or functions; Markup (the e and safe
filters); integers past 64 bits."""
import random

STRINGS = ["", "a", "Héllo", "x y", "  pad  ", "\\n", "it's", '"q"', "你好", "😀", "a,b", "<tag>", "-", "Ab-cd e"]
KEYS = ["a", "b", "role", "content", "x", "y", "z", "tool_calls", "missing"]
FILTERS_STR = ["upper", "lower", "title", "capitalize", "trim", "length", "string", "list", "first", "last",
               "reverse", "wordcount", "tojson", "count"]
FILTERS_SEQ = ["length", "first", "last", "list", "sort", "unique", "reverse", "tojson", "join", "sum",
               "min", "max", "count", "string"]
TESTS = ["defined", "undefined", "none", "string", "number", "integer", "float", "mapping", "sequence",
         "iterable", "boolean", "true", "false", "odd", "even", "lower", "upper"]
METHODS = ["upper()", "lower()", "strip()", "split()", "split(',')", "startswith('a')", "endswith('o')",
           "replace('l', 'L')", "title()", "capitalize()", "find('l')", "count('l')", "lstrip('H')",
           "rstrip('o ')", "rsplit(' ', 1)", "isdigit()", "isalpha()"]
NAMES = ["s", "n", "i", "f", "b", "l", "d", "e", "el", "msgs", "cjk", "neg", "words", "nested", "text", "u"]


class Gen:
    def __init__(self, seed):
        self.r = random.Random(seed)
        self.loop_vars = []
        self.loop_depth = 0
        self.set_names = ["s"]

    def ws(self):
        return self.r.choice(["", "", " ", "\n", "  ", "\n  ", "\t", " \n", "\n\n", "x", " y "])

    def sign(self):
        return self.r.choice(["", "", "", "-", "+"])

    def open_tag(self):
        return "{%" + self.sign() + " "

    def close_tag(self):
        return " " + self.r.choice(["", "", "", "-"]) + "%}"

    def string_literal(self):
        s = self.r.choice(STRINGS)
        q = self.r.choice(["'", '"'])
        return q + s.replace("\\", "\\\\").replace(q, "\\" + q) + q

    def literal(self):
        k = self.r.randrange(9)
        if k == 0:
            return str(self.r.randint(-20, 100))
        if k == 1:
            return self.r.choice(["0.5", "2.25", "1e3", "1.0", "0.1", "3.14159", "1e-6", "100.0"])
        if k == 2:
            return self.r.choice(["true", "false", "none", "True", "None"])
        if k == 3:
            return "[" + ", ".join(self.expr(1) for _ in range(self.r.randint(0, 3))) + "]"
        if k == 4:
            return "{" + ", ".join(f"{self.string_literal()}: {self.expr(1)}" for _ in range(self.r.randint(0, 2))) + "}"
        if k == 5:
            items = [self.expr(1) for _ in range(self.r.randint(0, 3))]
            return "(" + ", ".join(items) + ",)" if items else "()"
        return self.string_literal()

    def name(self):
        pool = NAMES + self.loop_vars + self.set_names
        if self.loop_depth:
            pool = pool + ["loop.index", "loop.index0", "loop.first", "loop.last", "loop.length", "loop.revindex"]
        return self.r.choice(pool)

    def expr(self, depth=3):
        if depth <= 0:
            return self.r.choice([self.literal(), self.name(), self.name()])
        k = self.r.randrange(16)
        d = depth - 1
        if k <= 1:
            return self.name()
        if k == 2:
            return self.literal()
        if k == 3:
            return f"{self.expr(d)}.{self.r.choice(KEYS)}" if self.r.random() < 0.5 else f"{self.name()}[{self.r.choice([str(self.r.randint(-3, 3)), repr(self.r.choice(KEYS))])}]"
        if k == 4:
            a, b = self.r.choice(["", "1", "-1", "2", "-2"]), self.r.choice(["", "1", "-1", "3"])
            step = self.r.choice(["", "", ":-1", ":2"])
            return f"{self.r.choice(['s', 'l', 'cjk', 'words', 'text', 'msgs'])}[{a}:{b}{step}]"
        if k == 5:
            op = self.r.choice(["+", "-", "*", "/", "//", "%", "**", "~", "~", "+"])
            if op in ("~",) or self.r.random() < 0.3:
                return f"({self.expr(d)} {op} {self.expr(d)})"
            # mostly numbers with numbers, strings with strings, so that most renders succeed
            nums = ["i", "f", "neg", "b", "loop.index" if self.loop_depth else "2", str(self.r.randint(-5, 9)), "0.5", "1e3"]
            if op in ("+", "*") and self.r.random() < 0.4:
                return f"({self.r.choice(['s', 'e', 'cjk', self.string_literal()])} {op} {self.r.choice(['s', 'cjk', self.string_literal()]) if op == '+' else self.r.choice(['2', 'i', 'b'])})"
            if op == "**":
                return f"({self.r.choice(nums)} ** {self.r.randint(-2, 4)})"
            return f"({self.r.choice(nums)} {op} {self.r.choice(nums)})"
        if k == 6:
            op = self.r.choice(["==", "!=", "<", ">", "<=", ">=", "in", "not in"])
            return f"({self.expr(d)} {op} {self.expr(d)})"
        if k == 7:
            return f"({self.expr(d)} {self.r.choice(['and', 'or'])} {self.expr(d)})"
        if k == 8:
            return f"(not {self.expr(d)})"
        if k == 9:
            return f"({self.expr(d)} if {self.expr(d)} else {self.expr(d)})"
        if k == 10:
            f = self.r.choice(FILTERS_STR + FILTERS_SEQ)
            args = {"join": "(" + self.string_literal() + ")", "tojson": self.r.choice(["", "(indent=2)", "(sort_keys=true)"]),
                    "sort": self.r.choice(["", "(reverse=true)"]),
                    # generators print with their address in Python: consume them
                    "unique": "|list", "reverse": "|list"}.get(f, "")
            return f"({self.expr(d)}|{f}{args})"
        if k == 11:
            return f"({self.expr(d)} is {self.r.choice(['', 'not '])}{self.r.choice(TESTS)})"
        if k == 12:
            return f"{self.r.choice(['s', 'cjk', 'text', 'e'] + self.set_names)}.{self.r.choice(METHODS)}"
        if k == 13:
            return self.r.choice([
                f"({self.expr(d)}|default({self.literal()}))",
                f"(msgs|selectattr('role', 'equalto', {self.r.choice(['user', 'assistant', 'x'])!r})|map(attribute='content')|list)",
                f"(l|select('odd')|list)",
                f"({self.r.choice(['msgs', 'words', 'l'])}|map('string')|join(','))",
                f"(d|dictsort)",
                f"({self.expr(d)}|int)",
                f"({self.expr(d)}|float)",
                f"({self.expr(d)}|round(1))",
                f"(range({self.r.randint(0, 6)})|list)",
                f"({self.expr(d)}|replace('a', 'b'))",
                f"({self.expr(d)}|indent(2))",
            ])
        if k == 14:
            return f"(namespace(v={self.expr(d)}).v)"
        return f"[{self.expr(d)}, {self.expr(d)}][{self.r.randint(-2, 1)}]"

    def stmts(self, n, depth):
        return "".join(self.stmt(depth) for _ in range(n))

    def stmt(self, depth):
        k = self.r.randrange(12 if depth > 0 else 4)
        if k <= 1:
            return self.ws()
        if k == 2:
            return "{{" + self.sign().replace("+", "") + " " + self.expr() + " " + self.r.choice(["", "-"]) + "}}" + self.ws()
        if k == 3:
            return self.r.choice(["{# note #}", "{#- note -#}", "{# x +#}", self.ws()])
        if k in (4, 5):
            out = self.open_tag() + "if " + self.expr(2) + self.close_tag() + self.stmts(self.r.randint(1, 3), depth - 1)
            if self.r.random() < 0.3:
                out += self.open_tag() + "elif " + self.expr(2) + self.close_tag() + self.stmts(self.r.randint(1, 2), depth - 1)
            if self.r.random() < 0.4:
                out += self.open_tag() + "else" + self.close_tag() + self.stmts(self.r.randint(1, 2), depth - 1)
            return out + self.open_tag() + "endif" + self.close_tag() + self.ws()
        if k in (6, 7):
            var = self.r.choice(["x", "m", "item"])
            iterable = self.r.choice(["l", "msgs", "words", "s", "d", "el", "cjk", "range(3)", "msgs[::-1]", "d.items()", "[1, 2]"])
            target = "k, v" if iterable == "d.items()" else var
            cond = f" if {self.expr(1)}" if self.r.random() < 0.2 else ""
            self.loop_vars.extend(target.split(", "))
            self.loop_depth += 1
            body = self.stmts(self.r.randint(1, 3), depth - 1)
            if self.r.random() < 0.2:
                body += self.open_tag() + self.r.choice(["break", "continue"]) + self.close_tag()
            self.loop_depth -= 1
            for t in target.split(", "):
                self.loop_vars.remove(t)
            out = self.open_tag() + f"for {target} in {iterable}{cond}" + self.close_tag() + body
            if self.r.random() < 0.3:
                out += self.open_tag() + "else" + self.close_tag() + self.stmts(1, depth - 1)
            return out + self.open_tag() + "endfor" + self.close_tag() + self.ws()
        if k == 8:
            name = self.r.choice(["t1", "t2", "acc"])
            if name not in self.set_names:
                self.set_names.append(name)
            return self.open_tag() + f"set {name} = {self.expr(2)}" + self.close_tag() + self.ws()
        if k == 9:
            return (self.open_tag() + f"set ns = namespace(c=0, s='')" + self.close_tag() + self.stmts(1, depth - 1) +
                    self.open_tag() + f"for x in {self.r.choice(['l', 'msgs', 'words'])}" + self.close_tag() +
                    self.open_tag() + f"set ns.c = ns.c + 1" + self.close_tag() +
                    self.open_tag() + f"set ns.s = ns.s ~ {self.expr(1)}" + self.close_tag() +
                    self.open_tag() + "endfor" + self.close_tag() + "{{ ns.c }}|{{ ns.s }}" + self.ws())
        if k == 10:
            return (self.open_tag() + "macro mk(a, b='B')" + self.close_tag() + "<{{ a }}{{ b }}>" +
                    self.open_tag() + "endmacro" + self.close_tag() + "{{ mk(" + self.expr(1) + ") }}" + self.ws())
        return self.open_tag() + "filter " + self.r.choice(["upper", "trim", "title"]) + self.close_tag() + self.stmts(2, depth - 1) + self.open_tag() + "endfilter" + self.close_tag()


def random_template(seed):
    g = Gen(seed)
    return g.stmts(g.r.randint(2, 6), 3)
