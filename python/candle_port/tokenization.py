"""``Tokenizer`` / ``AutoTokenizer``: transformers' tokenizer API on the Rust tokenizer.

Loads a model directory's ``tokenizer.json``, or ``vocab.json`` + ``merges.txt`` (GPT-2 /
RoBERTa byte-level BPE), or ``sentencepiece.bpe.model`` (XLM-RoBERTa), and gives the same ids
as transformers' ``AutoTokenizer`` on the same files. Batches are encoded in parallel in Rust,
without the GIL.
"""

from __future__ import annotations

import os
from typing import Any, Dict, List, Optional, Sequence, Tuple, Union

import numpy as np

from . import _core
from .hub import resolve_model_dir

TextInput = Union[str, Sequence[str]]

# transformers' model_max_length when a model has no limit, and the bound above which a
# model_max_length means "no limit".
VERY_LARGE_INTEGER = int(1e30)
LARGE_INTEGER = int(1e20)


class BatchEncoding(dict):
    """The encoded inputs by name (``input_ids``, ``attention_mask``...), readable as keys or
    attributes, like transformers' ``BatchEncoding``.

    When offsets or overflowing windows were asked for, ``sequence_ids(i)`` and ``word_ids(i)``
    say where each token of row ``i`` comes from, as transformers' fast tokenizers do.
    """

    def __init__(self, data: Dict[str, Any], alignment: Optional[Dict[str, list]] = None) -> None:
        super().__init__(data)
        self._alignment = alignment

    def __getattr__(self, name: str) -> Any:
        if name.startswith("_"):
            raise AttributeError(name)
        try:
            return self[name]
        except KeyError:
            raise AttributeError(name) from None

    def sequence_ids(self, batch_index: int = 0) -> List[Optional[int]]:
        """For each token of row ``batch_index``: 0 for the first text, 1 for the pair, ``None``
        for special tokens and padding."""
        return self._aligned("sequence_ids", batch_index)

    def word_ids(self, batch_index: int = 0) -> List[Optional[int]]:
        """For each token of row ``batch_index``: the index of its word in its text, ``None`` for
        special tokens and padding."""
        return self._aligned("word_ids", batch_index)

    def _aligned(self, name: str, batch_index: int) -> List[Optional[int]]:
        if self._alignment is None:
            raise ValueError(
                f"{name}() needs the encoding to be made with return_offsets_mapping=True or "
                "return_overflowing_tokens=True"
            )
        return self._alignment[name][batch_index]


class Tokenizer:
    """A tokenizer with transformers' habits: call it on a text, a list of texts, or pairs.

    Build it with :meth:`from_pretrained` on a local model directory.
    """

    def __init__(self, core: _core.Tokenizer) -> None:
        self._core = core
        self._special = dict(core.special_tokens)

    @classmethod
    def from_pretrained(
        cls,
        pretrained_model_name_or_path: Union[str, os.PathLike],
        *,
        revision: Optional[str] = None,
        cache_dir: Optional[Union[str, os.PathLike]] = None,
        token: Optional[str] = None,
        local_files_only: bool = False,
    ) -> "Tokenizer":
        """Loads the tokenizer of a local model directory or a hub repo id (hub options as in
        ``candle_port.hub``): ``tokenizer.json``, else ``vocab.json`` + ``merges.txt``, else
        ``sentencepiece.bpe.model``.

        Raises ``FileNotFoundError`` when the directory or its tokenizer files are missing and
        ``ValueError`` when the files cannot be used.
        """
        path = resolve_model_dir(
            pretrained_model_name_or_path,
            revision=revision,
            cache_dir=cache_dir,
            token=token,
            local_files_only=local_files_only,
        )
        return cls(_core.Tokenizer.from_dir(path))

    def __call__(
        self,
        text: TextInput,
        text_pair: Optional[TextInput] = None,
        add_special_tokens: bool = True,
        padding: Union[bool, str] = False,
        truncation: Union[bool, str, None] = None,
        max_length: Optional[int] = None,
        return_tensors: Optional[str] = None,
        return_token_type_ids: Optional[bool] = None,
        return_attention_mask: Optional[bool] = None,
        return_special_tokens_mask: bool = False,
        return_offsets_mapping: bool = False,
        stride: int = 0,
        return_overflowing_tokens: bool = False,
    ) -> BatchEncoding:
        """Encodes a text or a list of texts (with their pairs in ``text_pair``).

        ``padding``: ``False``, ``True`` / ``"longest"`` (to the longest of the batch) or
        ``"max_length"`` (to ``max_length``, default ``model_max_length``). ``truncation``:
        ``True`` / ``"longest_first"`` truncates to ``max_length`` (default
        ``model_max_length``), special tokens included, the longer of a pair first;
        ``"only_first"`` / ``"only_second"`` cut only that text of a pair. A ``max_length``
        without padding or truncation truncates, as in transformers.
        ``return_overflowing_tokens`` keeps what truncation cuts off as further rows (windows
        that repeat the last ``stride`` tokens of the row before; the other text of a pair is
        repeated whole) and adds ``overflow_to_sample_mapping``, the text each row comes from;
        the result is then a batch even for one text.
        ``return_tensors="np"`` gives (batch, length) int64 arrays, otherwise lists (of lists for
        a batch). ``token_type_ids`` and ``attention_mask`` are returned when the model takes them
        unless asked otherwise. ``return_special_tokens_mask`` adds ``special_tokens_mask`` (1 for
        added special tokens and padding) and ``return_offsets_mapping`` adds ``offset_mapping``:
        the (start, end) character span of each token in its text, (0, 0) for special tokens
        and padding, as transformers' fast tokenizers give them.
        """
        batched = not isinstance(text, str)
        texts = _as_text_list(text, "text")
        pairs = None if text_pair is None else _as_text_list(text_pair, "text_pair")
        if pairs is not None and batched != (not isinstance(text_pair, str)):
            raise ValueError("text and text_pair must both be strings or both be lists of strings")
        if return_tensors not in (None, "np"):
            raise ValueError(f"return_tensors={return_tensors!r} is not supported; use 'np' or None")
        if not isinstance(stride, int) or stride < 0:
            raise ValueError(f"stride must be a non-negative int, got {stride!r}")
        pad_mode, pad_to, truncate_to = self._strategies(padding, truncation, max_length)
        alignment = return_offsets_mapping or return_overflowing_tokens
        encoded = self._core.encode_batch(
            texts,
            pairs,
            add_special_tokens,
            truncate_to,
            pad_mode,
            pad_to,
            return_tensors == "np",
            return_offsets_mapping,
            _truncation_strategy(truncation),
            stride,
            return_overflowing_tokens,
            alignment,
        )
        aligned = {name: encoded.pop(name) for name in ("sequence_ids", "word_ids")} if alignment else None
        wanted = {
            "input_ids": True,
            "token_type_ids": _wanted(return_token_type_ids, "token_type_ids", self.model_input_names),
            "attention_mask": _wanted(return_attention_mask, "attention_mask", self.model_input_names),
            "special_tokens_mask": return_special_tokens_mask,
            "offset_mapping": return_offsets_mapping,
            "overflow_to_sample_mapping": return_overflowing_tokens,
        }
        outputs = {name: values for name, values in encoded.items() if wanted[name]}
        if not batched and return_tensors is None and not return_overflowing_tokens:
            outputs = {name: values[0] for name, values in outputs.items()}
        return BatchEncoding(outputs, aligned)

    def _strategies(
        self, padding: Union[bool, str], truncation: Union[bool, str, None], max_length: Optional[int]
    ) -> Tuple[Optional[str], Optional[int], Optional[int]]:
        """(padding mode, pad-to length, truncation length) as transformers resolves them."""
        if max_length is not None and padding is False and truncation is None:
            truncation = True
        pad_mode = _padding_mode(padding)
        truncate = _truncates(truncation)
        limit = self._core.model_max_length
        if max_length is None:
            if pad_mode == "max_length":
                pad_mode = None if limit is None else pad_mode
                max_length = limit
            if truncate:
                truncate = limit is not None
                max_length = limit
        if pad_mode is not None and self.pad_token_id is None:
            raise ValueError(
                "Asking to pad but the tokenizer does not have a padding token; set pad_token "
                "in tokenizer_config.json or use padding=False"
            )
        pad_to = max_length if pad_mode == "max_length" else None
        return pad_mode, pad_to, max_length if truncate else None

    def encode(
        self,
        text: str,
        text_pair: Optional[str] = None,
        add_special_tokens: bool = True,
        padding: Union[bool, str] = False,
        truncation: Union[bool, str, None] = None,
        max_length: Optional[int] = None,
    ) -> List[int]:
        """The ids of one text (or pair)."""
        if not isinstance(text, str):
            raise TypeError(f"encode takes one text (str), not {type(text).__name__}")
        encoded = self(
            text,
            text_pair,
            add_special_tokens=add_special_tokens,
            padding=padding,
            truncation=truncation,
            max_length=max_length,
        )
        return encoded["input_ids"]

    def decode(self, token_ids: Any, skip_special_tokens: bool = False) -> str:
        """The text of a sequence of ids (a list, a 1-d array, or one id)."""
        return self._core.decode(_id_list(token_ids), skip_special_tokens)

    def batch_decode(self, sequences: Any, skip_special_tokens: bool = False) -> List[str]:
        """The texts of several sequences of ids (a list of lists or a 2-d array)."""
        return self._core.decode_batch([_id_list(ids) for ids in sequences], skip_special_tokens)

    def convert_ids_to_tokens(self, ids: Any, skip_special_tokens: bool = False) -> Union[Optional[str], List[Optional[str]]]:
        """The token of an id, or the tokens of a list of ids (``None`` for unknown ids)."""
        if isinstance(ids, (int, np.integer)):
            return self._core.id_to_token(int(ids))
        special_ids = set(self.all_special_ids) if skip_special_tokens else set()
        return [self._core.id_to_token(i) for i in _id_list(ids) if i not in special_ids]

    def convert_tokens_to_string(self, tokens: Sequence[str]) -> str:
        """The text of a sequence of tokens, through the tokenizer's decoder alone (no
        special-token skipping or clean-up), as transformers' fast tokenizers do."""
        return self._core.convert_tokens_to_string(list(tokens))

    def convert_tokens_to_ids(self, tokens: Union[str, Sequence[str]]) -> Union[Optional[int], List[Optional[int]]]:
        """The id of a token, or the ids of a list of tokens (``unk_token_id`` when unknown)."""
        if isinstance(tokens, str):
            return self._token_id(tokens)
        return [self._token_id(token) for token in tokens]

    def _token_id(self, token: str) -> Optional[int]:
        token_id = self._core.token_to_id(token)
        return self.unk_token_id if token_id is None else token_id

    @property
    def chat_template(self) -> Optional[Union[str, Dict[str, str]]]:
        """The model's chat template (``chat_template.jinja`` or ``tokenizer_config.json``'s
        ``chat_template``): a Jinja string, ``{name: template}`` when it has several, or None.
        Assignable, as in transformers."""
        return self.__dict__.get("_chat_template_override", self._core.chat_template)

    @chat_template.setter
    def chat_template(self, template: Optional[Union[str, Dict[str, str]]]) -> None:
        self.__dict__["_chat_template_override"] = template

    def apply_chat_template(
        self,
        conversation: Union[List[Dict[str, Any]], List[List[Dict[str, Any]]]],
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
    ) -> Union[str, List[str], List[int], List[List[int]], BatchEncoding]:
        """Renders a conversation (a list of ``{"role", "content"}`` dicts, or a list of them for
        a batch) with the model's chat template, as transformers 5 does, and tokenizes it.

        The template is ``chat_template`` (a Jinja template, or the name of one of the model's
        templates), else :attr:`chat_template`. It sees ``messages``, ``tools``, ``documents``,
        ``add_generation_prompt``, the special tokens (``bos_token``...) and every extra keyword
        argument, with transformers' ``raise_exception``, ``strftime_now`` and ``tojson``; it is
        rendered in Rust (no jinja2 needed). ``continue_final_message`` leaves the final message
        open for the model to continue (``True`` for its ``content``, or a field's name).

        With ``tokenize=False`` returns the text (a list for a batch); otherwise the
        :class:`BatchEncoding` (``return_dict=True``, transformers 5's default) or the ids,
        encoded without added special tokens, with ``padding``, ``truncation``, ``max_length``,
        ``return_tensors`` and ``tokenizer_kwargs`` passed to the tokenizer.

        Raises ``ValueError`` when there is no template ("Cannot use chat template functions
        because tokenizer.chat_template is not set..."), when the template calls
        ``raise_exception`` (with its message) or fails, and for an empty conversation.
        """
        from .chat import apply_chat_template

        return apply_chat_template(
            self,
            conversation,
            tools=tools,
            documents=documents,
            chat_template=chat_template,
            add_generation_prompt=add_generation_prompt,
            continue_final_message=continue_final_message,
            tokenize=tokenize,
            padding=padding,
            truncation=truncation,
            max_length=max_length,
            return_tensors=return_tensors,
            return_dict=return_dict,
            return_assistant_tokens_mask=return_assistant_tokens_mask,
            tokenizer_kwargs=tokenizer_kwargs,
            **kwargs,
        )

    def save_pretrained(self, save_directory: Union[str, os.PathLike]) -> Tuple[str, str]:
        """Writes ``tokenizer.json`` and ``tokenizer_config.json``, which both this class and
        transformers' ``AutoTokenizer`` load back; returns their paths."""
        directory = os.fspath(save_directory)
        self._core.save_pretrained(directory)
        return os.path.join(directory, "tokenizer_config.json"), os.path.join(directory, "tokenizer.json")

    @property
    def vocab_size(self) -> int:
        """The size of the base vocabulary, without added tokens."""
        return self._core.vocab_size

    def __len__(self) -> int:
        """The size of the vocabulary with added tokens."""
        return len(self._core)

    @property
    def model_max_length(self) -> int:
        """The longest input the model takes (``int(1e30)`` when it has no limit)."""
        limit = self._core.model_max_length
        return VERY_LARGE_INTEGER if limit is None else limit

    @property
    def padding_side(self) -> str:
        """``"right"`` or ``"left"``."""
        return self._core.padding_side

    @property
    def model_input_names(self) -> List[str]:
        """The inputs the model takes, e.g. ``["input_ids", "attention_mask"]``."""
        return self._core.model_input_names

    @property
    def all_special_tokens(self) -> List[str]:
        """The distinct special tokens."""
        return list(dict.fromkeys(self._special.values()))

    @property
    def all_special_ids(self) -> List[int]:
        """The ids of the distinct special tokens."""
        return [self._token_id(token) for token in self.all_special_tokens]

    def __repr__(self) -> str:
        return (
            f"{type(self).__name__}(vocab_size={self.vocab_size}, "
            f"model_max_length={self.model_max_length}, padding_side={self.padding_side!r}, "
            f"special_tokens={self._special})"
        )


def _special_token_property(name: str) -> Tuple[property, property]:
    """A ``<name>_token`` property and its ``<name>_token_id`` companion."""

    def token(self: Tokenizer) -> Optional[str]:
        return self._special.get(f"{name}_token")

    def token_id(self: Tokenizer) -> Optional[int]:
        text = token(self)
        return None if text is None else self._core.token_to_id(text)

    token.__doc__ = f"The {name} token, or None when the tokenizer has none."
    token_id.__doc__ = f"The id of the {name} token, or None."
    return property(token), property(token_id)


for _name in ("bos", "eos", "unk", "sep", "pad", "cls", "mask"):
    _token, _token_id = _special_token_property(_name)
    setattr(Tokenizer, f"{_name}_token", _token)
    setattr(Tokenizer, f"{_name}_token_id", _token_id)
del _name, _token, _token_id

AutoTokenizer = Tokenizer


def _as_text_list(text: TextInput, name: str) -> List[str]:
    if isinstance(text, str):
        return [text]
    texts = list(text)
    if not all(isinstance(t, str) for t in texts):
        raise TypeError(f"{name} must be a string or a list of strings")
    return texts


def _padding_mode(padding: Union[bool, str]) -> Optional[str]:
    if padding is True or padding == "longest":
        return "longest"
    if padding is False or padding == "do_not_pad":
        return None
    if padding == "max_length":
        return "max_length"
    raise ValueError(f"padding must be True, False, 'longest' or 'max_length', not {padding!r}")


_TRUNCATION_STRATEGIES = ("longest_first", "only_first", "only_second")


def _truncates(truncation: Union[bool, str, None]) -> bool:
    if truncation is True or truncation in _TRUNCATION_STRATEGIES:
        return True
    if truncation in (False, None, "do_not_truncate"):
        return False
    raise ValueError(
        f"truncation must be True, False, 'longest_first', 'only_first' or 'only_second', not {truncation!r}"
    )


def _truncation_strategy(truncation: Union[bool, str, None]) -> str:
    return truncation if truncation in _TRUNCATION_STRATEGIES else "longest_first"


def _wanted(asked: Optional[bool], name: str, model_input_names: List[str]) -> bool:
    return name in model_input_names if asked is None else asked


def _id_list(ids: Any) -> List[int]:
    if isinstance(ids, (int, np.integer)):
        return [int(ids)]
    return [int(i) for i in np.asarray(ids).reshape(-1)]
