"""Small templates, one construct each, rendered by jinja2 (the oracle) and by mii
(tests/chat/oracle_test.py). Each entry: (name, template, list of variable sets); a template
that jinja2 rejects or fails on must fail in mii too, one that calls raise_exception must be
refused with the same message."""

VARS = {
    "s": "héllo wörld",
    "n": None,
    "i": 7,
    "f": 2.5,
    "b": True,
    "l": [3, 1, 2],
    "d": {"b": 1, "a": [1, 2.5, None, True], "items": "key"},
    "e": "",
    "el": [],
    "msgs": [
        {"role": "system", "content": "sys"},
        {"role": "user", "content": "hi"},
        {"role": "assistant", "content": "yo", "tool_calls": [{"function": {"name": "f", "arguments": {"x": 1}}}]},
        {"role": "user", "content": "bye"},
    ],
    "cjk": "你好世界😀",
    "neg": -3,
    "words": ["b", "A", "c", "a", "B"],
    "nested": {"x": {"y": [10, 20, {"z": "deep"}]}},
    "big": 9007199254740993,
    "tiny": 1e-7,
    "floats": [0.1, 1.0, 1e16, 1.5e-5, -0.0, 123456789.125, 1e22, 3.14159],
    "text": "line one\nline two\n\nline four",
}

# (name, template, [variables...]); None in place of the list means [VARS].
CASES = [
    # ---- whitespace control, trim_blocks, lstrip_blocks ------------------------------------
    ("ws_trim_blocks", "{% if true %}\nyes\n{% endif %}\nafter", None),
    ("ws_lstrip_blocks", "start\n    {% if true %}\n    indented\n    {% endif %}\nend", None),
    ("ws_minus_both", "a   {%- if true -%}   b   {%- endif -%}   c", None),
    ("ws_minus_var", "a \n {{- 'x' -}} \n b", None),
    ("ws_plus_lstrip", "a\n    {%+ if true %}x{% endif %}\nb", None),
    ("ws_plus_trim", "a\n{% if true +%}\nx{% endif %}\nb", None),
    ("ws_var_no_lstrip", "a\n    {{ 'x' }}\n    b", None),
    ("ws_comment", "a\n  {# comment #}\nb {#- c -#}   c\n{# c2 +#}\nd", None),
    ("ws_tabs_and_unicode_space", "x\n\t \t{% if true %}y{% endif %}\n\u3000{%- if true %}z{% endif %}", None),
    ("ws_trailing_newline_dropped", "text\n", None),
    ("ws_two_trailing_newlines", "text\n\n", None),
    ("ws_crlf", "a\r\n{% if true %}\r\nb\r\n{% endif %}\r\nc\rd", None),
    ("ws_block_at_start_of_template", "   {% if true %}x{% endif %}", None),
    ("ws_after_var_newline", "{{ 'a' }}\n{{ 'b' }}\n", None),
    ("ws_minus_strips_unicode_space", "a\u00a0\u2003 {{- 'b' }}", None),
    ("ws_raw", "{% raw %}{{ not rendered }}{% endraw %}|  {% raw -%}  x  {%- endraw %}|", None),
    ("ws_nested_indent", "{% for m in msgs %}\n  {% if m.role == 'user' %}\n    U:{{ m.content }}\n  {% else %}\n    O:{{ m.content }}\n  {% endif %}\n{% endfor %}", None),
    # ---- printing Python values -------------------------------------------------------------
    ("print_scalars", "{{ n }}|{{ b }}|{{ false }}|{{ i }}|{{ f }}|{{ neg }}|{{ s }}|{{ e }}|{{ undefined_var }}", None),
    ("print_containers", "{{ l }}|{{ d }}|{{ el }}|{{ (1, 'a') }}|{{ (1,) }}|{{ () }}|{{ {} }}|{{ msgs[2] }}", None),
    ("print_floats", "{% for x in floats %}{{ x }} {% endfor %}|{{ tiny }}|{{ big }}|{{ 1e300 * 1e10 }}|{{ -(1e300 * 1e10) }}", None),
    ("print_repr_quotes", "{{ ['it\\'s', \"say \\\"hi\\\"\", 'both \\' and \"', 'back\\\\slash', 'tab\\tnl\\n', '\\x00\\x7f\\u00a0\\u200b', 'é😀'] }}", None),
    ("print_nested", "{{ nested }}|{{ [none, true, 1.0, [], {}] }}", None),
    ("print_undefined_in_list", "{{ [missing] }}", None),
    ("print_dict_views", "{{ d.keys() }}|{{ d.values() }}|{{ d.items() }}", None),
    ("print_range", "{{ range(3) }}|{{ range(1, 10, 2) }}|{{ range(5)|list }}|{{ range(10, 0, -3)|list }}", None),
    ("print_namespace", "{% set ns = namespace(a=1, b='x') %}{{ ns }}{% set ns.s = ns %}|{{ ns }}", None),
    ("print_loop", "{% for x in l %}{{ loop }}{% endfor %}", None),
    ("print_macro", "{% macro m() %}{% endmacro %}{{ m }}", None),
    # ---- literals and operators ----------------------------------------------------------------
    ("string_escapes", "{{ 'a\\nb\\tc\\\\d\\'e\\x41\\u00e9\\U0001F600\\101\\q\\é' }}|{{ \"dq\" 'sq' }}", None),
    ("numbers_literals", "{{ 1_000 }} {{ 0x1F }} {{ 0o17 }} {{ 0b101 }} {{ 1.5e3 }} {{ 1e3 }} {{ 2.0 }} {{ 10 }}", None),
    ("arithmetic", "{{ 7 // 2 }} {{ -7 // 2 }} {{ 7 % 3 }} {{ -7 % 3 }} {{ 7 % -3 }} {{ 2 ** 10 }} {{ 2 ** -2 }} {{ 7 / 2 }} {{ 6 / 3 }} {{ 1 + 2 * 3 - 4 }} {{ 2 ** 3 ** 2 }} {{ -2 ** 2 }}", None),
    ("float_arithmetic", "{{ 7.5 // 2 }} {{ -7.5 // 2 }} {{ 7.5 % 2 }} {{ -7.5 % 2 }} {{ 0.1 + 0.2 }} {{ 1 / 3 }} {{ 2 ** 0.5 }} {{ 10 / 4 }} {{ 3 * 1.5 }}", None),
    ("bool_arithmetic", "{{ true + 1 }} {{ true * 'ab' }} {{ false + 0.5 }} {{ 3 * [1] }}", None),
    ("string_ops", "{{ 'ab' + 'cd' }} {{ 'ab' * 3 }} {{ 'x' ~ 1 ~ none ~ true ~ undefined_var }} {{ [1] + [2] }} {{ (1,) + (2,) }}", None),
    ("comparisons", "{{ 1 < 2 < 3 }} {{ 3 > 2 > 5 }} {{ 1 == 1.0 }} {{ 'a' < 'b' }} {{ [1, 2] < [1, 3] }} {{ none == none }} {{ 1 != '1' }} {{ 2 >= 2 }} {{ (1, 2) == (1, 2) }} {{ [1] == (1,) }}", None),
    ("logic", "{{ 0 or 'x' }} {{ 'a' and 'b' }} {{ '' and 'b' }} {{ none or [] }} {{ not 0 }} {{ not not 'x' }} {{ 1 if false }}|{{ 'y' if b else 'n' }}", None),
    ("in_operator", "{{ 'ell' in s }} {{ 3 in l }} {{ 'a' in d }} {{ 'z' not in d }} {{ 1 in (1, 2) }} {{ 'x' in undefined_var }}", None),
    ("precedence", "{{ not 1 == 2 }} {{ 'x' ~ 2 * 3 }} {{ -i|abs }} {{ 2 * 3 ** 2 }} {{ 1 or 2 and 0 }} {{ not 'a' ~ '' }} {{ 1 - 2 - 3 }} {{ 2 ** -1 ** 2 }}", None),
    ("precedence_concat_binds_before_plus", "{{ 1 + 2 ~ 3 }}", None),
    ("precedence_filter_after_unary_minus", "{{ -l|length }}", None),
    ("conditional_nested", "{{ 'a' if false else 'b' if false else 'c' }}", None),
    ("list_dict_literals", "{{ [1, 'two', [3]] }} {{ {'k': 1, 2: 'v', 'k': 3} }} {{ {'a': 1}['a'] }} {{ [1, 2, 3,][-1] }}", None),
    # ---- subscripts, slices, attributes ------------------------------------------------------
    ("subscripts", "{{ l[0] }} {{ l[-1] }} {{ l[10] }}|{{ s[1] }} {{ cjk[4] }} {{ cjk[-1] }} {{ d['b'] }} {{ d.b }} {{ d['missing'] }}|{{ nested.x.y.2.z }} {{ nested['x']['y'][0] }}", None),
    ("slices", "{{ l[::-1] }} {{ l[1:] }} {{ l[:-1] }} {{ l[::2] }} {{ s[::-1] }} {{ cjk[1:3] }} {{ cjk[::-1] }} {{ s[2:100] }} {{ l[5:1:-1] }} {{ (1, 2, 3)[1:] }} {{ msgs[1:][0].content }}", None),
    ("slice_odd_bounds", "{{ l[none:] }} {{ l[true:] }} {{ l[-100:100] }} {{ s[-3:] }}|{{ range(10)[2:8:3] }}|{{ range(10)[::-1] }}", None),
    ("slice_string_bound_error", "{{ l['a':] }}", None),
    ("slice_dict_error", "{{ d[1:] }}", None),
    ("slice_none_error", "{{ n[1:] }}", None),
    ("slice_generator_error", "{{ (l|select)[1:] }}", None),
    ("attribute_vs_item", "{{ d.items is callable }}|{{ d['items'] }}|{{ d.get('b') }} {{ d.get('zz', 'dflt') }} {{ d.get('zz') }}", None),
    ("none_attribute", "{{ n.x }}|{{ n['x'] }}|{{ i.x }}|{{ s.nope }}|{{ l.nope }}", None),
    ("undefined_attribute_error", "{{ missing.attr }}", None),
    ("undefined_item_error", "{{ missing[0] }}", None),
    ("undefined_call_error", "{{ missing() }}", None),
    ("missing_key_then_attribute_error", "{{ d.missing.attr }}", None),
    # ---- undefined ---------------------------------------------------------------------------------
    ("undefined_uses", "{{ u }}|{{ u is defined }}|{{ u is undefined }}|{{ u|default('dflt') }}|{{ u|length }}|{{ u|list }}|{{ u|upper }}|{{ u|trim }}|{{ u|string }}|{{ u == u }}|{{ u == none }}|{{ not u }}|{% for x in u %}no{% else %}empty{% endfor %}|{{ u ~ 'x' }}|{{ u|join(',') }}|{{ u|first }}|{{ u|last }}", None),
    ("undefined_tests", "{{ u is sequence }} {{ u is iterable }} {{ u is callable }} {{ u is mapping }} {{ u is string }} {{ u is none }} {{ u is number }}", None),
    ("undefined_arithmetic_error", "{{ u + 1 }}", None),
    ("undefined_compare_error", "{{ u < 1 }}", None),
    ("undefined_int_error", "{{ u|int }}", None),
    ("undefined_tojson_error", "{{ u|tojson }}", None),
    ("default_boolean", "{{ ''|default('x') }}|{{ ''|default('x', true) }}|{{ none|default('x') }}|{{ none|d('x', true) }}|{{ 0|default(5, boolean=true) }}", None),
    # ---- for loops ---------------------------------------------------------------------------------
    ("loop_vars", "{% for x in l %}[{{ loop.index }},{{ loop.index0 }},{{ loop.revindex }},{{ loop.revindex0 }},{{ loop.first }},{{ loop.last }},{{ loop.length }},{{ loop.depth }},{{ loop.depth0 }}]{% endfor %}", None),
    ("loop_prev_next_cycle", "{% for x in l %}{{ loop.previtem }}<{{ x }}>{{ loop.nextitem }}{{ loop.cycle('a', 'b') }};{% endfor %}", None),
    ("loop_else", "{% for x in el %}x{% else %}none{% endfor %}|{% for x in l if x > 5 %}x{% else %}filtered{% endfor %}", None),
    ("loop_filter", "{% for x in l if x != 1 %}{{ x }}:{{ loop.index }}/{{ loop.length }} {% endfor %}", None),
    ("loop_unpack", "{% for k, v in d.items() %}{{ k }}={{ v }};{% endfor %}|{% for a, (b, c) in [(1, (2, 3))] %}{{ a }}{{ b }}{{ c }}{% endfor %}|{% for k, v in d|dictsort %}{{ k }}{% endfor %}", None),
    ("loop_unpack_string", "{% for a, b in ['xy', 'zw'] %}{{ b }}{{ a }}{% endfor %}", None),
    ("loop_unpack_error", "{% for a, b in [1, 2] %}{% endfor %}", None),
    ("loop_over_dict_and_string", "{% for k in d %}{{ k }},{% endfor %}|{% for c in cjk %}{{ c }}.{% endfor %}", None),
    ("loop_break_continue", "{% for x in range(10) %}{% if x == 2 %}{% continue %}{% endif %}{% if x == 5 %}{% break %}{% endif %}{{ x }}{% endfor %}", None),
    ("loop_scoping", "{% set x = 1 %}{% for i in range(3) %}{{ x }}{% set x = i + 10 %}{{ x }},{% endfor %}|{{ x }}|{{ i }}", None),
    ("loop_scoping_if", "{% for i in range(3) %}{% if i == 1 %}{% set y = 5 %}{% endif %}{{ y }},{% endfor %}|{% if true %}{% set z = 2 %}{% endif %}{{ z }}", None),
    ("loop_nested_outer", "{% for a in [1, 2] %}{% set outer = loop %}{% for b in ['x', 'y'] %}{{ outer.index }}{{ loop.index }}{{ a }}{{ b }} {% endfor %}{% endfor %}", None),
    ("loop_namespace_accumulate", "{% set ns = namespace(total=0, names='') %}{% for m in msgs %}{% set ns.total = ns.total + 1 %}{% set ns.names = ns.names ~ m.role[0] %}{% endfor %}{{ ns.total }} {{ ns.names }}", None),
    ("loop_not_iterable_error", "{% for x in 5 %}{% endfor %}", None),
    ("loop_none_error", "{% for x in n %}{% endfor %}", None),
    ("loop_generator_filter", "{% for m in msgs|selectattr('role', 'equalto', 'user') %}{{ m.content }}{{ loop.length }}{% endfor %}", None),
    ("loop_previtem_first", "{% for x in [1] %}{{ loop.previtem is defined }}{{ loop.nextitem is defined }}{% endfor %}", None),
    # ---- set, namespace, with -----------------------------------------------------------------
    ("set_forms", "{% set a = 1 %}{% set b, c = 2, 3 %}{% set t = 4, 5 %}{{ a }}{{ b }}{{ c }}{{ t }}{% set blk %}in block {{ a }}{% endset %}[{{ blk }}]{% set f | upper %}up{% endset %}{{ f }}", None),
    ("set_block_scope", "{% set x %}a{% set q = 3 %}{% endset %}{{ x }}{{ q }}", None),
    ("namespace_forms", "{% set ns = namespace() %}{% set ns.a = 1 %}{{ ns.a }}{% set ns2 = namespace({'k': 'v'}, z=3) %}{{ ns2.k }}{{ ns2.z }}{{ ns2.missing }}|{{ ns2['k'] }}", None),
    ("namespace_assign_error", "{% set s.x = 1 %}", None),
    ("with_block", "{% with a = 1, b = 'x' %}{{ a }}{{ b }}{% endwith %}{{ a }}|", None),
    ("dict_global", "{{ dict(a=1, b=2) }} {{ dict([('x', 1)]) }} {{ dict({'y': 2}, z=3) }}", None),
    # ---- macros and call ----------------------------------------------------------------------------
    ("macro_basic", "{% macro greet(name, punct='!') %}Hi {{ name }}{{ punct }}{% endmacro %}{{ greet('Bob') }} {{ greet('Al', '?') }} {{ greet(punct='.', name='Cy') }} {{ greet() }}|", None),
    ("macro_varargs_kwargs", "{% macro m(a) %}{{ a }}{{ varargs }}{{ kwargs }}{% endmacro %}{{ m(1, 2, 3, x=4) }}", None),
    ("macro_too_many_args", "{% macro m(a) %}{{ a }}{% endmacro %}{{ m(1, 2) }}", None),
    ("macro_unknown_kwarg", "{% macro m(a) %}{{ a }}{% endmacro %}{{ m(b=1) }}", None),
    ("macro_scope", "{% set g = 'global' %}{% macro m() %}{{ g }}{% set g = 'local' %}{{ g }}{% endmacro %}{{ m() }}{{ g }}", None),
    ("macro_recursion", "{% macro fact(n) %}{% if n <= 1 %}1{% else %}{{ n * fact(n - 1)|int }}{% endif %}{% endmacro %}{{ fact(6) }}", None),
    ("macro_json_type", "{%- macro t(v) -%}{%- if v is string -%}str{%- elif v is mapping -%}obj{%- elif v is iterable -%}arr{%- elif v is boolean -%}bool{%- elif v is integer -%}int{%- elif v is float -%}num{%- else -%}null{%- endif -%}{%- endmacro -%}{% for k in d %}{{ t(d[k]) }} {% endfor %}{{ t(n) }} {{ t(b) }} {{ t(f) }}", None),
    ("call_block", "{% macro wrap(tag) %}<{{ tag }}>{{ caller() }}</{{ tag }}>{% endmacro %}{% call wrap('b') %}bold {{ s }}{% endcall %}{% macro each(xs) %}{% for x in xs %}{{ caller(x) }}{% endfor %}{% endmacro %}{% call(x) each(l) %}[{{ x }}]{% endcall %}", None),
    ("filter_block", "{% filter upper %}hello {{ s }}{% endfilter %}|{% filter trim|replace('a', 'b') %}  banana  {% endfilter %}", None),
    ("generation_block", "{% for m in msgs %}{% if m.role == 'assistant' %}{% generation %}{{ m.content }}!{% endgeneration %}{% else %}{{ m.content }}{% endif %};{% endfor %}", None),
    # ---- string filters --------------------------------------------------------------------------
    ("filters_case", "{{ s|upper }}|{{ 'ÀÉÎ ß'|lower }}|{{ 'straße ﬁne'|upper }}|{{ 'hello WORLD-wide (x) [y] {z} <w>'|title }}|{{ \"they're bill's\"|title }}|{{ 'hELLO wORLD'|capitalize }}", None),
    ("filters_trim_replace", "[{{ '  x y \\n'|trim }}]|[{{ 'xxhixx'|trim('x') }}]|{{ 'banana'|replace('a', 'o') }}|{{ 'banana'|replace('a', 'o', 2) }}|{{ 'abc'|replace('', '-') }}|{{ 42|replace('2', '3') }}", None),
    ("filters_length_count", "{{ s|length }} {{ cjk|length }} {{ l|count }} {{ d|length }} {{ el|length }}", None),
    ("filters_join", "{{ l|join }}|{{ l|join(', ') }}|{{ msgs|join('|', attribute='role') }}|{{ [1, none, 'x']|join('-') }}", None),
    ("filters_first_last", "{{ l|first }} {{ l|last }} {{ s|first }} {{ cjk|last }} {{ el|first }}|{{ d|first }} {{ d|last }}", None),
    ("filters_string_int_float", "{{ 42|string }} {{ '42'|int + 1 }} {{ '42.9'|int }} {{ ' 7 '|int }} {{ 'x'|int }} {{ 'x'|int(-1) }} {{ '0x1A'|int(0, 16) }} {{ '1_000'|int }} {{ 3.99|int }} {{ true|int }} {{ none|int }}", None),
    ("filters_float", "{{ '2.5'|float }} {{ 3|float }} {{ 'abc'|float }} {{ ' 1e3 '|float }} {{ 'nan'|float }} {{ '-inf'|float }} {{ none|float(1.5) }}", None),
    ("filters_round_abs", "{{ 2.5|round }} {{ 3.5|round }} {{ 2.675|round(2) }} {{ 1.25|round(1) }} {{ 7|round }} {{ 3.14159|round(3, 'floor') }} {{ 3.1|round(method='ceil') }} {{ -3|abs }} {{ -2.5|abs }} {{ 1234.5|round(-2) }}", None),
    ("filters_indent", "{{ text|indent }}|{{ text|indent(2, true) }}|{{ text|indent('> ', blank=true) }}|{{ ''|indent }}", None),
    ("filters_center_wordcount", "[{{ 'ab'|center(7) }}]{{ 'one two, three_four 你好'|wordcount }}[{{ 'x'|center(4) }}]", None),
    ("filters_escape_safe", "{{ '<a href=\"x\">&\\'</a>'|e }} {{ '<b>'|safe }} {{ 5|escape }}", None),
    ("filters_format", "{{ '%s-%d-%05.2f-%x-%r'|format('a', 7, 3.14159, 255, 'q') }} {{ '%(a)s'|format(a='named') }} {{ '%5s|%-5s|%%'|format('r', 'l') }}", None),
    # ---- sequence filters ---------------------------------------------------------------------------
    ("filters_sort", "{{ l|sort }} {{ l|sort(reverse=true) }} {{ words|sort }} {{ words|sort(case_sensitive=true) }} {{ msgs|sort(attribute='role')|map(attribute='content')|list }}", None),
    ("filters_sort_error", "{{ [1, 'a']|sort }}", None),
    ("filters_unique", "{{ words|unique|list }} {{ words|unique(case_sensitive=true)|list }} {{ msgs|unique(attribute='role')|map(attribute='content')|join(',') }}", None),
    ("filters_reverse", "{{ s|reverse }} {{ l|reverse|list }} {{ cjk|reverse }} {{ (1, 2)|reverse|list }}", None),
    ("filters_dictsort", "{{ d|dictsort }} {{ {'b': 2, 'A': 1, 'c': 0}|dictsort }} {{ {'b': 2, 'A': 1}|dictsort(true) }} {{ {'x': 2, 'y': 1}|dictsort(by='value') }} {{ d|dictsort(reverse=true) }}", None),
    ("filters_items_list", "{{ d|items|list }} {{ s|list }} {{ d|list }} {{ (1, 2)|list }}", None),
    ("filters_map", "{{ msgs|map(attribute='role')|list }} {{ l|map('string')|join }} {{ words|map('upper')|list }} {{ msgs|map(attribute='name', default='anon')|list }} {{ [[1, 2], [3]]|map('length')|list }} {{ nested.x.y|map(attribute='z')|list }}", None),
    ("filters_select_reject", "{{ l|select('odd')|list }} {{ l|reject('odd')|list }} {{ [0, 1, '', 'a', none]|select|list }} {{ l|select('greaterthan', 1)|list }} {{ l|select('in', [1, 3])|list }}", None),
    ("filters_selectattr", "{{ msgs|selectattr('role', 'equalto', 'user')|map(attribute='content')|list }} {{ msgs|rejectattr('role', 'eq', 'user')|list|length }} {{ msgs|selectattr('tool_calls')|list|length }} {{ msgs|selectattr('tool_calls', 'defined')|map(attribute='tool_calls.0.function.name')|list }}", None),
    ("generator_truthiness", "{{ (el|select)|list }}|{% if el|select %}gen-true{% endif %}|{% if el|select|list %}list-true{% else %}list-false{% endif %}", None),
    ("generator_length_error", "{{ l|select('odd')|length }}", None),
    ("generator_one_pass", "{% set g = l|map('string') %}{{ g|join }}|{{ g|join }}|", None),
    ("filters_min_max_sum", "{{ l|min }} {{ l|max }} {{ words|min }} {{ words|max(case_sensitive=true) }} {{ l|sum }} {{ [1.5, 2]|sum(start=10) }} {{ msgs|map(attribute='content')|map('length')|sum }} {{ el|max }}|", None),
    ("filters_batch_slice", "{{ range(7)|batch(3)|list }} {{ range(7)|batch(3, 'x')|list }} {{ range(7)|slice(3)|list }}", None),
    ("filters_attr", "{{ d|attr('b') }}|{{ d|attr('keys') is callable }}|{{ msgs[0]|attr('role') }}|", None),
    # ---- tojson -----------------------------------------------------------------------------------
    ("tojson_basic", "{{ d|tojson }}|{{ msgs|tojson }}|{{ s|tojson }}|{{ cjk|tojson }}|{{ 'a\"b\\\\c\\n\\t\\u0001\\u007f'|tojson }}|{{ none|tojson }}|{{ floats|tojson }}|{{ (1, 2)|tojson }}", None),
    ("tojson_options", "{{ d|tojson(indent=2) }}|{{ nested|tojson(indent=4) }}|{{ d|tojson(sort_keys=true) }}|{{ d|tojson(separators=(',', ':')) }}|{{ cjk|tojson(ensure_ascii=true) }}|{{ el|tojson(indent=2) }}|{{ {}|tojson(indent=2) }}|{{ l|tojson(indent='\\t') }}", None),
    ("tojson_keys", "{{ {1: 'a', 2.5: 'b', true: 'c', none: 'd'}|tojson }}", None),
    ("tojson_unserializable", "{{ namespace()|tojson }}", None),
    # ---- tests --------------------------------------------------------------------------------------
    ("tests_types", "{{ 1 is number }} {{ true is number }} {{ true is integer }} {{ 1 is integer }} {{ 1.0 is float }} {{ 's' is string }} {{ d is mapping }} {{ l is sequence }} {{ d is sequence }} {{ s is iterable }} {{ 1 is iterable }} {{ none is none }} {{ true is boolean }} {{ 0 is false }} {{ false is false }} {{ true is true }} {{ range is callable }}", None),
    ("tests_values", "{{ 3 is odd }} {{ 4 is even }} {{ 9 is divisibleby 3 }} {{ 9 is divisibleby(4) }} {{ 'abc' is lower }} {{ 'ABC' is upper }} {{ 'Abc' is lower }} {{ 2 is in [1, 2] }} {{ 2 is eq 2 }} {{ 2 is equalto 3 }} {{ 3 is gt 2 }} {{ 3 is ge 3 }} {{ 2 is lt 1 }} {{ 2 is le 2 }} {{ 2 is ne 3 }} {{ n is sameas none }} {{ 'upper' is filter }} {{ 'nope' is filter }} {{ 'odd' is test }}", None),
    ("tests_negated", "{{ 1 is not string }} {{ u is not defined }} {{ n is not none }}", None),
    # ---- str / dict / list methods ---------------------------------------------------------------
    ("str_methods", "{{ s.upper() }}|{{ s.startswith('hé') }}|{{ s.endswith(('x', 'ld')) }}|{{ s.split() }}|{{ 'a,b,,c'.split(',') }}|{{ 'a b c'.split(' ', 1) }}|{{ 'a b c'.rsplit(' ', 1) }}|{{ '  x  '.strip() }}|{{ 'xxax'.lstrip('x') }}|{{ 'axx'.rstrip('x') }}|{{ s.replace('l', 'L') }}|{{ s.find('wö') }}|{{ s.count('l') }}|{{ s.title() }}|{{ s.capitalize() }}", None),
    ("str_methods_more", "{{ '-'.join(['a', 'b']) }}|{{ 'a\\nb\\r\\nc'.splitlines() }}|{{ 'abc'.center(9, '*') }}|{{ 'ab'.ljust(4, '.') }}|{{ 'ab'.rjust(4) }}|{{ '42'.zfill(5) }}|{{ 'a=b=c'.partition('=') }}|{{ 'a=b=c'.rpartition('=') }}|{{ 'prefix_x'.removeprefix('prefix_') }}|{{ 'x.py'.removesuffix('.py') }}|{{ '123'.isdigit() }}|{{ 'abc'.isalpha() }}|{{ ' '.isspace() }}|{{ 'Hello'.swapcase() }}|{{ 'abc'.index('c') }}|{{ 'abcabc'.rfind('b') }}", None),
    ("str_format_method", "{{ '{} and {}'.format('a', 1) }}|{{ '{0}{1}{0}'.format('x', 'y') }}|{{ '{name}: {v:.2f}'.format(name='pi', v=3.14159) }}|{{ '{:>6}|{:<4}|{:^5}|{:05d}|{:,}'.format('r', 'l', 'c', 42, 1234567) }}|{{ '{!r}'.format('q') }}", None),
    ("str_split_edge", "{{ ''.split() }} {{ ''.split(',') }} {{ '  a  b  '.split(none, 1) }} {{ '  a  b  '.rsplit(none, 1) }} {{ 'aXbXc'.split('X', -1) }}", None),
    ("str_method_error", "{{ 'a'.split('') }}", None),
    ("dict_methods", "{{ d.keys()|list }} {{ d.values()|list|length }} {% for k, v in d.items() %}{{ k }}{% endfor %} {{ d.copy() == d }}", None),
    ("list_methods", "{{ l.index(1) }} {{ l.count(3) }} {{ l.copy() }} {{ (1, 2, 1).count(1) }}", None),
    ("list_pop_mutates", "{% set x = [1, 2, 3] %}{{ x.pop() }}{{ x }}{{ x.pop(0) }}{{ x }}", None),
    ("list_append_refused", "{% set x = [1] %}{{ x.append }}|{{ x.append(2) }}", None),
    ("dict_update_refused", "{{ d.update({'z': 1}) }}", None),
    # ---- globals ----------------------------------------------------------------------------------
    ("range_forms", "{{ range(0)|list }} {{ range(-3)|list }} {{ range(2, 5)|list }} {{ range(5, 2, -1)|list }} {{ range(3)|length }} {{ range(3)[1] }}", None),
    ("range_too_big", "{{ range(100001)|length }}", None),
    ("raise_exception", "{% if msgs|length > 2 %}{{ raise_exception('Too many messages: ' ~ msgs|length) }}{% endif %}ok", None),
    ("raise_exception_unicode", "{{ raise_exception('Rôles doivent alterner — 交替') }}", None),
    ("strftime_now", "{{ strftime_now('%Y') }}", None),
    ("joiner", "{% set sep = joiner(', ') %}{% for x in l %}{{ sep() }}{{ x }}{% endfor %}", None),
    ("special_tokens", "{{ bos_token }}|{{ eos_token }}|{{ pad_token }}|{{ unk_token is defined }}|{{ additional_special_tokens }}|{{ image_token }}", None),
    ("default_variables", "{{ tools }}|{{ documents }}|{{ add_generation_prompt }}|{{ tools is defined }}|{{ messages is defined }}", None),
    # ---- realistic templates (written for these tests, in the styles real models use) -------------
    ("style_tool_schema_macros", """{%- macro py_type(t) -%}
{%- if t is mapping -%}{{ py_type(t.type) }}
{%- elif t == 'string' -%}str{%- elif t == 'integer' -%}int{%- elif t == 'number' -%}float{%- elif t == 'boolean' -%}bool
{%- elif t == 'array' -%}list{%- elif t == 'object' -%}dict{%- else -%}Any{%- endif -%}
{%- endmacro -%}
{%- for tool in tools %}
def {{ tool.function.name }}(
{%- for name, spec in tool.function.parameters.properties|dictsort -%}
{{ name }}: {{ py_type(spec) }}{{ ' = ' ~ spec.default|tojson if spec.default is defined }}{{ ', ' if not loop.last }}
{%- endfor %}):
    \"\"\"{{ tool.function.description|trim }}\"\"\"
{% endfor %}""", [{"tools": [{"type": "function", "function": {"name": "get_weather", "description": " Weather now. ",
        "parameters": {"type": "object", "properties": {"city": {"type": "string"}, "days": {"type": "integer", "default": 1},
                       "units": {"type": "string", "enum": ["c", "f"]}, "detail": {"type": "boolean", "default": False}}}}}]}]),
    ("style_dated_system_prompt", """{{- bos_token }}
{%- if messages[0].role == 'system' %}{% set system = messages[0].content|trim %}{% set messages = messages[1:] %}{% else %}{% set system = '' %}{% endif %}
{{- '<|header|>system<|end_header|>\n\n' }}
{{- 'Cutting Knowledge Date: December 2023\n' }}
{%- if tools is not none %}{{- 'Tools:\n' }}{% for t in tools %}{{ t|tojson(indent=4) }}{{ '\n\n' }}{% endfor %}{% endif %}
{{- system }}{{ '<|eot|>' }}
{%- for message in messages %}
  {%- if message.role == 'assistant' and message.tool_calls is defined %}
    {%- for call in message.tool_calls %}{{ '<|header|>assistant<|end_header|>\n\n{"name": "' + call.function.name + '", "parameters": ' + call.function.arguments|tojson + '}<|eot|>' }}{% endfor %}
  {%- elif message.role in ['tool', 'ipython'] %}{{ '<|header|>ipython<|end_header|>\n\n' + (message.content|tojson if message.content is mapping else message.content) + '<|eot|>' }}
  {%- else %}{{ '<|header|>' + message.role + '<|end_header|>\n\n' + message.content|trim + '<|eot|>' }}{% endif %}
{%- endfor %}
{%- if add_generation_prompt %}{{ '<|header|>assistant<|end_header|>\n\n' }}{% endif %}""", [
        {"messages": [{"role": "system", "content": "  Be helpful.  "}, {"role": "user", "content": "Weather?"},
                      {"role": "assistant", "tool_calls": [{"function": {"name": "w", "arguments": {"city": "Zürich"}}}]},
                      {"role": "tool", "content": {"temp": 3}}, {"role": "user", "content": "ok"}],
         "tools": [{"type": "function", "function": {"name": "w", "parameters": {}}}], "add_generation_prompt": True},
        {"messages": [{"role": "user", "content": "hi"}]}]),
    ("style_alternation_check", """{%- if messages[0]['role'] == 'system' %}{%- set loop_messages = messages[1:] %}{%- set sys = messages[0]['content'] %}{%- else %}{%- set loop_messages = messages %}{%- endif %}
{{- bos_token }}
{%- for message in loop_messages %}
    {%- if (message['role'] == 'user') != (loop.index0 % 2 == 0) %}
        {{- raise_exception('After the optional system message, conversation roles must alternate user/assistant/user/assistant/...') }}
    {%- endif %}
    {%- if message['role'] == 'user' %}
        {%- if loop.last and sys is defined %}{{- ' [INST] ' + sys + '\n\n' + message['content'] + ' [/INST]' }}
        {%- else %}{{- ' [INST] ' + message['content'] + ' [/INST]' }}{%- endif %}
    {%- elif message['role'] == 'assistant' %}{{- ' ' + message['content']|trim + eos_token }}
    {%- else %}{{- raise_exception('Only user and assistant roles are supported, with the exception of an initial optional system message!') }}
    {%- endif %}
{%- endfor %}""", [
        {"messages": [{"role": "system", "content": "S"}, {"role": "user", "content": "a"}, {"role": "assistant", "content": " b "}, {"role": "user", "content": "c"}]},
        {"messages": [{"role": "user", "content": "a"}, {"role": "user", "content": "b"}]},
        {"messages": [{"role": "user", "content": "a"}, {"role": "tool", "content": "b"}]}]),
    ("style_documents", """{% if documents %}{% for doc in documents %}Document {{ loop.index0 }}
{% for key, value in doc.items() %}{{ key|capitalize }}: {{ value }}
{% endfor %}{% endfor %}{% endif %}{% for m in messages %}<|{{ m.role|upper }}|>{{ m.content }}{% if not loop.last %}\n{% endif %}{% endfor %}""", [
        {"messages": [{"role": "user", "content": "Summarize"}], "documents": [{"title": "Tall penguins", "text": "Emperor penguins are the tallest."}, {"title": "Habitats", "snippet": "Antarctica"}]}]),
    ("style_reasoning_split", """{%- for m in messages %}{%- if m.role == 'assistant' and '</think>' in m.content %}{%- set parts = m.content.split('</think>') %}[{{ parts[0].split('<think>')[-1].strip() }}|{{ parts[-1].lstrip('\n') }}]{%- else %}[{{ m.content }}]{%- endif %}{%- endfor %}""", [
        {"messages": [{"role": "user", "content": "q"}, {"role": "assistant", "content": "<think>\n  plan  \n</think>\n\nanswer"}]}]),
    # ---- errors that jinja2 raises too -------------------------------------------------------------
    ("error_concat_types", "{{ 'a' + 1 }}", None),
    ("error_division_by_zero", "{{ 1 / 0 }}", None),
    ("error_modulo_by_zero", "{{ 1 % 0 }}", None),
    ("error_not_callable", "{{ s() }}", None),
    ("error_unhashable", "{{ {[1]: 2} }}", None),
    ("error_step_zero", "{{ l[::0] }}", None),
    ("error_len_int", "{{ 5|length }}", None),
    ("error_items_non_mapping", "{{ l|items|list }}", None),
    ("syntax_unknown_filter", "{{ x|no_such_filter }}", None),
    ("syntax_unknown_test", "{{ x is no_such_test }}", None),
    ("syntax_unknown_tag", "{% frobnicate %}", None),
    ("syntax_unclosed_block", "{% if true %}never closed", None),
    ("syntax_unclosed_variable", "{{ 1 + ", None),
    ("syntax_bad_expression", "{{ 1 + }}", None),
    ("syntax_unbalanced", "{{ (1 }}", None),
    ("syntax_extra_end", "{% endif %}", None),
    ("syntax_break_outside_loop", "{% break %}", None),
    ("syntax_bad_string_escape", "{{ '\\x4' }}", None),
    ("syntax_unclosed_comment", "{# never closed", None),
    ("syntax_assign_to_literal", "{% set true = 1 %}", None),
]
