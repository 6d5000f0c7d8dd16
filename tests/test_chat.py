"""Chat with a tiny GPT-2 that has a ChatML template: the text-generation pipeline on
conversations against transformers' pipeline, and ``candle-port chat`` driven through a
pseudo-terminal (two turns, a streamed reply, ``/reset``, history trimmed past
``n_positions``) and through JSON lines."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch
import transformers

import candle_port
from tokenizer_corpus import make_gpt2_dir

pexpect = pytest.importorskip("pexpect")

CHATML = (
    "{% for message in messages %}{{'<|im_start|>' + message['role'] + '\n' + message['content'] + '<|im_end|>' + '\n'}}"
    "{% endfor %}{% if add_generation_prompt %}{{ '<|im_start|>assistant\n' }}{% endif %}"
)
N_POSITIONS = 64
NEW_TOKENS = 6
PYTHON_DIR = Path(candle_port.__file__).resolve().parent.parent


@pytest.fixture(scope="module")
def chat_dir(tmp_path_factory) -> Path:
    """GPT-2's vocabulary plus ChatML's tokens, the ChatML template, and a tiny random GPT-2
    with 64 positions, saved by transformers."""
    directory = make_gpt2_dir(tmp_path_factory.mktemp("chat") / "tiny-chat")
    tokenizer = transformers.AutoTokenizer.from_pretrained(directory)
    tokenizer.add_special_tokens({"additional_special_tokens": ["<|im_start|>", "<|im_end|>"]})
    tokenizer.chat_template = CHATML
    tokenizer.save_pretrained(directory)
    config = transformers.GPT2Config(
        vocab_size=len(tokenizer), n_embd=32, n_head=2, n_layer=2, n_positions=N_POSITIONS, initializer_range=0.5
    )
    torch.manual_seed(0)
    transformers.GPT2LMHeadModel(config).eval().save_pretrained(directory)
    return directory


@pytest.fixture(scope="module")
def reference(chat_dir):
    return transformers.AutoModelForCausalLM.from_pretrained(chat_dir).eval(), transformers.AutoTokenizer.from_pretrained(chat_dir)


CONVERSATION = [
    {"role": "system", "content": "You are terse."},
    {"role": "user", "content": "Hello, who are you?"},
]


@pytest.mark.parametrize(
    "conversation",
    [
        CONVERSATION,
        CONVERSATION + [{"role": "assistant", "content": "I am"}],  # continued, as transformers does
    ],
)
def test_pipeline_appends_the_reply_like_transformers(chat_dir, conversation):
    ours = candle_port.pipeline("text-generation", chat_dir, max_new_tokens=NEW_TOKENS)
    theirs = transformers.pipeline("text-generation", model=str(chat_dir), max_new_tokens=NEW_TOKENS, do_sample=False)
    result = ours(conversation)
    assert result == theirs(conversation)
    assert result[0]["generated_text"][: len(conversation) - 1] == conversation[:-1]
    assert result[0]["generated_text"][-1]["role"] == "assistant"
    assert ours(conversation, return_full_text=False) == theirs(conversation, return_full_text=False)


def test_pipeline_takes_a_batch_of_conversations(chat_dir):
    ours = candle_port.pipeline("text-generation", chat_dir, max_new_tokens=NEW_TOKENS, batch_size=2)
    batch = [CONVERSATION, CONVERSATION[1:], [{"role": "user", "content": "Tell me more about the weather today."}]]
    results = ours(batch)
    assert len(results) == 3
    assert results == [ours(conversation) for conversation in batch]
    with pytest.raises(ValueError, match="'role' and 'content'"):
        ours([{"role": "user"}])


def reference_reply(reference, messages):
    """transformers' greedy reply to a conversation, stopped at ChatML's end of turn."""
    model, tokenizer = reference
    ids = tokenizer.apply_chat_template(messages, add_generation_prompt=True, return_dict=False)
    with torch.no_grad():
        out = model.generate(
            torch.tensor([ids]),
            max_new_tokens=NEW_TOKENS,
            do_sample=False,
            pad_token_id=tokenizer.eos_token_id,
            stop_strings=["<|im_end|>"],
            tokenizer=tokenizer,
        )
    return tokenizer.decode(out[0, len(ids) :], skip_special_tokens=True).split("<|im_end|>")[0]


def fitted(reference, messages):
    """The messages the REPL keeps: the oldest turns dropped until prompt + reply fit."""
    tokenizer = reference[1]
    start = 1 if messages[0]["role"] == "system" else 0
    dropped = 0
    while True:
        kept = messages[:start] + messages[start + dropped :]
        if len(tokenizer.apply_chat_template(kept, add_generation_prompt=True, return_dict=False)) <= N_POSITIONS - NEW_TOKENS:
            return kept, dropped
        dropped += 2


def spawn_chat(chat_dir, *options):
    env = dict(os.environ, PYTHONPATH=os.pathsep.join([str(PYTHON_DIR), os.environ.get("PYTHONPATH", "")]))
    command = [sys.executable, "-m", "candle_port", "chat", "--model", str(chat_dir), "--max-new-tokens", str(NEW_TOKENS), *options]
    return pexpect.spawn(command[0], command[1:], env=env, encoding="utf-8", timeout=120, dimensions=(50, 1000))


def say(session, text):
    """Sends a message; returns what the REPL printed as the reply, and the notes after it."""
    session.sendline(text)
    session.expect_exact("assistant> ")
    session.expect_exact("you> ")
    printed = session.before.replace("\r\n", "\n")
    reply, _, notes = printed.rstrip("\n").partition("\n(")
    return reply, notes


def test_repl_two_turns_reset_and_trimming(chat_dir, reference):
    session = spawn_chat(chat_dir, "--system", "You are terse.")
    session.expect_exact("you> ")
    history = [{"role": "system", "content": "You are terse."}]

    for text in ("Hi!", "And what is your name?"):  # two turns: the second sees the first
        history.append({"role": "user", "content": text})
        reply, notes = say(session, text)
        assert reply == reference_reply(reference, history)
        assert notes == ""
        history.append({"role": "assistant", "content": reply})

    session.sendline("/reset")
    session.expect_exact("(conversation reset)")
    session.expect_exact("you> ")
    history = history[:1] + [{"role": "user", "content": "Hi!"}]
    reply, _ = say(session, "Hi!")
    assert reply == reference_reply(reference, history)  # as the first turn: history forgotten
    history.append({"role": "assistant", "content": reply})

    long_message = "Please describe the long history of the city of Rome in some detail."
    trimmed_any = False
    for _ in range(3):  # past n_positions: the oldest turns are left out, the system prompt kept
        history.append({"role": "user", "content": long_message})
        kept, dropped = fitted(reference, history)
        reply, notes = say(session, long_message)
        assert reply == reference_reply(reference, kept)
        if dropped:
            trimmed_any = True
            assert f"left out the {dropped} oldest messages" in notes
        history.append({"role": "assistant", "content": reply})
    assert trimmed_any

    session.sendintr()  # Ctrl-C at the prompt keeps the session
    session.expect_exact("you> ")
    session.sendline("/exit")
    session.expect(pexpect.EOF)
    session.close()
    assert session.exitstatus == 0


def test_repl_streams_the_reply(chat_dir, reference):
    """The reply arrives in pieces: the first text shows up before the reply is complete."""
    session = spawn_chat(chat_dir)
    session.expect_exact("you> ")
    session.sendline("Hi!")
    session.expect_exact("assistant> ")
    expected = reference_reply(reference, [{"role": "user", "content": "Hi!"}])
    seen = ""
    while "you> " not in seen:
        seen += session.read_nonblocking(size=1, timeout=60)
    assert seen.replace("\r\n", "\n").startswith(expected)
    session.sendeof()
    session.expect(pexpect.EOF)


def test_json_lines_from_stdin(chat_dir, reference):
    lines = [
        json.dumps({"role": "system", "content": "You are terse."}),
        json.dumps("Hi!"),
        json.dumps({"role": "user", "content": "And what is your name?"}),
    ]
    env = dict(os.environ, PYTHONPATH=str(PYTHON_DIR))
    result = subprocess.run(
        [sys.executable, "-m", "candle_port", "chat", "--model", str(chat_dir), "--max-new-tokens", str(NEW_TOKENS)],
        input="\n".join(lines) + "\n",
        capture_output=True,
        text=True,
        env=env,
        timeout=300,
    )
    assert result.returncode == 0, result.stderr
    replies = [json.loads(line) for line in result.stdout.splitlines()]
    history = [{"role": "system", "content": "You are terse."}, {"role": "user", "content": "Hi!"}]
    assert replies[0] == {"role": "assistant", "content": reference_reply(reference, history)}
    history += [replies[0], {"role": "user", "content": "And what is your name?"}]
    assert replies[1] == {"role": "assistant", "content": reference_reply(reference, history)}
    bad = subprocess.run(
        [sys.executable, "-m", "candle_port", "chat", "--model", str(chat_dir)],
        input="not json\n", capture_output=True, text=True, env=env, timeout=300,
    )
    assert bad.returncode == 1 and "line 1" in bad.stderr
