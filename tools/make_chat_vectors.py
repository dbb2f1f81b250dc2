#!/usr/bin/env python3
"""Reference outputs of the DeepSeek chat templates, rendered with Jinja2 exactly the way
Hugging Face transformers' `apply_chat_template` renders them (an implementation we did
not write), to test moat's C++ chat formatter.

Writes tests/data/tokenizer/chat_vectors.json:
    {"generator": ..., "templates": {NAME: TEMPLATE_TEXT}, "bos": BOS, "eos": EOS,
     "cases": [{"template": NAME, "messages": [{"role", "content"}],
                "add_generation_prompt": bool, "expected": RENDERED_TEXT}]}
Every conversation below is rendered by every template, with add_generation_prompt true
and false. The rendering is also checked against transformers' own
`transformers.utils.chat_template_utils.render_jinja_template`, and a few outputs against
expected strings that other projects (llama.cpp) publish.

Usage: /tmp/venv-goldens/bin/python tools/make_chat_vectors.py   (needs jinja2>=3.1;
transformers optional, for the cross-check)

Template sources (the chat_template field of each model's tokenizer_config.json; those files
live on the Hugging Face hub, so the text was taken from public GitHub copies):

* "deepseek3" -- deepseek-ai/DeepSeek-V3 (the release template). Copied from huggingface/huggingface.js
  packages/ollama-utils/src/chat-template-automap.ts (entry "library/deepseek-v3:671b",
  the template stored in the GGUF converted from deepseek-ai/DeepSeek-V3); the identical
  text is Together's "deepseek-ai/DeepSeek-V3" chat_template in a public model list.
  In this template the '\\n\\n' system-prompt separator and the tool-call '\\n's are real
  newline characters inside the Jinja string literals (the JSON has "\\n" escapes);
  Jinja gives the same string either way.
  The V3 text has is_first_sp; the variant that starts "... system_prompt='') %}" (no
  is_first_sp, last system message wins) is the first DeepSeek-R1 / R1-Distill template,
  kept here as "deepseek-r1-orig". V3.1 ("deepseek3.1", below) has its own format; other
  revisions (V3-0324, R1-0528) are not covered.
* "deepseek2" -- deepseek-ai/DeepSeek-V2-Chat and DeepSeek-V2-Lite-Chat (huggingface.js's
  Jinja tests give the same text for deepseek-llm-7b-chat). Copied from
  ShishirPatil/gorilla berkeley-function-call-leaderboard/bfcl/model_handler/
  local_inference/deepseek.py (docstring quoting tokenizer_config.json); the same text is
  ggml-org/llama.cpp tests/test-chat-template.cpp test "DeepSeek-V2", and the rendered
  form is the "chat template" example of deepseek-ai/DeepSeek-V2 README.md.
  Its '\\n\\n' are real newlines inside the Jinja literals (JSON "\\n\\n").
* "deepseek-r1" -- deepseek-ai/DeepSeek-R1 as updated after release (and the R1-Distill
  models' update): is_first_sp, '</think>' stripping, generation prompt
  '<｜Assistant｜><think>\\n'. Copied from ShishirPatil/gorilla
  berkeley-function-call-leaderboard/bfcl/model_handler/local_inference/
  deepseek_reasoning.py (docstring quoting tokenizer_config.json). Here the template
  text holds backslash-n (JSON "\\\\n"), which Jinja turns into a newline.
* "deepseek-r1-orig" -- the first DeepSeek-R1 / R1-Distill template (January 2025).
  Copied from Evilcarbon/DeepSeek-R1-Distill-Qwen-32B tokenizer_config.json (a copy of
  the hub file); ggml-org/llama.cpp models/templates/deepseek-ai-DeepSeek-R1-Distill-
  Qwen-32B.jinja is a reformatted later revision of it. Backslash-n in the text.

The formats, for text-only messages (no tools). BOS/EOS below are
'<｜begin▁of▁sentence｜>' / '<｜end▁of▁sentence｜>' (the bos_token / eos_token variables);
all four templates write BOS themselves as the first thing of the rendered text, so a
caller must not add another BOS when tokenizing (transformers' apply_chat_template(
tokenize=True) does not add one either). No template trims or strips whitespace of the
contents, and none raises for any role order. Roles other than system/user/assistant
(and tool) produce nothing.

deepseek3 (V3):
  BOS, then the system prompt, then the turns, then (add_generation_prompt) '<｜Assistant｜>'.
  System prompt = the contents of ALL system messages, wherever they occur, joined with
    '\\n\\n' (two newlines), placed right after BOS (before the first turn), with nothing
    around it. An empty system message still counts: ['', 'X'] gives '\\n\\nX', ['X', '']
    gives 'X\\n\\n'. System messages produce nothing at their own position.
  user:      '<｜User｜>' + content                         (nothing after it)
  assistant: '<｜Assistant｜>' + content + EOS               (content kept verbatim,
             '<think>...</think>' is NOT stripped)
  generation prompt: '<｜Assistant｜>' appended at the end whenever add_generation_prompt
    is true, even if the last message is an assistant message; nothing when false.
deepseek-r1 (R1, updated):
  exactly deepseek3, except
  assistant: content is cut to the part after the LAST '</think>' (if content contains
    '</think>'), then '<｜Assistant｜>' + that + EOS. The part after '</think>' keeps its
    leading newlines ('...</think>\\n\\nAnswer' -> '\\n\\nAnswer').
  generation prompt: '<｜Assistant｜><think>\\n' (think tag plus one newline).
deepseek-r1-orig (R1 / R1-Distill as first released):
  like deepseek-r1, except
  system prompt = the content of the LAST system message only (earlier ones are dropped;
    an empty last system message wins over a non-empty earlier one);
  generation prompt: '<｜Assistant｜>' (no '<think>\\n').
deepseek2 (V2-Chat / V2-Lite-Chat), messages rendered in order, each at its position:
  BOS first.
  system:    content + '\\n\\n'        (no prefix; a system message after turns is printed
                                      where it is; an empty one gives just '\\n\\n')
  user:      'User: ' + content + '\\n\\n'
  assistant: 'Assistant: ' + content + EOS     (a space after the colon; content verbatim,
             no '\\n\\n' after EOS, so the next 'User: ' follows EOS directly)
  generation prompt: 'Assistant:' WITHOUT a trailing space (deepseek-ai's DeepSeek-Coder-V2
    README warns that a space there degrades the 16B-Lite model's answers); nothing when
    false.
deepseek2.5 (V2.5, Coder-V2-Instruct-0724; sources at DEEPSEEK2_5 below):
  like deepseek-r1-orig without the '</think>' cut: the LAST system message only, after
  BOS; assistant '<｜Assistant｜>' + content + EOS; generation prompt '<｜Assistant｜>'.
  One quirk of the template text: each system message writes eight spaces BEFORE BOS
  (text between two tags of its joined lines).
deepseek3.1 (V3.1, V3.1-Terminus; sources at DEEPSEEK3_1 below), with thinking off (the default):
  system prompt as deepseek3 (all joined); user as deepseek3;
  assistant: '<｜Assistant｜></think>' only when the previous turn was a user turn (a reply
    after a reply has no marker), then the content cut after the FIRST '</think>', then EOS;
  generation prompt '<｜Assistant｜></think>', only when the last turn is a user turn.
"""
import json
import pathlib
import unicodedata

import jinja2
from jinja2.sandbox import ImmutableSandboxedEnvironment

ROOT = pathlib.Path(__file__).resolve().parent.parent
OUT = ROOT / "tests/data/tokenizer/chat_vectors.json"

BOS = "<｜begin▁of▁sentence｜>"
EOS = "<｜end▁of▁sentence｜>"

# deepseek-ai/DeepSeek-V3 tokenizer_config.json chat_template. A normal (non-raw) string:
# its "\n" are real newlines, as in the hub file (JSON "\n").
DEEPSEEK3 = (
    "{% if not add_generation_prompt is defined %}{% set add_generation_prompt = false %}{% endif %}"
    "{% set ns = namespace(is_first=false, is_tool=false, is_output_first=true, system_prompt='', is_first_sp=true) %}"
    "{%- for message in messages %}{%- if message['role'] == 'system' %}{%- if ns.is_first_sp %}"
    "{% set ns.system_prompt = ns.system_prompt + message['content'] %}{% set ns.is_first_sp = false %}"
    "{%- else %}{% set ns.system_prompt = ns.system_prompt + '\n\n' + message['content'] %}{%- endif %}"
    "{%- endif %}{%- endfor %}{{bos_token}}{{ns.system_prompt}}"
    "{%- for message in messages %}{%- if message['role'] == 'user' %}{%- set ns.is_tool = false -%}"
    "{{'<｜User｜>' + message['content']}}{%- endif %}"
    "{%- if message['role'] == 'assistant' and message['content'] is none %}{%- set ns.is_tool = false -%}"
    "{%- for tool in message['tool_calls']%}{%- if not ns.is_first %}"
    "{{'<｜Assistant｜><｜tool▁calls▁begin｜><｜tool▁call▁begin｜>' + tool['type'] + '<｜tool▁sep｜>' + tool['function']['name'] + '\n' + '```json' + '\n' + tool['function']['arguments'] + '\n' + '```' + '<｜tool▁call▁end｜>'}}"
    "{%- set ns.is_first = true -%}{%- else %}"
    "{{'\n' + '<｜tool▁call▁begin｜>' + tool['type'] + '<｜tool▁sep｜>' + tool['function']['name'] + '\n' + '```json' + '\n' + tool['function']['arguments'] + '\n' + '```' + '<｜tool▁call▁end｜>'}}"
    "{{'<｜tool▁calls▁end｜><｜end▁of▁sentence｜>'}}{%- endif %}{%- endfor %}{%- endif %}"
    "{%- if message['role'] == 'assistant' and message['content'] is not none %}{%- if ns.is_tool %}"
    "{{'<｜tool▁outputs▁end｜>' + message['content'] + '<｜end▁of▁sentence｜>'}}{%- set ns.is_tool = false -%}"
    "{%- else %}{{'<｜Assistant｜>' + message['content'] + '<｜end▁of▁sentence｜>'}}{%- endif %}{%- endif %}"
    "{%- if message['role'] == 'tool' %}{%- set ns.is_tool = true -%}{%- if ns.is_output_first %}"
    "{{'<｜tool▁outputs▁begin｜><｜tool▁output▁begin｜>' + message['content'] + '<｜tool▁output▁end｜>'}}"
    "{%- set ns.is_output_first = false %}{%- else %}"
    "{{'\n<｜tool▁output▁begin｜>' + message['content'] + '<｜tool▁output▁end｜>'}}{%- endif %}{%- endif %}"
    "{%- endfor -%}{% if ns.is_tool %}{{'<｜tool▁outputs▁end｜>'}}{% endif %}"
    "{% if add_generation_prompt and not ns.is_tool %}{{'<｜Assistant｜>'}}{% endif %}"
)

# deepseek-ai/DeepSeek-V2-Chat, DeepSeek-V2-Lite-Chat tokenizer_config.json chat_template
# (real newlines, as in the hub file).
DEEPSEEK2 = (
    "{% if not add_generation_prompt is defined %}{% set add_generation_prompt = false %}{% endif %}"
    "{{ bos_token }}{% for message in messages %}{% if message['role'] == 'user' %}"
    "{{ 'User: ' + message['content'] + '\n\n' }}{% elif message['role'] == 'assistant' %}"
    "{{ 'Assistant: ' + message['content'] + eos_token }}{% elif message['role'] == 'system' %}"
    "{{ message['content'] + '\n\n' }}{% endif %}{% endfor %}"
    "{% if add_generation_prompt %}{{ 'Assistant:' }}{% endif %}"
)

# deepseek-ai/DeepSeek-R1 tokenizer_config.json chat_template, updated revision. Raw strings:
# the template text holds backslash-n, as in the hub file (JSON "\\n").
DEEPSEEK_R1 = (
    r"{% if not add_generation_prompt is defined %}{% set add_generation_prompt = false %}{% endif %}"
    r"{% set ns = namespace(is_first=false, is_tool=false, is_output_first=true, system_prompt='', is_first_sp=true) %}"
    r"{%- for message in messages %}{%- if message['role'] == 'system' %}{%- if ns.is_first_sp %}"
    r"{% set ns.system_prompt = ns.system_prompt + message['content'] %}{% set ns.is_first_sp = false %}"
    r"{%- else %}{% set ns.system_prompt = ns.system_prompt + '\n\n' + message['content'] %}{%- endif %}"
    r"{%- endif %}{%- endfor %}{{ bos_token }}{{ ns.system_prompt }}"
    r"{%- for message in messages %}{%- if message['role'] == 'user' %}{%- set ns.is_tool = false -%}"
    r"{{'<｜User｜>' + message['content']}}{%- endif %}"
    r"{%- if message['role'] == 'assistant' and 'tool_calls' in message %}{%- set ns.is_tool = false -%}"
    r"{%- for tool in message['tool_calls'] %}{%- if not ns.is_first %}{%- if message['content'] is none %}"
    r"{{'<｜Assistant｜><｜tool▁calls▁begin｜><｜tool▁call▁begin｜>' + tool['type'] + '<｜tool▁sep｜>' + tool['function']['name'] + '\n' + '```json' + '\n' + tool['function']['arguments'] + '\n' + '```' + '<｜tool▁call▁end｜>'}}"
    r"{%- else %}"
    r"{{'<｜Assistant｜>' + message['content'] + '<｜tool▁calls▁begin｜><｜tool▁call▁begin｜>' + tool['type'] + '<｜tool▁sep｜>' + tool['function']['name'] + '\n' + '```json' + '\n' + tool['function']['arguments'] + '\n' + '```' + '<｜tool▁call▁end｜>'}}"
    r"{%- endif %}{%- set ns.is_first = true -%}{%- else %}"
    r"{{'\n' + '<｜tool▁call▁begin｜>' + tool['type'] + '<｜tool▁sep｜>' + tool['function']['name'] + '\n' + '```json' + '\n' + tool['function']['arguments'] + '\n' + '```' + '<｜tool▁call▁end｜>'}}"
    r"{%- endif %}{%- endfor %}{{'<｜tool▁calls▁end｜><｜end▁of▁sentence｜>'}}{%- endif %}"
    r"{%- if message['role'] == 'assistant' and 'tool_calls' not in message %}{%- if ns.is_tool %}"
    r"{{'<｜tool▁outputs▁end｜>' + message['content'] + '<｜end▁of▁sentence｜>'}}{%- set ns.is_tool = false -%}"
    r"{%- else %}{% set content = message['content'] %}{% if '</think>' in content %}"
    r"{% set content = content.split('</think>')[-1] %}{% endif %}"
    r"{{'<｜Assistant｜>' + content + '<｜end▁of▁sentence｜>'}}{%- endif %}{%- endif %}"
    r"{%- if message['role'] == 'tool' %}{%- set ns.is_tool = true -%}{%- if ns.is_output_first %}"
    r"{{'<｜tool▁outputs▁begin｜><｜tool▁output▁begin｜>' + message['content'] + '<｜tool▁output▁end｜>'}}"
    r"{%- set ns.is_output_first = false %}{%- else %}"
    r"{{'<｜tool▁output▁begin｜>' + message['content'] + '<｜tool▁output▁end｜>'}}{%- endif %}{%- endif %}"
    r"{%- endfor -%}{% if ns.is_tool %}{{'<｜tool▁outputs▁end｜>'}}{% endif %}"
    r"{% if add_generation_prompt and not ns.is_tool %}{{'<｜Assistant｜><think>\n'}}{% endif %}"
)

# The first DeepSeek-R1 / R1-Distill tokenizer_config.json chat_template (backslash-n).
DEEPSEEK_R1_ORIG = (
    r"{% if not add_generation_prompt is defined %}{% set add_generation_prompt = false %}{% endif %}"
    r"{% set ns = namespace(is_first=false, is_tool=false, is_output_first=true, system_prompt='') %}"
    r"{%- for message in messages %}{%- if message['role'] == 'system' %}"
    r"{% set ns.system_prompt = message['content'] %}{%- endif %}{%- endfor %}{{bos_token}}{{ns.system_prompt}}"
    r"{%- for message in messages %}{%- if message['role'] == 'user' %}{%- set ns.is_tool = false -%}"
    r"{{'<｜User｜>' + message['content']}}{%- endif %}"
    r"{%- if message['role'] == 'assistant' and message['content'] is none %}{%- set ns.is_tool = false -%}"
    r"{%- for tool in message['tool_calls']%}{%- if not ns.is_first %}"
    r"{{'<｜Assistant｜><｜tool▁calls▁begin｜><｜tool▁call▁begin｜>' + tool['type'] + '<｜tool▁sep｜>' + tool['function']['name'] + '\n' + '```json' + '\n' + tool['function']['arguments'] + '\n' + '```' + '<｜tool▁call▁end｜>'}}"
    r"{%- set ns.is_first = true -%}{%- else %}"
    r"{{'\n' + '<｜tool▁call▁begin｜>' + tool['type'] + '<｜tool▁sep｜>' + tool['function']['name'] + '\n' + '```json' + '\n' + tool['function']['arguments'] + '\n' + '```' + '<｜tool▁call▁end｜>'}}"
    r"{{'<｜tool▁calls▁end｜><｜end▁of▁sentence｜>'}}{%- endif %}{%- endfor %}{%- endif %}"
    r"{%- if message['role'] == 'assistant' and message['content'] is not none %}{%- if ns.is_tool %}"
    r"{{'<｜tool▁outputs▁end｜>' + message['content'] + '<｜end▁of▁sentence｜>'}}{%- set ns.is_tool = false -%}"
    r"{%- else %}{% set content = message['content'] %}{% if '</think>' in content %}"
    r"{% set content = content.split('</think>')[-1] %}{% endif %}"
    r"{{'<｜Assistant｜>' + content + '<｜end▁of▁sentence｜>'}}{%- endif %}{%- endif %}"
    r"{%- if message['role'] == 'tool' %}{%- set ns.is_tool = true -%}{%- if ns.is_output_first %}"
    r"{{'<｜tool▁outputs▁begin｜><｜tool▁output▁begin｜>' + message['content'] + '<｜tool▁output▁end｜>'}}"
    r"{%- set ns.is_output_first = false %}{%- else %}"
    r"{{'\n<｜tool▁output▁begin｜>' + message['content'] + '<｜tool▁output▁end｜>'}}{%- endif %}{%- endif %}"
    r"{%- endfor -%}{% if ns.is_tool %}{{'<｜tool▁outputs▁end｜>'}}{% endif %}"
    r"{% if add_generation_prompt and not ns.is_tool %}{{'<｜Assistant｜>'}}{% endif %}"
)

# The function-calling chat_template of DeepSeek-Coder-V2-Instruct-0724, which
# DeepSeek-V2.5 (the merge of V2-Chat-0628 and Coder-V2-Instruct-0724) ships as far as we
# know; not compared with the hub files themselves (they were out of reach). Copied from
# ShishirPatil/gorilla berkeley-function-call-leaderboard's DeepseekCoderHandler
# (docstring quoting tokenizer_config.json). The runs
# of spaces are in the hub file (its lines were joined); the ones that stand before a
# "{%" without "-" are text, so each system message writes eight spaces before BOS.
# Backslash-n in the text (JSON "\\n").
DEEPSEEK2_5 = (
    r"{% if not add_generation_prompt is defined %}{% set add_generation_prompt = false %}{% endif %}"
    r"{% set ns = namespace(is_first=false, is_tool=false, is_output_first=true, system_prompt='') %}"
    r"{%- for message in messages %}    {%- if message['role'] == 'system' %}        "
    r"{% set ns.system_prompt = message['content'] %}    {%- endif %}{%- endfor %}{{bos_token}}{{ns.system_prompt}}"
    r"{%- for message in messages %}    {%- if message['role'] == 'user' %}    {%- set ns.is_tool = false -%}"
    r"{{'<｜User｜>' + message['content']}}    {%- endif %}"
    r"    {%- if message['role'] == 'assistant' and message['content'] is none %}        {%- set ns.is_tool = false -%}"
    r"        {%- for tool in message['tool_calls']%}            {%- if not ns.is_first %}"
    r"{{'<｜Assistant｜><｜tool▁calls▁begin｜><｜tool▁call▁begin｜>' + tool['type'] + '<｜tool▁sep｜>' + tool['function']['name'] + '\n' + '```json' + '\n' + tool['function']['arguments'] + '\n' + '```' + '<｜tool▁call▁end｜>'}}"
    r"            {%- set ns.is_first = true -%}            {%- else %}"
    r"{{'\n' + '<｜tool▁call▁begin｜>' + tool['type'] + '<｜tool▁sep｜>' + tool['function']['name'] + '\n' + '```json' + '\n' + tool['function']['arguments'] + '\n' + '```' + '<｜tool▁call▁end｜>'}}"
    r"{{'<｜tool▁calls▁end｜><｜end▁of▁sentence｜>'}}                   {%- endif %}        {%- endfor %}    {%- endif %}"
    r"    {%- if message['role'] == 'assistant' and message['content'] is not none %}        {%- if ns.is_tool %}"
    r"{{'<｜tool▁outputs▁end｜>' + message['content'] + '<｜end▁of▁sentence｜>'}}        {%- set ns.is_tool = false -%}"
    r"        {%- else %}{{'<｜Assistant｜>' + message['content'] + '<｜end▁of▁sentence｜>'}}        {%- endif %}    {%- endif %}"
    r"    {%- if message['role'] == 'tool' %}        {%- set ns.is_tool = true -%}        {%- if ns.is_output_first %}"
    r"{{'<｜tool▁outputs▁begin｜><｜tool▁output▁begin｜>' + message['content'] + '<｜tool▁output▁end｜>'}}"
    r"        {%- set ns.is_output_first = false %}        {%- else %}"
    r"{{'\n<｜tool▁output▁begin｜>' + message['content'] + '<｜tool▁output▁end｜>'}}        {%- endif %}    {%- endif %}"
    r"{%- endfor -%}{% if ns.is_tool %}{{'<｜tool▁outputs▁end｜>'}}{% endif %}"
    r"{% if add_generation_prompt and not ns.is_tool %}{{'<｜Assistant｜>'}}{% endif %}"
)

# deepseek-ai/DeepSeek-V3.1 (and V3.1-Terminus) tokenizer_config.json chat_template, as
# a V3.1-Terminus GGUF carries it: logged whole by llama-server in ikawrakow/ik_llama.cpp
# discussion of issue #804 (whose report quotes the same text from the system prompt on);
# ggml-org/llama.cpp models/templates/deepseek-ai-DeepSeek-V3.1.jinja is a reformatted
# copy with the same logic (plus an enable_thinking fallback). `thinking` defaults to
# false: replies after a user turn open "<｜Assistant｜></think>", and so does the reply
# prompt, which is written only after a user turn. Real newlines in the '\n\n' literal.
DEEPSEEK3_1 = (
    "{% if not add_generation_prompt is defined %}{% set add_generation_prompt = false %}{% endif %}"
    "{% if not thinking is defined %}{% set thinking = false %}{% endif %}"
    "{% set ns = namespace(is_first=false, is_tool=false, system_prompt='', is_first_sp=true, is_last_user=false) %}"
    "{%- for message in messages %}{%- if message['role'] == 'system' %}{%- if ns.is_first_sp %}"
    "{% set ns.system_prompt = ns.system_prompt + message['content'] %}{% set ns.is_first_sp = false %}"
    "{%- else %}{% set ns.system_prompt = ns.system_prompt + '\n\n' + message['content'] %}{%- endif %}"
    "{%- endif %}{%- endfor %}{{ bos_token }}{{ ns.system_prompt }}"
    "{%- for message in messages %}{%- if message['role'] == 'user' %}{%- set ns.is_tool = false -%}"
    "{%- set ns.is_first = false -%}{%- set ns.is_last_user = true -%}{{'<｜User｜>' + message['content']}}{%- endif %}"
    "{%- if message['role'] == 'assistant' and message['tool_calls'] is defined and message['tool_calls'] is not none %}"
    "{%- if ns.is_last_user %}{{'<｜Assistant｜></think>'}}{%- endif %}{%- set ns.is_last_user = false -%}"
    "{%- set ns.is_first = false %}{%- set ns.is_tool = false -%}{%- for tool in message['tool_calls'] %}"
    "{%- if not ns.is_first %}{%- if message['content'] is none %}"
    "{{'<｜tool▁calls▁begin｜><｜tool▁call▁begin｜>'+ tool['function']['name'] + '<｜tool▁sep｜>' + tool['function']['arguments'] + '<｜tool▁call▁end｜>'}}"
    "{%- else %}"
    "{{message['content'] + '<｜tool▁calls▁begin｜><｜tool▁call▁begin｜>' + tool['function']['name'] + '<｜tool▁sep｜>' + tool['function']['arguments'] + '<｜tool▁call▁end｜>'}}"
    "{%- endif %}{%- set ns.is_first = true -%}{%- else %}"
    "{{'<｜tool▁call▁begin｜>'+ tool['function']['name'] + '<｜tool▁sep｜>' + tool['function']['arguments'] + '<｜tool▁call▁end｜>'}}"
    "{%- endif %}{%- endfor %}{{'<｜tool▁calls▁end｜><｜end▁of▁sentence｜>'}}{%- endif %}"
    "{%- if message['role'] == 'assistant' and (message['tool_calls'] is not defined or message['tool_calls'] is none) %}"
    "{%- if ns.is_last_user %}{{'<｜Assistant｜>'}}{%- if message['prefix'] is defined and message['prefix'] and thinking %}"
    "{{'<think>'}}  {%- else %}{{'</think>'}}{%- endif %}{%- endif %}{%- set ns.is_last_user = false -%}"
    "{%- if ns.is_tool %}{{message['content'] + '<｜end▁of▁sentence｜>'}}{%- set ns.is_tool = false -%}"
    "{%- else %}{%- set content = message['content'] -%}{%- if '</think>' in content %}"
    "{%- set content = content.split('</think>', 1)[1] -%}{%- endif %}{{content + '<｜end▁of▁sentence｜>'}}"
    "{%- endif %}{%- endif %}{%- if message['role'] == 'tool' %}{%- set ns.is_last_user = false -%}"
    "{%- set ns.is_tool = true -%}{{'<｜tool▁output▁begin｜>' + message['content'] + '<｜tool▁output▁end｜>'}}"
    "{%- endif %}{%- endfor -%}{%- if add_generation_prompt and ns.is_last_user and not ns.is_tool %}"
    "{{'<｜Assistant｜>'}}{%- if not thinking %}{{'</think>'}}{%- else %}{{'<think>'}}{%- endif %}{% endif %}"
)

TEMPLATES = {
    "deepseek3": DEEPSEEK3,
    "deepseek2": DEEPSEEK2,
    "deepseek-r1": DEEPSEEK_R1,
    "deepseek-r1-orig": DEEPSEEK_R1_ORIG,
    "deepseek2.5": DEEPSEEK2_5,
    "deepseek3.1": DEEPSEEK3_1,
}


def msg(role, content):
    return {"role": role, "content": content}


SYS = "You are a helpful assistant"
# Text-only conversations; every one is rendered by every template.
CONVERSATIONS = [
    [msg("user", "Hello")],
    [msg("system", SYS), msg("user", "Hello")],
    [msg("user", "Hello"), msg("assistant", "Hi there"), msg("user", "Who are you")],
    # llama.cpp tests/test-chat-template.cpp's conversation
    [msg("system", SYS), msg("user", "Hello"), msg("assistant", "Hi there"), msg("user", "Who are you"),
     msg("assistant", "   I am an assistant   "), msg("user", "Another question")],
    # newlines, unicode (CJK, emoji, accents, the template's own full-width bar), surrounding whitespace
    [msg("system", "  Be brief.\nAnswer in English.\n"), msg("user", "  Line one\nLine two  \n"),
     msg("assistant", "\n Résumé: naïve café — 你好，世界 🌍 \t"), msg("user", "Ünïcödé ｜ ▁ ?\r\n\n  ")],
    [msg("system", ""), msg("user", "Hello")],
    [msg("system", "First system."), msg("user", "Hello"), msg("system", "Second system."),
     msg("user", "Again")],
    [msg("system", "Only the first."), msg("system", ""), msg("user", "")],
    # reasoning in an assistant message (R1 strips up to the last </think>, V3 and V2 keep it)
    [msg("user", "What is 2+2?"),
     msg("assistant", "<think>\nThe user wants a sum.\n</think>\n\nIt is 4."),
     msg("user", "And 3+3?")],
    # the conversation ends with an assistant message
    [msg("user", "Hello"), msg("assistant", "Hi there")],
    [msg("system", SYS)],
]

# Published expectations (add_generation_prompt = true) that the rendering must reproduce.
KNOWN = [
    # ggml-org/llama.cpp tests/test-chat-template.cpp, test "DeepSeek-V2" (its bos_token is "")
    ("deepseek2", CONVERSATIONS[3], "",
     "You are a helpful assistant\n\nUser: Hello\n\nAssistant: Hi there" + EOS
     + "User: Who are you\n\nAssistant:    I am an assistant   " + EOS
     + "User: Another question\n\nAssistant:"),
    # deepseek-ai/DeepSeek-V2 README.md "chat template" example with a system message
    ("deepseek2", [msg("system", "{system_message}"), msg("user", "{user_message_1}"),
                   msg("assistant", "{assistant_message_1}"), msg("user", "{user_message_2}")], BOS,
     BOS + "{system_message}\n\nUser: {user_message_1}\n\nAssistant: {assistant_message_1}" + EOS
     + "User: {user_message_2}\n\nAssistant:"),
    # llama.cpp's DeepSeek-3 built-in format (src/llama-chat.cpp) for the same conversation
    ("deepseek3", CONVERSATIONS[3], "",
     "You are a helpful assistant<｜User｜>Hello<｜Assistant｜>Hi there" + EOS
     + "<｜User｜>Who are you<｜Assistant｜>   I am an assistant   " + EOS
     + "<｜User｜>Another question<｜Assistant｜>"),
    # gorilla's hand-written DeepSeek-R1 formatter (deepseek_reasoning.py) for a user turn
    ("deepseek-r1", [msg("user", "Hi")], BOS, BOS + "<｜User｜>Hi<｜Assistant｜><think>\n"),
]


def environment():
    """The Jinja environment of transformers' _compile_jinja_template (4.57): sandboxed,
    trim_blocks, lstrip_blocks, loopcontrols, raise_exception, a tojson without HTML
    escaping, strftime_now. (Its AssistantTracker extension only adds {% generation %},
    which no DeepSeek template uses.)"""
    def raise_exception(message):
        raise jinja2.exceptions.TemplateError(message)

    def tojson(x, ensure_ascii=False, indent=None, separators=None, sort_keys=False):
        return json.dumps(x, ensure_ascii=ensure_ascii, indent=indent, separators=separators, sort_keys=sort_keys)

    def strftime_now(fmt):
        raise jinja2.exceptions.TemplateError("strftime_now is not deterministic")

    env = ImmutableSandboxedEnvironment(trim_blocks=True, lstrip_blocks=True, extensions=["jinja2.ext.loopcontrols"])
    env.filters["tojson"] = tojson
    env.globals["raise_exception"] = raise_exception
    env.globals["strftime_now"] = strftime_now
    return env


def render(env, template, messages, add_generation_prompt, bos=BOS, eos=EOS):
    # apply_chat_template passes messages, tools, documents, add_generation_prompt and the
    # tokenizer's special tokens (bos_token, eos_token, pad_token, ...) as variables.
    return env.from_string(template).render(
        messages=messages, tools=None, documents=None, add_generation_prompt=add_generation_prompt,
        bos_token=bos, eos_token=eos, pad_token=eos, unk_token=None)


def check_templates():
    # The special tokens use U+FF5C FULLWIDTH VERTICAL LINE and U+2581 LOWER ONE EIGHTH BLOCK.
    known_tokens = {BOS, EOS, "<｜User｜>", "<｜Assistant｜>"} | {
        f"<｜{t}｜>" for t in ("tool▁calls▁begin", "tool▁calls▁end", "tool▁call▁begin", "tool▁call▁end",
                              "tool▁sep", "tool▁outputs▁begin", "tool▁outputs▁end", "tool▁output▁begin",
                              "tool▁output▁end")}
    for name, t in TEMPLATES.items():
        for ch in set(t):
            if ord(ch) > 127:
                assert ch in "｜▁", (name, unicodedata.name(ch))
        pieces = t.split("<｜")[1:]
        for p in pieces:
            assert "<｜" + p.split("｜>")[0] + "｜>" in known_tokens, (name, p[:40])
    # Newline spelling per template (see the module docstring): real newlines in V3 and V2,
    # backslash-n in the R1 ones; the counts are those of the source texts.
    assert DEEPSEEK3.count("\n") == 10 and "\\" not in DEEPSEEK3
    assert DEEPSEEK2.count("\n") == 4 and "\\" not in DEEPSEEK2
    assert "\n" not in DEEPSEEK_R1 and DEEPSEEK_R1.count("\\n") == 13
    assert "\n" not in DEEPSEEK_R1_ORIG and DEEPSEEK_R1_ORIG.count("\\n") == 8
    assert "\n" not in DEEPSEEK2_5 and DEEPSEEK2_5.count("\\n") == 8
    assert DEEPSEEK3_1.count("\n") == 2 and "\\" not in DEEPSEEK3_1


def main():
    check_templates()
    env = environment()
    for name, messages, bos, want in KNOWN:
        got = render(env, TEMPLATES[name], messages, True, bos=bos)
        assert got == want, (name, got, want)

    cases = []
    for name, template in TEMPLATES.items():
        for messages in CONVERSATIONS:
            for agp in (True, False):
                cases.append({"template": name, "messages": messages, "add_generation_prompt": agp,
                              "expected": render(env, template, messages, agp)})

    try:
        from transformers.utils.chat_template_utils import render_jinja_template
    except ImportError:
        print("transformers not importable: skipped the cross-check against its renderer")
    else:
        for c in cases:
            rendered, _ = render_jinja_template(
                conversations=[c["messages"]], chat_template=TEMPLATES[c["template"]],
                add_generation_prompt=c["add_generation_prompt"], bos_token=BOS, eos_token=EOS)
            assert rendered[0] == c["expected"], c
        print(f"transformers' render_jinja_template agrees on all {len(cases)} cases")

    doc = {"generator": "tools/make_chat_vectors.py", "templates": TEMPLATES, "bos": BOS, "eos": EOS,
           "cases": cases}
    text = json.dumps(doc, ensure_ascii=False, indent=1) + "\n"
    OUT.write_text(text, encoding="utf-8")
    print(f"wrote {OUT.relative_to(ROOT)}: {len(cases)} cases, {len(text.encode())} bytes")


if __name__ == "__main__":
    main()
