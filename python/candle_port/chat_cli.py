"""``candle-port chat``: a multi-turn chat with a causal language model that has a chat template.

Interactive on a terminal (unless ``--json``): the reply streams as it is generated; ``/reset`` forgets the
conversation, ``/exit`` (or end of input) quits, and Ctrl-C stops the current reply while
keeping the session. Otherwise messages are read from stdin as JSON lines (``{"role",
"content"}`` objects, or plain JSON strings for user messages) and each reply is printed as a
JSON line. The oldest turns are dropped when the conversation would not fit in the model's
``n_positions``; replies stop at eos or at the template's end-of-turn text.
"""

from __future__ import annotations

import argparse
import json
import sys
from typing import Any, Callable, Dict, List, Optional

PROMPT = "you> "
REPLY = "assistant> "
# Stands for a reply when looking for the text a template writes after one.
_SENTINEL = "\x00reply\x00"


class ChatSession:
    """A conversation with a model: the history, and replies generated from it."""

    def __init__(self, model: Any, tokenizer: Any, system: Optional[str], options: Dict[str, Any]) -> None:
        if tokenizer.chat_template is None:
            raise ValueError("this model's tokenizer has no chat template (chat_template.jinja or tokenizer_config.json)")
        self.model = model
        self.tokenizer = tokenizer
        self.system = system
        self.options = dict(options)
        self.max_new_tokens = int(self.options.pop("max_new_tokens"))
        self.end_of_turn = end_of_turn_text(tokenizer)
        # How many messages the last reply's prompt left out to fit the model.
        self.trimmed = 0
        self.messages: List[Dict[str, str]] = []
        self.reset()

    def reset(self) -> None:
        """Forgets the conversation (the system prompt stays)."""
        self.messages = [{"role": "system", "content": self.system}] if self.system else []

    def reply(self, text: str, on_text: Callable[[str], None] = lambda _: None) -> str:
        """Adds the user's message, generates the reply (passing each new piece of text to
        ``on_text``), adds it to the history and returns it. A KeyboardInterrupt stops the
        reply early; what was generated is kept."""
        self.messages.append({"role": "user", "content": text})
        try:
            prompt = self._fitting_prompt()
        except ValueError:
            self.messages.pop()
            raise
        stops = {"stop_strings": [self.end_of_turn], "tokenizer": self.tokenizer} if self.end_of_turn else {}
        stream = self.model.stream([prompt], max_new_tokens=self.max_new_tokens, **stops, **self.options)
        new_ids: List[int] = []
        shown = ""
        try:
            for step in stream:
                new_ids.append(int(step[0]))
                visible = self._reply_text(new_ids, finished=False)
                if len(visible) > len(shown):
                    on_text(visible[len(shown) :])
                    shown = visible
        finally:
            # Also on Ctrl-C: the reply so far joins the history.
            reply = self._reply_text(new_ids, finished=True)
            if len(reply) > len(shown):
                on_text(reply[len(shown) :])
            self.messages.append({"role": "assistant", "content": reply})
        return reply

    def _fitting_prompt(self) -> List[int]:
        """The ids of the conversation ready for the reply, without its oldest turns (the system
        prompt aside) while prompt + reply would exceed ``n_positions``."""
        limit = self.model.config.n_positions - self.max_new_tokens
        start = 1 if self.system else 0
        dropped = 0
        while True:
            kept = self.messages[:start] + self.messages[start + dropped :]
            ids = self.tokenizer.apply_chat_template(kept, add_generation_prompt=True, return_dict=False)
            if len(ids) <= limit:
                self.trimmed = dropped
                return ids
            if start + dropped >= len(self.messages) - 1:
                raise ValueError(
                    f"the message is too long: {len(ids)} tokens with the template, and the model takes "
                    f"{self.model.config.n_positions} positions with {self.max_new_tokens} for the reply"
                )
            dropped += 2 if self.messages[start + dropped]["role"] == "user" else 1

    def _reply_text(self, ids: List[int], finished: bool) -> str:
        """The reply's text: cut at the end-of-turn text; while generating, without a tail that
        may be the start of it or of a character still incomplete."""
        text = self.tokenizer.decode(ids, skip_special_tokens=True)
        if self.end_of_turn and self.end_of_turn in text:
            return text[: text.index(self.end_of_turn)]
        if finished:
            return text
        text = text.rstrip("\ufffd")
        if self.end_of_turn:
            for length in range(min(len(self.end_of_turn) - 1, len(text)), 0, -1):
                if self.end_of_turn.startswith(text[-length:]):
                    return text[:-length]
        return text


def end_of_turn_text(tokenizer: Any) -> Optional[str]:
    """What the chat template writes after an assistant message (``<|im_end|>`` for ChatML,
    eos for many), without surrounding whitespace; None when it writes nothing."""
    conversation = [{"role": "user", "content": "Hi"}, {"role": "assistant", "content": _SENTINEL}]
    try:
        rendered = tokenizer.apply_chat_template(conversation, tokenize=False)
    except ValueError:
        return None
    if _SENTINEL not in rendered:
        return None
    return rendered.split(_SENTINEL, 1)[1].strip() or None


def add_parser(commands: Any, common_options: Callable[..., None]) -> None:
    """Registers ``chat`` on the CLI's subcommands."""
    chat = commands.add_parser(
        "chat",
        help="chat with a model that has a chat template",
        description=(
            "Interactive on a terminal (/reset, /exit, Ctrl-C stops a reply); otherwise reads JSON "
            "lines from stdin and prints each reply as a JSON line. Greedy by default; any of "
            "--temperature, --top-k, --top-p turns sampling on."
        ),
    )
    common_options(chat, with_texts=False)
    chat.add_argument("--system", help="the system prompt")
    chat.add_argument("--max-new-tokens", type=int, default=128)
    chat.add_argument("--temperature", type=float)
    chat.add_argument("--top-k", type=int)
    chat.add_argument("--top-p", type=float)
    chat.add_argument("--repetition-penalty", type=float, default=1.0)
    chat.add_argument("--seed", type=int)
    chat.set_defaults(run=run)


def run(args: argparse.Namespace) -> int:
    """Runs the chat: a REPL on a terminal, JSON lines otherwise."""
    from .auto import AutoModelForCausalLM
    from .cli import _generation_options
    from .tokenization import Tokenizer

    if args.model is None:
        raise ValueError("chat needs --model (a directory or hub id of a model with a chat template)")
    model = AutoModelForCausalLM.from_pretrained(args.model, device=args.device, dtype=args.dtype)
    session = ChatSession(model, Tokenizer.from_pretrained(args.model), args.system, _generation_options(args))
    if sys.stdin.isatty() and not args.json:
        return _interactive(session)
    return _json_lines(session)


def _interactive(session: ChatSession) -> int:
    print("Chatting; /reset starts over, /exit quits, Ctrl-C stops a reply.", flush=True)
    while True:
        try:
            text = input(PROMPT)
        except EOFError:
            print()
            return 0
        except KeyboardInterrupt:
            print()
            continue
        command = text.strip()
        if command in ("/exit", "/quit"):
            return 0
        if command == "/reset":
            session.reset()
            print("(conversation reset)", flush=True)
            continue
        if not command:
            continue
        print(REPLY, end="", flush=True)
        try:
            session.reply(text, on_text=lambda piece: print(piece, end="", flush=True))
        except KeyboardInterrupt:
            print(" [stopped]", end="")
        except ValueError as error:
            print(f"(error: {error})", end="")
        print(flush=True)
        if session.trimmed:
            print(f"(left out the {session.trimmed} oldest messages to fit the model's context)", flush=True)


def _json_lines(session: ChatSession) -> int:
    for number, line in enumerate(sys.stdin, start=1):
        if not line.strip():
            continue
        try:
            message = json.loads(line)
        except json.JSONDecodeError as error:
            raise ValueError(f"stdin line {number}: not JSON: {error}") from None
        if isinstance(message, str):
            message = {"role": "user", "content": message}
        if not (isinstance(message, dict) and isinstance(message.get("role"), str) and isinstance(message.get("content"), str)):
            raise ValueError(f'stdin line {number}: expected {{"role": ..., "content": ...}} or a string')
        if message["role"] == "user":
            reply = session.reply(message["content"])
            print(json.dumps({"role": "assistant", "content": reply}, ensure_ascii=False), flush=True)
        elif message["role"] == "system":
            session.system = message["content"]
            session.reset()
        else:
            session.messages.append({"role": message["role"], "content": message["content"]})
    return 0
