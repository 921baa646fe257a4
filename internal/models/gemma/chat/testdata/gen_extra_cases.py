# Regenerates extra-cases.jsonl: python3 gen_extra_cases.py > extra-cases.jsonl
# Needs Jinja2 (3.1.x). Renders the official templates from ../shared in the
# environment Hugging Face transformers' apply_chat_template uses.
import json, jinja2
from jinja2.sandbox import ImmutableSandboxedEnvironment
from jinja2.ext import loopcontrols
def raise_exception(message):
    raise jinja2.exceptions.TemplateError(message)
def tojson(x, ensure_ascii=False, indent=None, separators=None, sort_keys=False):
    return json.dumps(x, ensure_ascii=ensure_ascii, indent=indent, separators=separators, sort_keys=sort_keys)
env = ImmutableSandboxedEnvironment(trim_blocks=True, lstrip_blocks=True, extensions=[loopcontrols])
env.filters['tojson'] = tojson
env.globals['raise_exception'] = raise_exception
import os
# shared/ lies next to the repository root; this file is internal/models/gemma/chat/testdata/.
SHARED = os.path.join(os.path.dirname(os.path.abspath(__file__)), *[os.pardir] * 6, 'shared', 'testdata')
T = os.path.join(SHARED, 'chat-templates') + os.sep
g4 = env.from_string(open(T+'google-gemma-4-31B-it.jinja').read())
g3 = env.from_string(json.load(open(os.path.join(SHARED, 'gemma3-tokenizer', 'tokenizer_config.json')))['chat_template'])
def render(t, inp):
    kw = dict(inp)
    kw.setdefault('bos_token', '<bos>')
    try:
        return t.render(**kw), None
    except Exception as e:
        return None, type(e).__name__ + ': ' + str(e)
# Generates extra chat-format cases by rendering the official templates with Jinja2
# in the environment transformers uses. Output: one JSON object per line:
# {"name", "input", "gemma4", "gemma4_error", "gemma3", "gemma3_error"}.
import json, random, sys

W = {"type": "function", "function": {"name": "get_weather", "description": "Current weather for a city.",
     "parameters": {"type": "object", "properties": {"city": {"type": "string", "description": "City name"},
     "unit": {"type": "string", "enum": ["celsius", "fahrenheit"]}}, "required": ["city"]}}}
cases = []
def add(name, **inp):
    cases.append((name, inp))

add("empty-system-only", messages=[{"role": "system", "content": "  sys  "}], add_generation_prompt=True)
add("developer-role", messages=[{"role": "developer", "content": "dev\n"}, {"role": "user", "content": "hi"}], add_generation_prompt=True)
add("system-parts", messages=[{"role": "system", "content": [{"type": "text", "text": "Be nice. It's 'ok'"}]}, {"role": "user", "content": "hi"}], add_generation_prompt=True)
add("system-null", messages=[{"role": "system", "content": None}, {"role": "user", "content": "hi"}], add_generation_prompt=False)
add("system-missing-content", messages=[{"role": "system"}, {"role": "user", "content": "hi"}])
add("thinking-tools-system", messages=[{"role": "system", "content": "S"}, {"role": "user", "content": "q"}], tools=[W], enable_thinking=True, add_generation_prompt=True)
add("thinking-null", messages=[{"role": "user", "content": "q"}], enable_thinking=None, add_generation_prompt=True)
add("thinking-false", messages=[{"role": "user", "content": "q"}], enable_thinking=False, add_generation_prompt=True)
add("thinking-1", messages=[{"role": "user", "content": "q"}], enable_thinking=1, add_generation_prompt=1)
add("agp-string", messages=[{"role": "user", "content": "q"}], add_generation_prompt="yes")
add("no-agp-key", messages=[{"role": "user", "content": "q"}])
add("assistant-last", messages=[{"role": "user", "content": "q"}, {"role": "assistant", "content": " a "}], add_generation_prompt=True)
add("model-role-literal", messages=[{"role": "user", "content": "q"}, {"role": "model", "content": "x<|channel>t<channel|>y"}], add_generation_prompt=True)
add("strip-thinking-variants", messages=[{"role": "user", "content": "q"},
    {"role": "assistant", "content": "  <|channel>a<channel|>b<channel|>c<|channel>d<|channel>e<channel|>f  "}, {"role": "user", "content": "r"}], add_generation_prompt=True)
add("assistant-parts", messages=[{"role": "user", "content": [{"type": "image"}, {"type": "text", "text": "  what  "}, {"type": "audio"}, {"type": "video"}, {"type": "image_url", "image_url": {"url": "x"}}]},
    {"role": "assistant", "content": [{"type": "text", "text": " <|channel>t<channel|> x "}, {"type": "text", "text": "y"}]}], add_generation_prompt=True)
add("image-last-gen", messages=[{"role": "user", "content": [{"type": "text", "text": "see"}, {"type": "image"}]}], add_generation_prompt=True, enable_thinking=True)
add("two-users", messages=[{"role": "user", "content": "a"}, {"role": "user", "content": "b"}], add_generation_prompt=True)
add("later-system", messages=[{"role": "user", "content": "a"}, {"role": "system", "content": "b"}, {"role": "assistant", "content": "c"}], add_generation_prompt=True)
add("consecutive-assistant", messages=[{"role": "user", "content": "a"}, {"role": "assistant", "content": "b"}, {"role": "assistant", "content": "c"}], add_generation_prompt=True)
TC = lambda i, n, a: {"id": i, "type": "function", "function": {"name": n, "arguments": a}}
add("tool-call-no-response", messages=[{"role": "user", "content": "w"}, {"role": "assistant", "tool_calls": [TC("c1", "get_weather", {"city": "Paris"})]}], tools=[W], add_generation_prompt=True)
add("tool-call-with-content-null", messages=[{"role": "user", "content": "w"}, {"role": "assistant", "content": None, "tool_calls": [TC("c1", "get_weather", {"city": "Paris"})]},
    {"role": "tool", "tool_call_id": "c1", "content": "rain"}], tools=[W], add_generation_prompt=True)
add("tool-round-then-answer", messages=[{"role": "user", "content": "w"}, {"role": "assistant", "content": "", "tool_calls": [TC("c1", "get_weather", {"city": "Paris"})]},
    {"role": "tool", "tool_call_id": "c1", "content": "rain"}, {"role": "assistant", "content": "It rains."}, {"role": "user", "content": "thanks"}], tools=[W], add_generation_prompt=True)
add("tool-round-content-with-calls", messages=[{"role": "user", "content": "w"}, {"role": "assistant", "content": "Let me check.", "tool_calls": [TC("c1", "get_weather", {"city": "Paris"})]},
    {"role": "tool", "tool_call_id": "c1", "content": "rain"}], tools=[W], add_generation_prompt=True)
add("tool-name-fallback", messages=[{"role": "user", "content": "w"}, {"role": "assistant", "tool_calls": [TC("c1", "get_weather", {"city": "Paris"})]},
    {"role": "tool", "tool_call_id": "zz", "name": "other", "content": "rain"}], add_generation_prompt=True)
add("tool-no-name-no-match", messages=[{"role": "user", "content": "w"}, {"role": "assistant", "tool_calls": [TC("c1", "get_weather", {"city": "Paris"})]},
    {"role": "tool", "tool_call_id": "zz", "content": "rain"}], add_generation_prompt=True)
add("tool-ids-absent", messages=[{"role": "user", "content": "w"}, {"role": "assistant", "tool_calls": [{"function": {"name": "f", "arguments": {}}}]},
    {"role": "tool", "content": "r"}], add_generation_prompt=True)
add("tool-content-parts", messages=[{"role": "user", "content": "w"}, {"role": "assistant", "tool_calls": [TC("c1", "f", {"a": 1})]},
    {"role": "tool", "tool_call_id": "c1", "content": [{"type": "text", "text": "A"}, {"type": "image"}, {"type": "text", "text": "B"}]}], add_generation_prompt=True)
add("tool-content-object-empty", messages=[{"role": "user", "content": "w"}, {"role": "assistant", "tool_calls": [TC("c1", "f", {})]},
    {"role": "tool", "tool_call_id": "c1", "content": {}}], add_generation_prompt=True)
add("tool-content-number-null", messages=[{"role": "user", "content": "w"}, {"role": "assistant", "tool_calls": [TC("c1", "f", {}), TC("c2", "g", {})]},
    {"role": "tool", "tool_call_id": "c1", "content": 3.5}, {"role": "tool", "tool_call_id": "c2", "content": None}, {"role": "tool", "tool_call_id": "c2"}], add_generation_prompt=True)
add("tool-args-string", messages=[{"role": "user", "content": "w"}, {"role": "assistant", "tool_calls": [TC("c1", "f", "{\"x\": 1}")]}], add_generation_prompt=True)
add("tool-args-types", messages=[{"role": "user", "content": "w"}, {"role": "assistant", "tool_calls": [TC("c1", "f",
    {"s": "str", "i": 42, "neg": -7, "f": 1.5, "e": 1e-07, "big": 1e22, "z": 0.0, "t": True, "fa": False, "n": None,
     "arr": [1, "two", [3], {"k": "v"}], "obj": {"B": 1, "a": {"c": [True]}}, "Zed": "upper", "empty": [], "eo": {}})]}], add_generation_prompt=True)
add("reasoning-after-last-user", messages=[{"role": "user", "content": "w"}, {"role": "assistant", "reasoning_content": "think A", "tool_calls": [TC("c1", "f", {"a": "b"})]},
    {"role": "tool", "tool_call_id": "c1", "content": "r1"}, {"role": "assistant", "reasoning": "think B", "content": "done", "tool_calls": [TC("c2", "g", {})]}], add_generation_prompt=True, enable_thinking=True)
add("reasoning-before-last-user", messages=[{"role": "user", "content": "w"}, {"role": "assistant", "reasoning_content": "old", "tool_calls": [TC("c1", "f", {})]},
    {"role": "tool", "tool_call_id": "c1", "content": "r1"}, {"role": "assistant", "content": "ok"}, {"role": "user", "content": "again"}], add_generation_prompt=True)
add("reasoning-without-tools", messages=[{"role": "user", "content": "w"}, {"role": "assistant", "reasoning_content": "hidden", "content": "ans"}], add_generation_prompt=False)
add("legacy-tool-responses", messages=[{"role": "user", "content": "w"}, {"role": "assistant", "tool_calls": [TC("c1", "f", {"a": 1})],
    "tool_responses": [{"name": "f", "response": {"temp": 12, "Sky": "clear", "list": [1, 2]}}, {"response": "plain"}, {"name": "g", "response": [1, "x"]}, {"name": "h"}]}], add_generation_prompt=True)
add("legacy-tool-responses-with-content", messages=[{"role": "user", "content": "w"}, {"role": "assistant", "content": "after", "tool_responses": [{"name": "f", "response": 5}]}], add_generation_prompt=True)
add("user-tool-responses", messages=[{"role": "user", "content": "w", "tool_responses": [{"name": "f", "response": True}]}], add_generation_prompt=True)
add("tool-message-first", messages=[{"role": "tool", "content": "x"}, {"role": "user", "content": "w"}], add_generation_prompt=True)
add("tools-empty-list", messages=[{"role": "user", "content": "w"}], tools=[], add_generation_prompt=True)
add("tool-response-decl", messages=[{"role": "user", "content": "w"}], tools=[{"type": "function", "function": {"name": "f", "description": "d",
    "parameters": {"type": "object", "properties": {}}, "response": {"type": "object", "description": "resp"}}},
    {"type": "function", "function": {"name": "g", "description": "d2", "response": {"type": "string"}}},
    {"type": "function", "function": {"name": "h"}}], add_generation_prompt=True)
add("tool-params-no-type", messages=[{"role": "user", "content": "w"}], tools=[{"type": "function", "function": {"name": "f", "description": "d",
    "parameters": {"properties": {"a": {"type": "integer"}}, "required": ["a"]}}}], add_generation_prompt=True)
add("schema-rich", messages=[{"role": "user", "content": "w"}], tools=[{"type": "function", "function": {"name": "f", "description": "Rich <|\"|> 'q'",
    "parameters": {"type": "object", "properties": {
        "b": {"type": "boolean", "description": "flag", "nullable": True},
        "Alpha": {"type": "number", "description": ""},
        "nested": {"type": "object", "description": "n", "properties": {"x": {"type": "string", "enum": ["p", "q"]}, "y": {"type": "array", "items": {"type": "integer"}}}, "required": ["x"]},
        "bare_obj": {"type": "object", "additionalProperties": {"type": "string"}, "title": "T"},
        "null_props": {"type": "object", "properties": None},
        "arr2": {"type": "array", "items": {"type": ["string", "null"], "enum": ["a", None], "description": "item", "minItems": 1, "nullval": None, "required": "xy"}},
        "arr3": {"type": "array", "items": {}},
        "arr4": {"type": "array", "items": [{"type": "string"}]},
        "str_noenum": {"type": "STRING", "enum": []},
        "typelist": {"type": ["string", "integer"]},
        "notype": {"description": "none"},
        "num_enum": {"type": "string", "enum": [1, 2.5, True, None, {"k": "v"}]},
        "description": {"type": "string"},
        "type": {"type": "string"},
        "weird": "just a string",
        "weird2": 5
    }, "required": ["nested", "b"]}}}], add_generation_prompt=True)
add("case-sort", messages=[{"role": "user", "content": "w"}, {"role": "assistant", "tool_calls": [TC("c", "f", {"b": 1, "B": 2, "a": 3, "A": 4, "_": 5, "Z": 6, "é": 7, "E": 8})]}], add_generation_prompt=True)
add("unicode-and-ws", messages=[{"role": "system", "content": "\u3000\u00a0Système\x1c\n"}, {"role": "user", "content": "\u2003héllo 🌍\u200b\t"}], add_generation_prompt=True)
add("content-number", messages=[{"role": "user", "content": 5}], add_generation_prompt=True)
add("content-null-user", messages=[{"role": "user", "content": None}], add_generation_prompt=True)
add("content-missing-user", messages=[{"role": "user"}], add_generation_prompt=True)
add("content-dict", messages=[{"role": "user", "content": {"type": "text", "text": "x"}}], add_generation_prompt=True)
add("text-part-non-string", messages=[{"role": "user", "content": [{"type": "text", "text": 12}, {"type": "text"}, {"type": "text", "text": None}, "str-part"]}], add_generation_prompt=True)
add("empty-messages", messages=[], add_generation_prompt=True)
add("role-missing", messages=[{"content": "x"}], add_generation_prompt=True)
add("system-list-repr", messages=[{"role": "system", "content": [{"type": "text", "text": "a\"b'c\\d\n\u00e9\u00a0\x7f\U0001F600"}, 1.0, -0.0, 1e16, 1e-5, 123456789012345678901234567890, None, True]}, {"role": "user", "content": "u"}])
add("system-repr-quotes", messages=[{"role": "system", "content": [{"t": "it's"}, {"t": "both ' and \""}, {"t": "\u0085\u2028\u00ad"}]}, {"role": "user", "content": "u"}])
add("g3-alternation-tool-odd", messages=[{"role": "user", "content": "a"}, {"role": "tool", "content": "b"}], add_generation_prompt=True)
add("g3-system-parts", messages=[{"role": "system", "content": [{"type": "text", "text": " sys "}, {"type": "text", "text": "ignored"}]}, {"role": "user", "content": " u "}], add_generation_prompt=True)
add("g3-system-parts-image-first", messages=[{"role": "system", "content": [{"type": "image"}]}, {"role": "user", "content": "u"}])
add("g3-assistant-first", messages=[{"role": "assistant", "content": "a"}])
add("g3-only-system", messages=[{"role": "system", "content": "s"}], add_generation_prompt=True)
add("g3-system-then-assistant", messages=[{"role": "system", "content": "s"}, {"role": "user", "content": "u"}, {"role": "assistant", "content": [{"type": "text", "text": " x "}, {"type": "image"}]}])
add("float-edge", messages=[{"role": "user", "content": "w"}, {"role": "assistant", "tool_calls": [TC("c", "f", {"a": 1e15, "b": 1e16, "c": 0.0001, "d": 0.00001, "e": 123.456, "f": -2.5e-300, "g": 1.7976931348623157e308, "h": 5e-324, "i": 100.0, "j": 12345678901234567.0})]}], add_generation_prompt=True)
add("duplicate-keys", messages=[{"role": "user", "content": "w"}, {"role": "assistant", "tool_calls": [TC("c", "f", {"x": 1})]}], add_generation_prompt=True)
add("tool-call-id-numeric", messages=[{"role": "user", "content": "w"}, {"role": "assistant", "tool_calls": [TC(1, "f", {}), TC("1", "g", {})]},
    {"role": "tool", "tool_call_id": 1.0, "content": "a"}, {"role": "tool", "tool_call_id": True, "content": "b"}, {"role": "tool", "tool_call_id": "1", "content": "c"}], add_generation_prompt=True)
add("tools-then-tool-interrupted", messages=[{"role": "user", "content": "w"}, {"role": "assistant", "tool_calls": [TC("c1", "f", {})]},
    {"role": "tool", "tool_call_id": "c1", "content": "a"}, {"role": "user", "content": "x"}, {"role": "tool", "tool_call_id": "c1", "content": "b"}], add_generation_prompt=True)
add("args-nested-strings", messages=[{"role": "user", "content": "w"}, {"role": "assistant", "tool_calls": [TC("c", "run", {"code": "print(\"hi\")\n# {x: [1]}", "k": {"in": {"de": "e p"}}})]}])

U = {"role": "user", "content": "w"}
add("err-role-number", messages=[{"role": 5, "content": "x"}], add_generation_prompt=True)
add("err-tool-calls-string", messages=[U, {"role": "assistant", "tool_calls": "abc"}])
add("err-tool-call-no-function", messages=[U, {"role": "assistant", "tool_calls": [{"id": "a"}]}])
add("err-function-name-number", messages=[U, {"role": "assistant", "tool_calls": [{"function": {"name": 7, "arguments": {}}}]}])
add("err-reasoning-number", messages=[U, {"role": "assistant", "reasoning": 5, "tool_calls": [TC("a", "f", {})]}])
add("reasoning-number-no-calls", messages=[U, {"role": "assistant", "reasoning": 5, "content": "c"}])
add("err-tool-parts-string", messages=[U, {"role": "assistant", "tool_calls": [TC("a", "f", {})]}, {"role": "tool", "tool_call_id": "a", "content": ["s"]}])
add("err-tool-parts-text-missing", messages=[U, {"role": "assistant", "tool_calls": [TC("a", "f", {})]}, {"role": "tool", "tool_call_id": "a", "content": [{"type": "text"}]}])
add("err-tool-content-dict", messages=[U, {"role": "assistant", "tool_calls": [TC("a", "f", {})]}, {"role": "tool", "tool_call_id": "a", "content": {"k": 1}}])
add("err-tools-dict", messages=[U], tools={"a": 1})
add("err-tools-element-string", messages=[U], tools=["f"])
add("tools-function-string", messages=[U], tools=[{"function": "has response inside"}, {"function": "plain"}])
add("err-props-list", messages=[U], tools=[{"function": {"name": "f", "parameters": {"properties": [1]}}}])
add("err-required-number", messages=[U], tools=[{"function": {"name": "f", "parameters": {"required": 3}}}])
add("required-string", messages=[U], tools=[{"function": {"name": "f", "parameters": {"required": "ab", "type": "object"}}}])
add("err-items-type-number", messages=[U], tools=[{"function": {"name": "f", "parameters": {"properties": {"a": {"type": "array", "items": {"type": 3}}}}}}])
add("items-type-dict", messages=[U], tools=[{"function": {"name": "f", "parameters": {"properties": {"a": {"type": "array", "items": {"type": {"x": 1, "y": 2}}}}}}}])
add("err-model-part-text-number", messages=[U, {"role": "assistant", "content": [{"type": "text", "text": 3}]}])
add("err-legacy-name-null", messages=[U, {"role": "assistant", "tool_responses": [{"name": None, "response": 1}]}])
add("err-messages-null-element", messages=[None])
add("messages-second-null", messages=[U, None])
add("err-first-string", messages=["hello"])
add("response-in-list", messages=[U], tools=[{"function": ["response"]}])
add("err-response-decl-none", messages=[U], tools=[{"function": {"name": "f", "response": None}}])
add("err-think-ok-empty", messages=[], enable_thinking=True)

rng = random.Random(1234)
def rstr():
    return rng.choice(["a", "B", "x y", "", "né", "q\"t", "'s", "{k:v}", "[1]", "  sp  ", "\n", "<b>"])
def rval(d=0):
    r = rng.random()
    if d > 2 or r < 0.5:
        return rng.choice([rstr(), rng.randint(-100, 100), rng.choice([0.5, -1.25, 3.0, 1e-9, 2e20]), True, False, None])
    if r < 0.75:
        return [rval(d + 1) for _ in range(rng.randint(0, 3))]
    return {rng.choice(["a", "b", "C", "d_e", "F1", "type", "g h"]) + str(i): rval(d + 1) for i in range(rng.randint(0, 3))}
def rschema(d=0):
    t = rng.choice(["string", "integer", "number", "boolean", "array", "object", "STRING", "Object"])
    s = {"type": t}
    if rng.random() < 0.5: s["description"] = rstr()
    if rng.random() < 0.2: s["nullable"] = rng.choice([True, False])
    if t.lower() == "string" and rng.random() < 0.5: s["enum"] = [rstr() for _ in range(rng.randint(0, 3))]
    if t.lower() == "array" and rng.random() < 0.8:
        s["items"] = rschema(d + 1) if d < 2 else {"type": "string"}
    if t.lower() == "object" and d < 2 and rng.random() < 0.8:
        s["properties"] = {rng.choice(["p", "Q", "r_s", "t"]) + str(i): rschema(d + 1) for i in range(rng.randint(0, 3))}
        if rng.random() < 0.6 and s["properties"]:
            s["required"] = rng.sample(list(s["properties"]), rng.randint(1, len(s["properties"])))
    if rng.random() < 0.1: s["default"] = rval()
    return s
for n in range(40):
    tools = []
    for k in range(rng.randint(0, 3)):
        params = rschema()
        params["type"] = rng.choice(["object", "object", "OBJECT"])
        params.setdefault("properties", {"only": {"type": "string"}})
        tools.append({"type": "function", "function": {"name": "fn%d" % k, "description": rstr(), "parameters": params}})
    msgs = []
    if rng.random() < 0.5: msgs.append({"role": rng.choice(["system", "developer"]), "content": rstr()})
    msgs.append({"role": "user", "content": rstr()})
    for t in range(rng.randint(0, 3)):
        calls = [TC("id%d_%d" % (t, j), "fn%d" % j, rval() if rng.random() < 0.1 else {"k%d" % i: rval() for i in range(rng.randint(0, 4))}) for j in range(rng.randint(0, 2))]
        m = {"role": "assistant", "content": rng.choice(["", None, rstr(), "<|channel>thought\nx<channel|>ans"])}
        if calls: m["tool_calls"] = calls
        if rng.random() < 0.5: m["reasoning_content"] = rstr() or "r"
        msgs.append(m)
        for c in calls:
            msgs.append({"role": "tool", "tool_call_id": c["id"], "content": rng.choice([rstr(), json.dumps(rval())])})
        if rng.random() < 0.5: msgs.append({"role": "user", "content": rstr()})
    inp = {"messages": msgs, "add_generation_prompt": rng.random() < 0.8}
    if tools: inp["tools"] = tools
    if rng.random() < 0.5: inp["enable_thinking"] = rng.random() < 0.5
    cases.append(("random-%02d" % n, inp))


# Random conversations with roles in any order (tool results in and out of
# place, system/developer turns anywhere), bodies as strings, parts or null.
def rcontent(role):
    r = rng.random()
    if r < 0.45:
        return rng.choice([rstr(), " <|channel>thought\nx<channel|> y ", "a<channel|>b", "<|channel>open"])
    if r < 0.8:
        parts = []
        for _ in range(rng.randint(0, 3)):
            t = rng.choice(["text", "text", "image", "audio", "video", "image_url"])
            parts.append({"type": t, "text": rstr()} if t == "text" else {"type": t})
        return parts
    return rng.choice([None, ""])
for n in range(60):
    msgs = []
    ids = []
    for k in range(rng.randint(1, 7)):
        role = rng.choice(["user", "user", "assistant", "assistant", "tool", "system", "developer", "model"])
        m = {"role": role}
        if rng.random() < 0.9:
            m["content"] = rcontent(role)
        if role in ("assistant", "model") and rng.random() < 0.5:
            calls = []
            for j in range(rng.randint(1, 2)):
                cid = "t%d_%d" % (k, j)
                ids.append(cid)
                calls.append(TC(cid, "fn%d" % rng.randint(0, 2), {"x": rval()} if rng.random() < 0.8 else "{\"raw\": 1}"))
            m["tool_calls"] = calls
            if rng.random() < 0.4:
                m["reasoning_content" if rng.random() < 0.5 else "reasoning"] = rstr() or "why"
        if role == "assistant" and rng.random() < 0.1:
            m["tool_responses"] = [{"name": "fn0", "response": rval()}]
        if role == "tool":
            if ids and rng.random() < 0.8:
                m["tool_call_id"] = rng.choice(ids)
            m["name"] = "named"
            if rng.random() < 0.3:
                m["content"] = [{"type": "text", "text": rstr()}, {"type": "image"}]
        msgs.append(m)
    inp = {"messages": msgs, "add_generation_prompt": rng.random() < 0.7}
    if rng.random() < 0.4: inp["enable_thinking"] = rng.random() < 0.6
    if rng.random() < 0.2: inp["tools"] = [W]
    cases.append(("random-conv-%02d" % n, inp))

for name, inp in cases:
    rec = {"name": name, "input": inp}
    for fam, t in (("gemma4", g4), ("gemma3", g3)):
        out, err = render(t, inp)
        rec[fam] = out
        if err: rec[fam + "_error"] = err
    sys.stdout.write(json.dumps(rec, ensure_ascii=False) + "\n")
