"""The ``text-generation`` pipeline."""

from __future__ import annotations

from typing import Any, Dict, List, Optional, Sequence

from ..chat import is_conversation
from .base import Pipeline, _first_not_none


class TextGenerationPipeline(Pipeline):
    """``text-generation``: ``[{"generated_text": ...}]`` per prompt (one record per returned
    sequence), the prompt followed by the new text (only the new text with
    ``return_full_text=False``).

    A prompt can also be a conversation, a list of ``{"role", "content"}`` messages (or a list of
    conversations): it is rendered with the tokenizer's chat template and ``generated_text`` is
    the conversation with the assistant's reply appended, as in transformers. A conversation
    ending with an assistant message is continued (``continue_final_message``).

    Takes ``GPT2LMHeadModel.generate``'s options (``GenerationConfig`` names, or
    ``generation_config=``); without a length, 256 new tokens, as in transformers. Prompts are
    batched with left padding (the eos token pads when the tokenizer has no pad token); with
    sampling, the draws depend on how prompts fall into batches.
    """

    task = "text-generation"

    def __call__(self, inputs: Any, **parameters: Any) -> Any:
        """Runs on a text, a list of texts, a conversation, or a list of conversations."""
        if is_conversation(inputs):
            return self._chat([list(inputs)], parameters)[0]
        if isinstance(inputs, (list, tuple)) and inputs and all(isinstance(i, (list, tuple)) for i in inputs):
            for conversation in inputs:
                if not is_conversation(conversation):
                    raise ValueError("When passing chat dicts as input, each dict must have a 'role' and 'content' key.")
            return self._chat([list(c) for c in inputs], parameters)
        if isinstance(inputs, (list, tuple)) and inputs and all(isinstance(i, dict) for i in inputs):
            raise ValueError("When passing chat dicts as input, each dict must have a 'role' and 'content' key.")
        return super().__call__(inputs, **parameters)

    def _run(self, texts: List[str], return_full_text: bool = True, **generate_kwargs: Any) -> List[Any]:
        encodings = self.tokenizer(texts, add_special_tokens=False)["input_ids"]
        new_texts = self._generate(encodings, generate_kwargs)
        return [
            [{"generated_text": text + new if return_full_text else new} for new in news]
            for text, news in zip(texts, new_texts)
        ]

    def _chat(self, conversations: List[List[Dict[str, Any]]], parameters: Dict[str, Any]) -> List[Any]:
        parameters = {**self.defaults, **parameters}
        return_full_text = parameters.pop("return_full_text", True)
        continue_final: Optional[bool] = parameters.pop("continue_final_message", None)
        template_options = {key: parameters.pop(key) for key in ("tools", "documents", "chat_template") if key in parameters}
        encodings = []
        for conversation in conversations:
            continues = conversation[-1]["role"] == "assistant" if continue_final is None else continue_final
            encodings.append(
                self.tokenizer.apply_chat_template(
                    conversation,
                    add_generation_prompt=not continues,
                    continue_final_message=continues,
                    return_dict=False,
                    **template_options,
                )
            )
        results = []
        for conversation, news in zip(conversations, self._generate(encodings, parameters)):
            continues = conversation[-1]["role"] == "assistant" if continue_final is None else continue_final
            results.append([{"generated_text": _reply(conversation, new, continues) if return_full_text else new} for new in news])
        return results

    def _generate(self, encodings: Sequence[List[int]], generate_kwargs: Dict[str, Any]) -> List[List[str]]:
        """The new text of every returned sequence of every prompt (token ids), in order."""
        for index, ids in enumerate(encodings):
            if not ids:
                raise ValueError(f"prompt {index} is empty")
        pad_id = _first_not_none(self.tokenizer.pad_token_id, self.tokenizer.eos_token_id, 0)
        options = {"pad_token_id": pad_id, "tokenizer": self.tokenizer, **generate_kwargs}
        if not {"max_new_tokens", "max_length", "generation_config"} & set(options):
            options["max_new_tokens"] = 256
        rows = [{"input_ids": ids} for ids in encodings]
        results: List[Any] = [None] * len(rows)
        for chunk in self._batches(rows):
            batch = self._pad([rows[i]["input_ids"] for i in chunk], side="left")
            generated = self.model.generate(batch["input_ids"], batch["attention_mask"], **options)
            if not isinstance(generated, type(batch["input_ids"])):
                generated = generated.sequences  # return_dict_in_generate
            per_prompt = len(generated) // len(chunk)
            new_texts = self.tokenizer.batch_decode(generated[:, batch["input_ids"].shape[1] :], skip_special_tokens=True)
            for position, i in enumerate(chunk):
                results[i] = new_texts[position * per_prompt : (position + 1) * per_prompt]
        return results


def _reply(conversation: List[Dict[str, Any]], new_text: str, continues: bool) -> List[Dict[str, Any]]:
    """The conversation with the reply: appended as an assistant message, or added to the final
    message when that one was continued."""
    if continues:
        final = conversation[-1]
        return list(conversation[:-1]) + [{"role": final["role"], "content": final["content"] + new_text}]
    return list(conversation) + [{"role": "assistant", "content": new_text}]
