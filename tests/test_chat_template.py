"""Chat templates rendered in Rust (minijinja) against transformers' ``apply_chat_template``
(jinja2): the text, the ids and the errors are the same, for the common template families and
for the Jinja features and transformers globals templates rely on."""

from __future__ import annotations

import json
import shutil
from datetime import datetime

import numpy as np
import pytest
import transformers

import candle_port
from tokenizer_corpus import make_gpt2_dir

CHATML = (
    "{% for message in messages %}{{'<|im_start|>' + message['role'] + '\n' + message['content'] + '<|im_end|>' + '\n'}}"
    "{% endfor %}{% if add_generation_prompt %}{{ '<|im_start|>assistant\n' }}{% endif %}"
)

# Llama 2's template, with its system prompt folded into the first user turn.
LLAMA2 = (
    "{% if messages[0]['role'] == 'system' %}{% set loop_messages = messages[1:] %}"
    "{% set system_message = messages[0]['content'] %}{% else %}{% set loop_messages = messages %}"
    "{% set system_message = false %}{% endif %}{% for message in loop_messages %}"
    "{% if (message['role'] == 'user') != (loop.index0 % 2 == 0) %}"
    "{{ raise_exception('Conversation roles must alternate user/assistant/user/assistant/...') }}{% endif %}"
    "{% if loop.index0 == 0 and system_message != false %}"
    "{% set content = '<<SYS>>\\n' + system_message + '\\n<</SYS>>\\n\\n' + message['content'] %}"
    "{% else %}{% set content = message['content'] %}{% endif %}"
    "{% if message['role'] == 'user' %}{{ bos_token + '[INST] ' + content.strip() + ' [/INST]' }}"
    "{% elif message['role'] == 'assistant' %}{{ ' '  + content.strip() + ' ' + eos_token }}{% endif %}{% endfor %}"
)

# DialoGPT / GPT-2's old default: the turns joined by the eos token.
DIALOGPT = "{% for message in messages %}{{ message.content }}{{ eos_token }}{% endfor %}"

# Zephyr's, written over several lines: trim_blocks / lstrip_blocks decide its whitespace.
ZEPHYR = """{% for message in messages %}
    {% if message['role'] == 'user' %}
        {{ '<|user|>\n' + message['content'] + eos_token }}
    {% elif message['role'] == 'system' %}
        {{ '<|system|>\n' + message['content'] + eos_token }}
    {% elif message['role'] == 'assistant' %}
        {{ '<|assistant|>\n'  + message['content'] + eos_token }}
    {% endif %}
    {% if loop.last and add_generation_prompt %}
        {{ '<|assistant|>' }}
    {% endif %}
{% endfor %}
"""

# Tools, documents, tojson with options, namespace, loop controls, Python methods, extra kwargs.
TOOLS = """{%- set ns = namespace(system=none) -%}
{%- for message in messages if message.role == 'system' -%}{%- set ns.system = message.content -%}{%- endfor -%}
{%- if tools is not none -%}
<tools>{{ tools | tojson }}</tools>
<pretty>{{ tools[0] | tojson(indent=2, sort_keys=true) }}</pretty>
<compact>{{ tools[0].function | tojson(separators=(',', ':')) }}</compact>
{%- endif %}
{% if documents %}{% for doc in documents %}[{{ loop.index }}] {{ doc.title | upper }}: {{ doc.text }}
{% endfor %}{% endif -%}
system={{ ns.system }} today={{ date_string | default('unknown') }} lang={{ language }}
{% for message in messages -%}
{%- if message.role == 'system' %}{% continue %}{% endif -%}
{%- if message.content.startswith('STOP') %}{% break %}{% endif -%}
<{{ message.role | upper }}>{{ message.content.strip().replace('  ', ' ') }}{% if message.tool_calls is defined %} calls={{ message.tool_calls | map(attribute='name') | join(',') }}{% endif %}
{% for key, value in message.items() if key not in ['role', 'content'] %}  {{ key }}={{ value }}
{% endfor -%}
{%- endfor -%}
{%- if add_generation_prompt %}<ASSISTANT>{% endif -%}
"""

# Values as Python prints them: None, booleans, numbers, lists, dicts; slicing, filters, tests.
VALUES = """{{ none }} {{ true }} {{ false }} {{ 3 / 2 }} {{ 7 // 2 }} {{ 2 ** 10 }} {{ 1e-5 }} {{ 0.1 + 0.2 }}
{{ meta }} {{ meta.tags }} {{ meta.tags | length }} {{ meta.ratio }}
{{ messages | selectattr('role', 'equalto', 'user') | map(attribute='content') | list }}
{{ messages[-1].content[:5] }}|{{ messages[0].content.split() }}|{{ messages[0].content.title() }}
{{ 'x' if meta.missing is not defined else 'y' }} {{ meta.flag is true }} {{ messages | first | tojson(ensure_ascii=true) }}
{{ '%s + %d' | format('a', 3) }} {{ [3, 1, 2] | sort | join('-') }} {% for key, value in meta | dictsort %}{{ key }}={{ value }};{% endfor %}
{% for m in messages %}{{ loop.index }}/{{ loop.length }}{{ ',' if not loop.last }}{% endfor %}
{% set total = namespace(n=0) %}{% for m in messages %}{% set total.n = total.n + m.content | length %}{% endfor %}{{ total.n }}
{{ strftime_now('%Y') }}"""

# transformers' {% generation %} marks (for assistant masks) must not change the text.
GENERATION_MARKS = (
    "{% for message in messages %}{{ message.role }}: {% if message.role == 'assistant' %}"
    "{%- generation -%}{{ message.content }}{%- endgeneration -%}{% else %}{{ message.content }}{% endif %}\n{% endfor %}"
)

CHAT = [
    {"role": "system", "content": "You are a helpful  bot."},
    {"role": "user", "content": "Hello there, how are you?"},
    {"role": "assistant", "content": "  I'm fine, thanks.  "},
    {"role": "user", "content": "Tell me a joke ünïcödé 😀"},
]
TOOL_SPEC = [
    {
        "type": "function",
        "function": {
            "name": "get_weather",
            "description": "Weather <at> a place & \"time\"",
            "parameters": {"type": "object", "properties": {"city": {"type": "string"}}, "required": ["city"]},
        },
    }
]
DOCUMENTS = [{"title": "first doc", "text": "Paris is in France."}, {"title": "second", "text": "é"}]
TOOL_CHAT = [
    {"role": "system", "content": "Use tools."},
    {"role": "user", "content": "Weather  in Paris?", "lang": "en"},
    {"role": "assistant", "content": "", "tool_calls": [{"name": "get_weather", "arguments": {"city": "Paris"}}]},
    {"role": "tool", "content": "22 degrees", "name": "get_weather", "score": 0.5, "ok": True, "none": None},
    {"role": "user", "content": "STOP here"},
    {"role": "user", "content": "never shown"},
]

CASES = {
    "chatml": (CHATML, CHAT, dict(add_generation_prompt=True)),
    "chatml-no-prompt": (CHATML, CHAT, {}),
    "llama2-system": (LLAMA2, CHAT, {}),
    "llama2-no-system": (LLAMA2, CHAT[1:3], {}),
    "dialogpt": (DIALOGPT, CHAT[1:], {}),
    "zephyr": (ZEPHYR, CHAT, dict(add_generation_prompt=True)),
    "tools": (TOOLS, TOOL_CHAT, dict(tools=TOOL_SPEC, documents=DOCUMENTS, date_string="26 Jul 2024", language="fr")),
    "tools-absent": (TOOLS, TOOL_CHAT[:2], dict(add_generation_prompt=True, language=None)),
    "values": (VALUES, CHAT, dict(meta={"tags": ["a", "b'c", None, 1.5], "ratio": 1e16, "flag": True, "n": 3})),
    "generation-marks": (GENERATION_MARKS, CHAT, {}),
}


@pytest.fixture(scope="module")
def chat_dir(tmp_path_factory):
    """GPT-2's vocabulary with ChatML's two special tokens added and the ChatML template,
    saved by transformers (tokenizer.json, tokenizer_config.json, chat_template.jinja)."""
    directory = make_gpt2_dir(tmp_path_factory.mktemp("chat") / "gpt2-chatml")
    reference = transformers.AutoTokenizer.from_pretrained(directory)
    reference.add_special_tokens({"additional_special_tokens": ["<|im_start|>", "<|im_end|>"]})
    reference.chat_template = CHATML
    reference.save_pretrained(directory)
    return directory


@pytest.fixture(scope="module")
def tokenizers(chat_dir):
    return candle_port.AutoTokenizer.from_pretrained(chat_dir), transformers.AutoTokenizer.from_pretrained(chat_dir)


def both(tokenizers, conversation, **kwargs):
    ours, reference = tokenizers
    return ours.apply_chat_template(conversation, **kwargs), reference.apply_chat_template(conversation, **kwargs)


@pytest.mark.parametrize("case", list(CASES))
def test_text_and_ids_match_transformers(tokenizers, case):
    template, conversation, kwargs = CASES[case]
    text, expected_text = both(tokenizers, conversation, chat_template=template, tokenize=False, **kwargs)
    assert text == expected_text
    ids, expected_ids = both(tokenizers, conversation, chat_template=template, return_dict=False, **kwargs)
    assert ids == expected_ids
    encoded, expected = both(tokenizers, conversation, chat_template=template, **kwargs)
    assert dict(encoded) == dict(expected)


def test_the_model_template_is_the_default(tokenizers):
    ours, reference = tokenizers
    assert ours.chat_template == reference.chat_template == CHATML
    assert both(tokenizers, CHAT, add_generation_prompt=True, return_dict=False)[0] == reference.apply_chat_template(
        CHAT, add_generation_prompt=True, return_dict=False
    )


def test_batches_padding_and_numpy(tokenizers):
    ours, reference = tokenizers
    batch = [CHAT[:2], CHAT]
    texts, expected = both(tokenizers, batch, tokenize=False, add_generation_prompt=True)
    assert texts == expected and len(texts) == 2
    ids, expected_ids = both(tokenizers, batch, return_dict=False)
    assert ids == expected_ids
    encoded = ours.apply_chat_template(batch, return_tensors="np", truncation=True, max_length=12)
    reference_encoded = reference.apply_chat_template(batch, return_tensors="np", truncation=True, max_length=12)
    np.testing.assert_array_equal(encoded["input_ids"], reference_encoded["input_ids"])


@pytest.mark.parametrize(
    "template, conversation",
    [
        (CHATML, CHAT[:2] + [{"role": "assistant", "content": "Sure, here is"}]),
        # Llama 2 strips the message: the trailing space is cut as transformers cuts it.
        (LLAMA2, CHAT[1:3] + [{"role": "user", "content": "Go on"}, {"role": "assistant", "content": "Well, "}]),
        (DIALOGPT, CHAT[1:]),
    ],
)
def test_continue_final_message(tokenizers, template, conversation):
    for kwargs in (dict(tokenize=False), dict(return_dict=False)):
        ours, expected = both(tokenizers, conversation, chat_template=template, continue_final_message=True, **kwargs)
        assert ours == expected
    text = tokenizers[0].apply_chat_template(conversation, chat_template=template, continue_final_message=True, tokenize=False)
    assert text.rstrip().endswith(conversation[-1]["content"].strip())


def test_continue_final_message_content_blocks(tokenizers):
    template = "{% for m in messages %}{{ m.role }}:{% for block in m.content %}{{ block.text }}{% endfor %}|{% endfor %}"
    conversation = [
        {"role": "user", "content": [{"type": "text", "text": "Hi"}]},
        {"role": "assistant", "content": [{"type": "text", "text": "Hel"}, {"type": "image"}]},
    ]
    ours, expected = both(tokenizers, conversation, chat_template=template, continue_final_message=True, tokenize=False)
    assert ours == expected == "user:Hi|assistant:Hel"


def error_of(call):
    with pytest.raises(Exception) as info:
        call()
    return info.value


@pytest.mark.parametrize(
    "template, conversation, kwargs",
    [
        # raise_exception: the template's own message.
        (LLAMA2, [CHAT[1], CHAT[1]], {}),
        (CHATML, CHAT, dict(continue_final_message=True, add_generation_prompt=True)),
        (CHATML, [{"role": "user"}], dict(continue_final_message=True)),
        (DIALOGPT, CHAT, dict(continue_final_message="reasoning_content")),
        (CHATML, [], {}),
    ],
)
def test_errors_match_transformers(tokenizers, template, conversation, kwargs):
    ours, reference = tokenizers
    ours_error = error_of(lambda: ours.apply_chat_template(conversation, chat_template=template, **kwargs))
    expected = error_of(lambda: reference.apply_chat_template(conversation, chat_template=template, **kwargs))
    assert isinstance(ours_error, ValueError)
    assert str(ours_error) == str(expected)


def test_broken_templates_raise_value_errors(tokenizers):
    ours = tokenizers[0]
    for template in ("{% for m in messages %}", "{{ messages[0].content.no_such_method() }}", "{{ strftime_now('%Q') }}"):
        with pytest.raises(ValueError, match="chat template error|strftime"):
            ours.apply_chat_template(CHAT, chat_template=template)


def test_strftime_now_is_the_local_time(tokenizers):
    text = tokenizers[0].apply_chat_template(CHAT, chat_template="{{ strftime_now('%d %b %Y %H') }}", tokenize=False)
    assert text in {datetime.now().strftime("%d %b %Y %H"), datetime.now().strftime("%d %b %Y %H")}


def test_no_template_is_a_value_error(tmp_path):
    directory = make_gpt2_dir(tmp_path / "plain")
    ours = candle_port.AutoTokenizer.from_pretrained(directory)
    reference = transformers.AutoTokenizer.from_pretrained(directory)
    assert ours.chat_template is None
    ours_error = error_of(lambda: ours.apply_chat_template(CHAT))
    assert isinstance(ours_error, ValueError)
    assert str(ours_error) == str(error_of(lambda: reference.apply_chat_template(CHAT)))
    ours.chat_template = DIALOGPT  # assignable, as in transformers
    reference.chat_template = DIALOGPT
    assert ours.apply_chat_template(CHAT, return_dict=False) == reference.apply_chat_template(CHAT, return_dict=False)


def test_templates_from_tokenizer_config_and_named_files(chat_dir, tmp_path):
    """tokenizer_config.json's "chat_template" (a string or a named list) and the template files
    (chat_template.jinja + additional_chat_templates/) are found as transformers finds them."""
    string_dir = tmp_path / "string"
    shutil.copytree(chat_dir, string_dir)
    (string_dir / "chat_template.jinja").unlink()
    config = json.loads((string_dir / "tokenizer_config.json").read_text())
    config["chat_template"] = LLAMA2
    (string_dir / "tokenizer_config.json").write_text(json.dumps(config))

    named_dir = tmp_path / "named"
    shutil.copytree(string_dir, named_dir)
    config["chat_template"] = [{"name": "default", "template": DIALOGPT}, {"name": "tool_use", "template": TOOLS}]
    (named_dir / "tokenizer_config.json").write_text(json.dumps(config))

    files_dir = tmp_path / "files"
    shutil.copytree(chat_dir, files_dir)
    (files_dir / "additional_chat_templates").mkdir()
    (files_dir / "additional_chat_templates" / "llama2.jinja").write_text(LLAMA2)

    for directory in (string_dir, named_dir, files_dir):
        ours = candle_port.AutoTokenizer.from_pretrained(directory)
        reference = transformers.AutoTokenizer.from_pretrained(directory)
        assert ours.chat_template == reference.chat_template
        for kwargs in ({}, dict(tools=TOOL_SPEC), dict(chat_template="tool_use"), dict(chat_template="llama2")):
            try:
                expected = reference.apply_chat_template(CHAT, tokenize=False, **kwargs)
            except ValueError as error:
                with pytest.raises(ValueError) as info:
                    ours.apply_chat_template(CHAT, tokenize=False, **kwargs)
                assert str(info.value) == str(error)
                continue
            assert ours.apply_chat_template(CHAT, tokenize=False, **kwargs) == expected


def test_save_pretrained_keeps_the_template(tokenizers, tmp_path):
    ours = tokenizers[0]
    ours.save_pretrained(tmp_path / "saved")
    reloaded = transformers.AutoTokenizer.from_pretrained(tmp_path / "saved")
    assert reloaded.chat_template == CHATML
    assert reloaded.apply_chat_template(CHAT, return_dict=False) == ours.apply_chat_template(CHAT, return_dict=False)
