"""Chat templates: ``Tokenizer.apply_chat_template`` as transformers has it, rendered in Rust.

Templates are Jinja, rendered by the ``minijinja`` crate in an environment set up as
transformers sets up its own (``trim_blocks``, ``lstrip_blocks``, ``{% break %}``,
``raise_exception``, ``strftime_now``, ``tojson``, Python's string methods), so no jinja2 is
needed. This module holds what surrounds the rendering: conversation normalization, batching and
tokenization.
"""

from __future__ import annotations

import dataclasses
from typing import TYPE_CHECKING, Any, Dict, List, Mapping, Optional, Sequence, Union

from . import _core

if TYPE_CHECKING:
    from .tokenization import BatchEncoding, Tokenizer

Message = Dict[str, Any]
Conversation = List[Message]

SPECIAL_TOKEN_NAMES = (
    "bos_token",
    "eos_token",
    "unk_token",
    "sep_token",
    "pad_token",
    "cls_token",
    "mask_token",
)


def is_conversation(value: Any) -> bool:
    """Whether ``value`` is one chat: a non-empty list of ``{"role", "content"}`` dicts."""
    return (
        isinstance(value, (list, tuple))
        and len(value) > 0
        and all(isinstance(m, Mapping) and "role" in m and "content" in m for m in value)
    )


def render_conversations(
    tokenizer: "Tokenizer",
    conversation: Union[Sequence[Any], Sequence[Sequence[Any]]],
    *,
    tools: Optional[List[Dict[str, Any]]] = None,
    documents: Optional[List[Dict[str, str]]] = None,
    chat_template: Optional[str] = None,
    add_generation_prompt: bool = False,
    continue_final_message: Union[bool, str] = False,
    **kwargs: Any,
) -> Union[str, List[str]]:
    """The rendered text of a conversation (or a list of them, for a batch)."""
    if isinstance(conversation, (list, tuple)) and len(conversation) == 0:
        raise ValueError("Cannot apply chat template to an empty conversation. Provide at least one message.")
    batched = isinstance(conversation, (list, tuple)) and (
        isinstance(conversation[0], (list, tuple)) or hasattr(conversation[0], "messages")
    )
    conversations = list(conversation) if batched else [conversation]
    conversations = [_normalize_messages(chat) for chat in conversations]
    if tools is not None and not all(isinstance(tool, Mapping) for tool in tools):
        raise ValueError("tools must be JSON schemas (dicts); candle_port does not convert Python functions")
    if documents is not None and not all(isinstance(document, Mapping) for document in documents):
        raise TypeError("Documents should be a list of dicts with 'title' and 'text' keys!")
    if continue_final_message is True:
        continue_final_message = "content"
    special = {name: getattr(tokenizer, name) for name in SPECIAL_TOKEN_NAMES}
    variables = {name: token for name, token in special.items() if token is not None}
    variables.update(_plain(kwargs))  # the caller's variables win over the special tokens
    rendered = _core.apply_chat_template(
        tokenizer.chat_template,
        chat_template,
        conversations,
        add_generation_prompt,
        continue_final_message or None,
        _plain(tools),
        _plain(documents),
        variables,
    )
    return rendered if batched else rendered[0]


def apply_chat_template(
    tokenizer: "Tokenizer",
    conversation: Union[Sequence[Any], Sequence[Sequence[Any]]],
    tools: Optional[List[Dict[str, Any]]] = None,
    documents: Optional[List[Dict[str, str]]] = None,
    chat_template: Optional[str] = None,
    add_generation_prompt: bool = False,
    continue_final_message: Union[bool, str] = False,
    tokenize: bool = True,
    padding: Union[bool, str] = False,
    truncation: bool = False,
    max_length: Optional[int] = None,
    return_tensors: Optional[str] = None,
    return_dict: bool = True,
    return_assistant_tokens_mask: bool = False,
    tokenizer_kwargs: Optional[Dict[str, Any]] = None,
    **kwargs: Any,
) -> Union[str, List[str], List[int], List[List[int]], "BatchEncoding"]:
    """See :meth:`candle_port.Tokenizer.apply_chat_template`."""
    if return_assistant_tokens_mask:
        raise NotImplementedError("return_assistant_tokens_mask is not supported by candle_port")
    rendered = render_conversations(
        tokenizer,
        conversation,
        tools=tools,
        documents=documents,
        chat_template=chat_template,
        add_generation_prompt=add_generation_prompt,
        continue_final_message=continue_final_message,
        **kwargs,
    )
    if not tokenize:
        return rendered
    encoded = tokenizer(
        rendered,
        padding=padding,
        truncation=truncation,
        max_length=max_length,
        add_special_tokens=False,
        return_tensors=return_tensors,
        **(tokenizer_kwargs or {}),
    )
    return encoded if return_dict else encoded["input_ids"]


def _normalize_messages(conversation: Any) -> Conversation:
    """Message objects (dataclasses, pydantic models, a ``.messages`` holder) as dicts, without
    the keys whose value is None, as transformers 5 normalizes them."""
    messages = getattr(conversation, "messages", conversation)
    normalized = []
    for message in messages:
        message = _as_dict(message)
        if not isinstance(message, Mapping):
            raise TypeError(f"Chat messages should be dicts, dataclasses or pydantic models, but got {message!r}.")
        normalized.append(_plain({key: value for key, value in message.items() if value is not None}))
    return normalized


def _as_dict(value: Any) -> Any:
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        return {field.name: getattr(value, field.name) for field in dataclasses.fields(value)}
    if callable(getattr(value, "model_dump", None)):
        return value.model_dump()
    return value


def _plain(value: Any) -> Any:
    """Mappings, dataclasses and pydantic models nested in template data as plain dicts (the
    Rust side turns everything else that is not JSON-like into a placeholder)."""
    value = _as_dict(value)
    if isinstance(value, Mapping):
        return {key: _plain(item) for key, item in value.items()}
    if isinstance(value, (list, tuple)):
        return [_plain(item) for item in value]
    return value
