"""Template variables for the real chat templates (tests/chat/oracle_test.py): conversations a
server sees, with and without tools, tool calls and results, reasoning, content parts, non-ASCII
text, and the inputs the templates themselves refuse."""

WEATHER_TOOL = {
    "type": "function",
    "function": {
        "name": "get_weather",
        "description": "Get the current weather in a city — \"quotes\", 'apostrophes' and ümlauts",
        "parameters": {
            "type": "object",
            "properties": {
                "city": {"type": "string", "description": "City name, e.g. 東京"},
                "unit": {"type": "string", "enum": ["celsius", "fahrenheit"]},
                "days": {"type": "integer", "minimum": 1, "maximum": 10},
                "threshold": {"type": "number", "default": 0.5},
            },
            "required": ["city"],
        },
    },
}
SEARCH_TOOL = {
    "type": "function",
    "function": {
        "name": "search",
        "description": "Search the web",
        "parameters": {"type": "object", "properties": {"q": {"type": "string"}}, "required": ["q"]},
    },
}


def user(text):
    return {"role": "user", "content": text}


def assistant(text):
    return {"role": "assistant", "content": text}


def system(text):
    return {"role": "system", "content": text}


def tool_call(name, arguments, call_id="call_1"):
    return {"id": call_id, "type": "function", "function": {"name": name, "arguments": arguments}}


CONVERSATIONS = {
    "user": {"messages": [user("Hello!")], "add_generation_prompt": True},
    "user_no_generation_prompt": {"messages": [user("Hello!")], "add_generation_prompt": False},
    "user_default_generation_prompt": {"messages": [user("Hello!")]},
    "system_multi_turn": {
        "messages": [
            system("You are a helpful assistant."),
            user("What is 2+2?"),
            assistant("4."),
            user("And 3+3?"),
        ],
        "add_generation_prompt": True,
    },
    "unicode": {
        "messages": [
            system("Réponds en français. 日本語も話せます。"),
            user("你好，世界！😀👩‍👩‍👧 ¿Qué tal? مرحبا Ελληνικά ß İ ﬁ"),
            assistant("Très bien 👍 — ça va."),
            user("Zero width\u200bjoiner and\u00a0nbsp, tab\there"),
        ],
        "add_generation_prompt": True,
    },
    "whitespace": {
        "messages": [
            system("  padded system  \n"),
            user("\n\n  lots of space \t \n"),
            assistant("   answer with trailing newline\n"),
            user("last"),
        ],
        "add_generation_prompt": True,
    },
    "template_syntax_in_content": {
        "messages": [
            user("{{ bos_token }} {% if true %}x{% endif %} {# c #} <|im_end|> \\n \"quoted\" 'single' \\ backslash"),
        ],
        "add_generation_prompt": True,
    },
    "tools": {
        "messages": [system("Use tools when needed."), user("Weather in Paris?")],
        "tools": [WEATHER_TOOL, SEARCH_TOOL],
        "add_generation_prompt": True,
    },
    "tools_no_system": {
        "messages": [user("Weather in Paris?")],
        "tools": [WEATHER_TOOL],
        "add_generation_prompt": True,
    },
    "tools_empty_list": {"messages": [user("Hi")], "tools": [], "add_generation_prompt": True},
    "tool_calls": {
        "messages": [
            user("Weather in Paris and Tokyo?"),
            {
                "role": "assistant",
                "content": "Let me check.",
                "tool_calls": [
                    tool_call("get_weather", {"city": "Paris", "unit": "celsius"}),
                    tool_call("get_weather", {"city": "東京", "days": 2, "threshold": 0.25}, "call_2"),
                ],
            },
            {"role": "tool", "tool_call_id": "call_1", "content": "{\"temp\": 21}"},
            {"role": "tool", "tool_call_id": "call_2", "content": "晴れ 25°C"},
            assistant("Paris 21°C, Tokyo 25°C."),
            user("Thanks"),
        ],
        "tools": [WEATHER_TOOL],
        "add_generation_prompt": True,
    },
    "tool_calls_string_arguments": {
        "messages": [
            user("Search cats"),
            {"role": "assistant", "content": "", "tool_calls": [tool_call("search", "{\"q\": \"cats\"}")]},
            {"role": "tool", "content": "Cats are mammals."},
        ],
        "tools": [SEARCH_TOOL],
        "add_generation_prompt": True,
    },
    "tool_calls_null_content": {
        "messages": [
            user("Search dogs"),
            {"role": "assistant", "content": None, "tool_calls": [tool_call("search", "{\"q\": \"dogs\"}")]},
            {"role": "tool", "content": "Dogs bark."},
            {"role": "tool", "content": "Second result."},
        ],
        "add_generation_prompt": True,
    },
    "reasoning_in_content": {
        "messages": [
            user("Think first"),
            assistant("<think>\nLet me think.\n</think>\n\nThe answer is 42."),
            user("Again"),
            assistant("<think>\nHmm again\n</think>\n\nStill 42."),
        ],
        "add_generation_prompt": False,
    },
    "reasoning_content_field": {
        "messages": [
            user("Q1"),
            {"role": "assistant", "content": "A1", "reasoning_content": "thinking about Q1"},
            user("Q2"),
            {"role": "assistant", "content": "A2", "reasoning_content": "thinking about Q2"},
        ],
    },
    "thinking_disabled": {"messages": [user("Quick answer")], "add_generation_prompt": True, "enable_thinking": False},
    "content_parts": {
        "messages": [
            {"role": "system", "content": [{"type": "text", "text": "System as parts."}]},
            {"role": "user", "content": [{"type": "image"}, {"type": "text", "text": "  Describe this image.  "}]},
        ],
        "add_generation_prompt": True,
    },
    "roles_not_alternating": {"messages": [user("one"), user("two")], "add_generation_prompt": True},
    "assistant_first": {"messages": [assistant("I start"), user("ok")], "add_generation_prompt": True},
    "empty_messages": {"messages": [], "add_generation_prompt": True},
    "system_only": {"messages": [system("Only a system prompt.")], "add_generation_prompt": True},
    "two_system_messages": {
        "messages": [system("First rule."), system("Second rule."), user("Go")],
        "add_generation_prompt": True,
    },
    "assistant_last": {"messages": [user("Hi"), assistant("Hello! How can I help?")], "add_generation_prompt": False},
    "long": {
        "messages": [m for i in range(12) for m in (user(f"question {i}"), assistant(f"answer {i}"))] + [user("end")],
        "add_generation_prompt": True,
    },
    "documents": {
        "messages": [user("Summarize")],
        "documents": [{"title": "Doc", "text": "Body"}],
        "add_generation_prompt": True,
    },
    "override_bos": {"messages": [user("Hi")], "bos_token": "<BOS!>", "add_generation_prompt": True},
    "content_not_a_string": {"messages": [user(42)], "add_generation_prompt": True},
}
