"""The ``question-answering`` pipeline: extractive answers from a context, as transformers 4.x's
``QuestionAnsweringPipeline`` gives them with a fast tokenizer (transformers 5 removed it).

Long contexts are split into windows of ``max_seq_len`` tokens (the question repeated in each)
that overlap by ``doc_stride`` tokens; every window of every question runs through the model in
length-sorted batches, and each question's answers are gathered over its windows.
"""

from __future__ import annotations

from typing import Any, Dict, List, Optional, Sequence, Tuple

import numpy as np

from .base import Pipeline

Example = Tuple[str, str]  # (question, context)


class QuestionAnsweringPipeline(Pipeline):
    """``question-answering``: ``{"score", "start", "end", "answer"}`` for a question and its
    context (a list of them when ``top_k > 1``), ``start`` / ``end`` being character offsets of
    ``answer`` in the context.

    Call it as transformers' pipeline: ``qa(question=..., context=...)`` (each a string, or
    lists of equal length, or a list of questions on one context), ``qa(question, context)``,
    ``qa({"question": ..., "context": ...})`` or ``qa([{...}, {...}])``. One pair gives its result,
    several a list of results.

    Parameters: ``top_k`` (answers per question, default 1), ``max_answer_len`` (tokens, default
    15), ``max_seq_len`` (tokens per window, question and special tokens included; default the
    model's limit, at most 384), ``doc_stride`` (tokens shared by consecutive windows; default
    ``min(max_seq_len // 2, 128)``), ``handle_impossible_answer`` (also offer the empty answer,
    scored by the first token's start × end probability), ``align_to_words`` (widen answers to
    whole words, default True), ``max_question_len`` (accepted for compatibility; like
    transformers with a fast tokenizer it changes nothing: questions are never cut).
    """

    task = "question-answering"

    def __call__(self, *args: Any, **parameters: Any) -> Any:
        examples = _examples(args, parameters)
        self._check_parameters(parameters)
        results = self._run(examples, **{**self.defaults, **parameters})
        return results[0] if len(examples) == 1 else results

    def _run(  # type: ignore[override]
        self,
        examples: List[Example],
        top_k: int = 1,
        doc_stride: Optional[int] = None,
        max_answer_len: int = 15,
        max_seq_len: Optional[int] = None,
        max_question_len: int = 64,
        handle_impossible_answer: bool = False,
        align_to_words: bool = True,
    ) -> List[Any]:
        _positive("top_k", top_k)
        _positive("max_answer_len", max_answer_len)
        _positive("max_question_len", max_question_len)
        max_seq_len, doc_stride = self._window(max_seq_len, doc_stride)
        spans, owners = self._spans(examples, max_seq_len, doc_stride)
        logits = self._forward_outputs(spans, ("start_logits", "end_logits"), per_token=True)
        context_index = 1 if self._question_first else 0
        results = []
        for index, (_, context) in enumerate(examples):
            own = [(span, start, end) for span, (start, end), owner in zip(spans, logits, owners) if owner == index]
            results.append(
                _answers(context, own, context_index, top_k, handle_impossible_answer, max_answer_len, align_to_words)
            )
        return results

    @property
    def _question_first(self) -> bool:
        """transformers puts the question first unless the tokenizer pads on the left."""
        return self.tokenizer.padding_side == "right"

    def _window(self, max_seq_len: Optional[int], doc_stride: Optional[int]) -> Tuple[int, int]:
        limit = self.max_input_length
        if max_seq_len is None:
            max_seq_len = min(limit, 384)
        _positive("max_seq_len", max_seq_len)
        if max_seq_len > limit:
            raise ValueError(f"max_seq_len={max_seq_len} is more than the model's limit of {limit} tokens")
        if doc_stride is None:
            doc_stride = min(max_seq_len // 2, 128)
        if not isinstance(doc_stride, int) or isinstance(doc_stride, bool) or doc_stride < 0:
            raise ValueError(f"doc_stride must be a non-negative int, got {doc_stride!r}")
        if doc_stride > max_seq_len:
            raise ValueError(f"doc_stride ({doc_stride}) is larger than max_seq_len ({max_seq_len})")
        return max_seq_len, doc_stride

    def _spans(self, examples: List[Example], max_seq_len: int, doc_stride: int) -> Tuple[List[Dict[str, Any]], List[int]]:
        """The windows of every example (token lists, offsets, alignment and ``p_mask``) and the
        example each comes from."""
        questions = [question for question, _ in examples]
        contexts = [context for _, context in examples]
        firsts, seconds = (questions, contexts) if self._question_first else (contexts, questions)
        options = dict(
            truncation="only_second" if self._question_first else "only_first",
            max_length=max_seq_len,
            stride=doc_stride,
            return_token_type_ids=True,
            return_overflowing_tokens=True,
            return_offsets_mapping=True,
            return_special_tokens_mask=True,
        )
        try:
            encoded = self.tokenizer(firsts, seconds, **options)
        except ValueError as error:
            raise self._window_error(examples, firsts, seconds, options, max_seq_len, doc_stride) from error
        names = ("input_ids", "attention_mask", "token_type_ids", "offset_mapping")
        spans = []
        for row in range(len(encoded["input_ids"])):
            span: Dict[str, Any] = {name: encoded[name][row] for name in names}
            span["sequence_ids"] = encoded.sequence_ids(row)
            span["word_ids"] = encoded.word_ids(row)
            span["p_mask"] = self._p_mask(span)
            spans.append(span)
        return spans, list(encoded["overflow_to_sample_mapping"])

    def _p_mask(self, span: Dict[str, Any]) -> List[int]:
        """1 for the tokens that cannot be in an answer: the question and special tokens, except
        the ``<s>`` / ``[CLS]`` token (where models point for "no answer"). As in transformers,
        a context-first tokenizer (padding on the left) masks nothing but that."""
        if self._question_first:
            mask = [int(sequence != 1) for sequence in span["sequence_ids"]]
        else:
            mask = [0] * len(span["sequence_ids"])
        cls_id = self.tokenizer.cls_token_id
        if cls_id is not None:
            for i, token_id in enumerate(span["input_ids"]):
                if token_id == cls_id:
                    mask[i] = 0
        return mask

    def _window_error(self, examples, firsts, seconds, options, max_seq_len: int, doc_stride: int) -> ValueError:
        """The error that names the pair that cannot be cut into windows, and why."""
        for index, (first, second) in enumerate(zip(firsts, seconds)):
            try:
                self.tokenizer(first, second, **options)
            except ValueError as error:
                question_tokens = len(self.tokenizer(examples[index][0], add_special_tokens=False)["input_ids"])
                return ValueError(
                    f"question {index} ({question_tokens} tokens) leaves too little room for its context in "
                    f"max_seq_len={max_seq_len} tokens with doc_stride={doc_stride}: raise max_seq_len, lower "
                    f"doc_stride or shorten the question ({error})"
                )
        return ValueError("cannot split the contexts into windows")


def _examples(args: Sequence[Any], parameters: Dict[str, Any]) -> List[Example]:
    """The (question, context) pairs of a call, from the forms transformers accepts."""
    question, context = parameters.pop("question", None), parameters.pop("context", None)
    if args:
        if question is not None or context is not None:
            raise TypeError("give the question and context either as arguments or as question= and context=, not both")
        if len(args) == 2 and all(isinstance(arg, str) for arg in args):
            items: List[Any] = [{"question": args[0], "context": args[1]}]
        elif len(args) == 1:
            items = [args[0]] if isinstance(args[0], dict) else _as_list(args[0])
        else:
            items = list(args)
    elif question is None and context is None:
        raise ValueError("question-answering needs a question and a context: qa(question=..., context=...)")
    elif question is None or context is None:
        missing = "context" if context is None else "question"
        raise ValueError(f"question-answering got no {missing}: give both question= and context=")
    elif isinstance(question, str) and isinstance(context, str):
        items = [{"question": question, "context": context}]
    elif isinstance(question, (list, tuple)) and isinstance(context, str):
        items = [{"question": q, "context": context} for q in question]
    elif isinstance(question, (list, tuple)) and isinstance(context, (list, tuple)):
        if len(question) != len(context):
            raise ValueError(f"got {len(question)} questions but {len(context)} contexts")
        items = [{"question": q, "context": c} for q, c in zip(question, context)]
    else:
        raise TypeError("question and context must be strings, lists of strings, or a list of questions and one context")
    if not items:
        raise ValueError("question-answering got no question")
    return [_example(item, index) for index, item in enumerate(items)]


def _as_list(value: Any) -> List[Any]:
    if isinstance(value, (str, bytes)) or not hasattr(value, "__iter__"):
        raise TypeError(f"question-answering takes dicts with a question and a context, not {type(value).__name__}")
    return list(value)


def _example(item: Any, index: int) -> Example:
    if not isinstance(item, dict):
        raise TypeError(f"input {index} must be a dict with 'question' and 'context', not {type(item).__name__}")
    pair = []
    for key in ("question", "context"):
        if key not in item:
            raise KeyError(f"input {index} has no {key!r}: each input needs 'question' and 'context'")
        value = item[key]
        if value is None:
            raise ValueError(f"the {key} of input {index} is None")
        if not isinstance(value, str):
            raise TypeError(f"the {key} of input {index} must be a string, not {type(value).__name__}")
        if not value:
            raise ValueError(f"the {key} of input {index} is empty")
        pair.append(value)
    return pair[0], pair[1]


def _positive(name: str, value: Any) -> None:
    if not isinstance(value, int) or isinstance(value, bool) or value < 1:
        raise ValueError(f"{name} must be an int >= 1, got {value!r}")


# The answer search, as transformers 4.57's question_answering.py (select_starts_ends,
# decode_spans, postprocess), numpy for numpy so that ties break the same way.


def _answers(
    context: str,
    spans: List[Tuple[Dict[str, Any], np.ndarray, np.ndarray]],
    context_index: int,
    top_k: int,
    handle_impossible_answer: bool,
    max_answer_len: int,
    align_to_words: bool,
) -> Any:
    min_null_score = 1000000.0
    answers: List[Dict[str, Any]] = []
    candidates_per_span = top_k * 2 + 10 if align_to_words else top_k  # some vanish when aligned to words
    for span, start, end in spans:
        starts, ends, scores, min_null_score = _select_starts_ends(
            start[None], end[None], span["p_mask"], np.asarray(span["attention_mask"])[None],
            min_null_score, candidates_per_span, handle_impossible_answer, max_answer_len,
        )
        for s, e, score in zip(starts, ends, scores):
            start_index, end_index = _char_span(span, int(s), int(e), context_index, align_to_words)
            text = context[start_index:end_index]
            same = next((a for a in answers if a["answer"].lower() == text.lower()), None)
            if same is not None:
                same["score"] += score.item()
            else:
                answers.append({"score": score.item(), "start": start_index, "end": end_index, "answer": text})
    if handle_impossible_answer:
        answers.append({"score": min_null_score, "start": 0, "end": 0, "answer": ""})
    answers = sorted(answers, key=lambda answer: answer["score"], reverse=True)[:top_k]
    return answers[0] if len(answers) == 1 else answers


def _select_starts_ends(start, end, p_mask, attention_mask, min_null_score, top_k, handle_impossible_answer, max_answer_len):
    """Start and end probabilities over the answerable tokens, then the best spans."""
    undesired_tokens = np.abs(np.array(p_mask) - 1)
    if attention_mask is not None:
        undesired_tokens = undesired_tokens & attention_mask
    undesired_tokens_mask = undesired_tokens == 0.0
    start = np.where(undesired_tokens_mask, -10000.0, start)
    end = np.where(undesired_tokens_mask, -10000.0, end)
    start = np.exp(start - start.max(axis=-1, keepdims=True))
    start = start / start.sum()
    end = np.exp(end - end.max(axis=-1, keepdims=True))
    end = end / end.sum()
    if handle_impossible_answer:
        min_null_score = min(min_null_score, (start[0, 0] * end[0, 0]).item())
    start[0, 0] = end[0, 0] = 0.0
    starts, ends, scores = _decode_spans(start, end, top_k, max_answer_len, undesired_tokens)
    return starts, ends, scores, min_null_score


def _decode_spans(start, end, topk, max_answer_len, undesired_tokens):
    """The ``topk`` (start, end) pairs with the highest start × end probability among those
    with ``start <= end < start + max_answer_len``."""
    outer = np.matmul(np.expand_dims(start, -1), np.expand_dims(end, 1))
    candidates = np.tril(np.triu(outer), max_answer_len - 1)
    scores_flat = candidates.flatten()
    if topk == 1:
        idx_sort = [np.argmax(scores_flat)]
    elif len(scores_flat) < topk:
        idx_sort = np.argsort(-scores_flat)
    else:
        idx = np.argpartition(-scores_flat, topk)[0:topk]
        idx_sort = idx[np.argsort(-scores_flat[idx])]
    starts, ends = np.unravel_index(idx_sort, candidates.shape)[1:]
    # transformers tests membership in undesired_tokens.nonzero(), a (rows, columns) pair whose
    # row indices (0) make token 0 always count as answerable; kept as it is, for parity.
    desired_spans = np.isin(starts, undesired_tokens.nonzero()) & np.isin(ends, undesired_tokens.nonzero())
    starts = starts[desired_spans]
    ends = ends[desired_spans]
    scores = candidates[0, starts, ends]
    return starts, ends, scores


def _char_span(span: Dict[str, Any], s: int, e: int, context_index: int, align_to_words: bool) -> Tuple[int, int]:
    """The characters of tokens ``s..e`` in the context: widened to their whole words when
    ``align_to_words`` and both are words of the context, else the tokens' own offsets."""
    offsets = span["offset_mapping"]
    if align_to_words:
        first = _word_chars(span, _token_word(span, s), context_index)
        last = _word_chars(span, _token_word(span, e), context_index)
        if first is not None and last is not None:
            return first[0], last[1]
    return offsets[s][0], offsets[e][1]


def _token_word(span: Dict[str, Any], token: int) -> Optional[int]:
    """``Encoding.token_to_word``: the word of a token of either text, None for special tokens."""
    return span["word_ids"][token] if span["sequence_ids"][token] is not None else None


def _word_chars(span: Dict[str, Any], word: Optional[int], sequence: int) -> Optional[Tuple[int, int]]:
    """``Encoding.word_to_chars(word, sequence)``: from the start of the word's first token to
    the end of its last, within the tokens of text ``sequence``."""
    if word is None:
        return None
    tokens = [i for i, s in enumerate(span["sequence_ids"]) if s == sequence]
    found = []
    for i in tokens:  # the words of a text rise; tokenizers stops at the first past `word`
        w = span["word_ids"][i]
        if w is not None and w > word:
            break
        if w == word:
            found.append(i)
    if not found:
        return None
    return span["offset_mapping"][found[0]][0], span["offset_mapping"][found[-1]][1]
