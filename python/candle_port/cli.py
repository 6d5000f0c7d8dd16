"""The ``candle-port`` command line (also ``python -m candle_port``).

Subcommands: ``classify``, ``fill-mask``, ``ner``, ``embed``, ``zero-shot`` and ``generate`` run a
pipeline on texts given as arguments or, when there are none, on stdin (one text a line); ``qa``
answers a question from a context, or JSON lines of them; ``download``
fetches a model from the hub; ``chat`` talks with a chat model (``chat_cli``); ``check``
compares a checkpoint's outputs with transformers'.
Each subcommand is a function taking the parsed arguments; ``build_parser`` registers them.
Errors are reported on stderr with exit status 1.
"""

from __future__ import annotations

import argparse
import importlib
import json
import os
import sys
from typing import Any, Dict, List, Optional

import numpy as np

from .chat_cli import add_parser as add_chat_parser

CHECK_SAMPLES = [
    "Hello world!",
    "The quick brown fox jumps over the lazy dog.",
    "café naïve 😀 Zürich, 東京",
]


def parse_ids(text: str) -> List[int]:
    """``"1,2,3"`` → ``[1, 2, 3]``."""
    try:
        ids = [int(part) for part in text.split(",") if part.strip()]
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected comma-separated integers, got {text!r}") from None
    if not ids:
        raise argparse.ArgumentTypeError("the prompt needs at least one id")
    return ids


def read_texts(args: argparse.Namespace) -> List[str]:
    """The texts given as arguments, else the non-empty lines of stdin."""
    texts = args.texts or [line.rstrip("\r\n") for line in sys.stdin if line.strip()]
    if not texts:
        raise ValueError("no input texts: give them as arguments or on stdin, one per line")
    return texts


def make_pipeline(task: str, args: argparse.Namespace, **parameters: Any):
    from .pipelines import pipeline

    return pipeline(
        task, args.model, device=args.device, dtype=args.dtype, batch_size=args.batch_size, **parameters
    )


def print_json(value: Any) -> None:
    print(json.dumps(value, ensure_ascii=False, default=_to_json))


def _to_json(value: Any) -> Any:
    if isinstance(value, np.ndarray):
        return value.tolist()
    if isinstance(value, np.generic):
        return value.item()
    raise TypeError(f"cannot write {type(value).__name__} as JSON")


def classify(args: argparse.Namespace) -> int:
    """Prints ``label<TAB>score`` per text (the ``--top-k`` best, one a line)."""
    texts = read_texts(args)
    results = make_pipeline("text-classification", args, top_k=args.top_k)(texts)
    if args.json:
        print_json(results)
        return 0
    for text, ranked in zip(texts, results):
        if len(texts) > 1:
            print(text)
        for entry in ranked:
            print(f"{entry['label']}\t{entry['score']:.4f}")
    return 0


def fill_mask(args: argparse.Namespace) -> int:
    """Prints ``score<TAB>token<TAB>sequence`` for the best fillings of each mask."""
    texts = read_texts(args)
    results = make_pipeline("fill-mask", args, top_k=args.top_k)(texts)
    results = [results] if len(texts) == 1 else results  # the pipeline unwraps a single text
    if args.json:
        print_json(results)
        return 0
    for text, proposals in zip(texts, results):
        if len(texts) > 1:
            print(text)
        for entry in _flatten(proposals):
            print(f"{entry['score']:.4f}\t{entry['token_str']!r}\t{entry['sequence']}")
    return 0


def _flatten(proposals: List[Any]) -> List[Dict[str, Any]]:
    """One list of proposals per mask → one list."""
    if proposals and isinstance(proposals[0], list):
        return [entry for per_mask in proposals for entry in per_mask]
    return proposals


def ner(args: argparse.Namespace) -> int:
    """Prints ``entity<TAB>score<TAB>start-end<TAB>word`` per entity."""
    texts = read_texts(args)
    options = {} if args.stride is None else {"stride": args.stride}
    results = make_pipeline("token-classification", args, aggregation_strategy=args.aggregation_strategy, **options)(texts)
    if args.json:
        print_json(results)
        return 0
    for text, entities in zip(texts, results):
        if len(texts) > 1:
            print(text)
        for entity in entities:
            label = entity.get("entity_group", entity.get("entity"))
            print(f"{label}\t{entity['score']:.4f}\t{entity['start']}-{entity['end']}\t{entity['word']}")
    return 0


def qa(args: argparse.Namespace) -> int:
    """Answers ``--question`` from ``--context``, or each ``{"question", "context"}`` line of
    ``--jsonl`` (a file, or ``-`` / nothing for stdin); prints ``score<TAB>start-end<TAB>answer``
    per answer."""
    if (args.question is None) != (args.context is None):
        raise ValueError("give both --question and --context, or neither and JSON lines with --jsonl")
    if args.question is not None:
        if args.jsonl is not None:
            raise ValueError("give either --question and --context, or --jsonl, not both")
        pairs = [{"question": args.question, "context": args.context}]
    else:
        pairs = _read_qa_lines(args.jsonl or "-")
    options = dict(
        top_k=args.top_k,
        max_answer_len=args.max_answer_len,
        handle_impossible_answer=args.handle_impossible_answer,
    )
    options.update({name: value for name, value in (("max_seq_len", args.max_seq_len), ("doc_stride", args.doc_stride)) if value is not None})
    results = make_pipeline("question-answering", args, **options)(pairs)
    results = [results] if len(pairs) == 1 else results  # the pipeline unwraps a single pair
    if args.json:
        print_json(results)
        return 0
    for pair, answers in zip(pairs, results):
        if len(pairs) > 1:
            print(pair["question"])
        for answer in answers if isinstance(answers, list) else [answers]:
            print(f"{answer['score']:.4f}\t{answer['start']}-{answer['end']}\t{answer['answer']}")
    return 0


def _read_qa_lines(path: str) -> List[Dict[str, Any]]:
    """The ``{"question", "context"}`` objects of a JSON lines file (``-``: stdin)."""
    source = sys.stdin if path == "-" else open(path, encoding="utf-8")
    name = "stdin" if path == "-" else path
    pairs = []
    with source:
        for number, line in enumerate(source, 1):
            if not line.strip():
                continue
            try:
                pair = json.loads(line)
            except json.JSONDecodeError as err:
                raise ValueError(f"{name} line {number} is not JSON: {err}") from None
            if not isinstance(pair, dict) or not {"question", "context"} <= pair.keys():
                raise ValueError(f'{name} line {number} must be an object with "question" and "context"')
            pairs.append({"question": pair["question"], "context": pair["context"]})
    if not pairs:
        raise ValueError(f"no questions in {name}: one JSON object per line, with question and context")
    return pairs


def zero_shot(args: argparse.Namespace) -> int:
    """Scores ``--labels`` for each text; prints ``label<TAB>score`` per label, best first."""
    texts = read_texts(args)
    classify_text = make_pipeline(
        "zero-shot-classification",
        args,
        candidate_labels=args.labels,
        hypothesis_template=args.hypothesis_template,
        multi_label=args.multi_label,
    )
    results = classify_text(texts)
    if args.json:
        print_json(results)
        return 0
    for result in results:
        if len(texts) > 1:
            print(result["sequence"])
        for label, score in zip(result["labels"], result["scores"]):
            print(f"{label}\t{score:.4f}")
    return 0


def _add_qa_parser(commands: Any) -> None:
    sub = commands.add_parser(
        "qa",
        help="extractive question answering",
        description='Answers --question from --context, or the {"question": ..., "context": ...} lines of --jsonl.',
    )
    _common_options(sub, with_texts=False)
    sub.add_argument("--batch-size", type=int, default=8)
    sub.add_argument("--question")
    sub.add_argument("--context")
    sub.add_argument("--jsonl", metavar="FILE", help='JSON lines of questions and contexts ("-": stdin, the default)')
    sub.add_argument("--top-k", type=int, default=1, help="answers per question")
    sub.add_argument("--max-answer-len", type=int, default=15, help="the longest answer, in tokens")
    sub.add_argument("--max-seq-len", type=int, help="tokens per window of a long context (default: the model's limit, at most 384)")
    sub.add_argument("--doc-stride", type=int, help="tokens shared by consecutive windows")
    sub.add_argument("--handle-impossible-answer", action="store_true", help="allow the empty answer")
    sub.set_defaults(run=qa)


def _add_zero_shot_parser(commands: Any) -> None:
    sub = commands.add_parser("zero-shot", help="zero-shot classification with an NLI model")
    _common_options(sub)
    sub.add_argument("--labels", required=True, help='the candidate labels, comma-separated: "sports,politics"')
    sub.add_argument("--hypothesis-template", default="This example is {}.")
    sub.add_argument("--multi-label", action="store_true", help="score each label on its own")
    sub.set_defaults(run=zero_shot)


def embed(args: argparse.Namespace) -> int:
    """Prints one embedding per text: space-separated floats, or JSON lists."""
    texts = read_texts(args)
    vectors = make_pipeline("feature-extraction", args, pooling=args.pooling, normalize=args.normalize)(texts)
    if args.json:
        print_json(vectors)
        return 0
    for vector in vectors:
        print(" ".join(f"{value:.6g}" for value in vector))
    return 0


def generate(args: argparse.Namespace) -> int:
    """Streams the continuation of ``--prompt`` as text (or of ``--prompt-ids`` as ids)."""
    from .auto import AutoModelForCausalLM

    model_path = args.model or "openai-community/gpt2"
    model = AutoModelForCausalLM.from_pretrained(model_path, device=args.device, dtype=args.dtype)
    if args.prompt_ids is not None:
        for step in model.stream([args.prompt_ids], **_generation_options(args)):
            print(int(step[0]), end=" ", flush=True)
        print()
        return 0
    from .tokenization import Tokenizer

    tokenizer = Tokenizer.from_pretrained(model_path)
    prompt_ids = tokenizer.encode(args.prompt, add_special_tokens=False)
    if not prompt_ids:
        raise ValueError("the prompt is empty")
    stream = model.stream([prompt_ids], **_generation_options(args))
    if args.json:
        new_ids = [int(step[0]) for step in stream]
        print_json({"generated_text": args.prompt + tokenizer.decode(new_ids, skip_special_tokens=True)})
        return 0
    print(args.prompt, end="", flush=True)
    _print_text_stream(stream, tokenizer)
    return 0


def _print_text_stream(stream: Any, tokenizer: Any) -> None:
    """Prints the text of the new ids as it grows, holding it back while it ends in an
    incomplete UTF-8 character (decoded as U+FFFD)."""
    new_ids: List[int] = []
    shown = ""
    text = ""
    for step in stream:
        new_ids.append(int(step[0]))
        text = tokenizer.decode(new_ids, skip_special_tokens=True)
        if not text.endswith("\ufffd"):
            print(text[len(shown) :], end="", flush=True)
            shown = text
    print(text[len(shown) :])


def _generation_options(args: argparse.Namespace) -> Dict[str, Any]:
    """The ``GenerationConfig`` options the arguments set; sampling when any sampling filter
    is given."""
    sampling = {"temperature": args.temperature, "top_k": args.top_k, "top_p": args.top_p}
    options = {name: value for name, value in sampling.items() if value is not None}
    return dict(
        options,
        max_new_tokens=args.max_new_tokens,
        do_sample=bool(options),
        repetition_penalty=args.repetition_penalty,
        seed=args.seed,
    )


def download(args: argparse.Namespace) -> int:
    """Downloads a model repository and prints the local directory."""
    try:
        hub = importlib.import_module("candle_port.hub")
    except ModuleNotFoundError as err:
        if err.name != "candle_port.hub":
            raise
        raise RuntimeError("downloading needs candle_port.hub, which this version of candle_port does not have") from None
    print(hub.snapshot_download(args.repo_id))
    return 0


def check(args: argparse.Namespace) -> int:
    """Runs the checkpoint in candle_port and in transformers on a few inputs, prints the max
    absolute difference per output, and fails when one exceeds the tolerance."""
    ours, architecture = _load_for_check(args.model_path, args.device, args.dtype)
    samples = _check_inputs(args.model_path, ours.config)
    try:
        import torch
        import transformers
    except ImportError:
        for ids in samples:
            ours(ids)
        print("transformers and torch are not installed: the model loads and runs, nothing to compare with", file=sys.stderr)
        return 0
    transformers.utils.logging.disable_progress_bar()
    reference = getattr(transformers, architecture).from_pretrained(args.model_path).eval()
    worst: Dict[str, float] = {}
    for ids in samples:
        with torch.no_grad():
            expected = reference(input_ids=torch.from_numpy(ids))
        for name, value in ours(ids).items():
            diff = float(np.abs(value.astype(np.float64) - expected[name].float().numpy()).max())
            worst[name] = max(worst.get(name, 0.0), diff)
    failed = False
    for name, diff in worst.items():
        ok = diff <= args.tolerance
        failed |= not ok
        print(f"{name}: max abs diff {diff:.3g} {'ok' if ok else 'FAIL'}")
    if failed:
        print(f"candle-port: check failed: differences above {args.tolerance:g}", file=sys.stderr)
    return 1 if failed else 0


def _load_for_check(path: str, device: str, dtype: str):
    """The candle_port model of config.json's first architecture (the base model when this
    package has no class of that name), and the transformers class name to compare with."""
    import candle_port
    from .auto import AutoModel

    config_path = os.path.join(path, "config.json")
    with open(config_path, encoding="utf-8") as f:
        architectures = json.load(f).get("architectures") or []
    if architectures and architectures[0] in candle_port.__all__:
        return getattr(candle_port, architectures[0]).from_pretrained(path, device=device, dtype=dtype), architectures[0]
    model = AutoModel.from_pretrained(path, device=device, dtype=dtype)
    return model, type(model).__name__


def _check_inputs(path: str, config: Any) -> List[np.ndarray]:
    """(1, seq) id arrays: the sample texts through the directory's tokenizer, else random ids."""
    from .tokenization import Tokenizer

    try:
        tokenizer = Tokenizer.from_pretrained(path)
    except FileNotFoundError:
        rng = np.random.RandomState(0)
        return [rng.randint(3, config.vocab_size, size=(1, length)).astype(np.int64) for length in (5, 12, 20)]
    return [np.asarray([tokenizer.encode(text)], dtype=np.int64) for text in CHECK_SAMPLES]


def _common_options(parser: argparse.ArgumentParser, with_texts: bool = True) -> None:
    parser.add_argument("--model", help="model directory or hub id (default: the task's default model)")
    parser.add_argument("--device", default="cpu", help="cpu, cuda, cuda:N or metal")
    parser.add_argument("--dtype", default="float32", help="float32, float16 or bfloat16")
    parser.add_argument("--json", action="store_true", help="print the results as JSON")
    if with_texts:
        parser.add_argument("--batch-size", type=int, default=8)
        parser.add_argument("texts", nargs="*", help="input texts (default: stdin, one per line)")


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="candle-port", description="Run candle_port models.")
    commands = parser.add_subparsers(dest="command", required=True)

    sub = commands.add_parser("classify", help="text classification / sentiment")
    _common_options(sub)
    sub.add_argument("--top-k", type=int, default=1, help="how many labels per text")
    sub.set_defaults(run=classify)

    sub = commands.add_parser("fill-mask", help="fill the <mask> token")
    _common_options(sub)
    sub.add_argument("--top-k", type=int, default=5)
    sub.set_defaults(run=fill_mask)

    sub = commands.add_parser("ner", help="named entities (token classification)")
    _common_options(sub)
    sub.add_argument("--aggregation-strategy", choices=["none", "simple"], default="simple")
    sub.add_argument("--stride", type=int, help="tag long texts in windows overlapping by this many tokens")
    sub.set_defaults(run=ner)

    sub = commands.add_parser("embed", help="one embedding vector per text")
    _common_options(sub)
    sub.add_argument("--pooling", choices=["mean", "cls"], default="mean")
    sub.add_argument("--no-normalize", dest="normalize", action="store_false", help="skip L2 normalisation")
    sub.set_defaults(run=embed)

    gen = commands.add_parser(
        "generate",
        help="generate text with a causal language model",
        description="Greedy by default; any of --temperature, --top-k, --top-p turns sampling on.",
    )
    _common_options(gen, with_texts=False)
    prompt = gen.add_mutually_exclusive_group(required=True)
    prompt.add_argument("--prompt", help="the text to continue; the continuation streams as text")
    prompt.add_argument("--prompt-ids", type=parse_ids, help='comma-separated ids, e.g. "1,2,3"; streams ids')
    gen.add_argument("--max-new-tokens", type=int, default=20)
    gen.add_argument("--temperature", type=float)
    gen.add_argument("--top-k", type=int)
    gen.add_argument("--top-p", type=float)
    gen.add_argument("--repetition-penalty", type=float, default=1.0)
    gen.add_argument("--seed", type=int)
    gen.set_defaults(run=generate)

    add_chat_parser(commands, _common_options)
    _add_qa_parser(commands)
    _add_zero_shot_parser(commands)

    sub = commands.add_parser("download", help="download a model from the Hugging Face hub")
    sub.add_argument("repo_id", help='e.g. "FacebookAI/roberta-base"')
    sub.set_defaults(run=download)

    sub = commands.add_parser("check", help="compare a checkpoint's outputs with transformers'")
    sub.add_argument("model_path", metavar="MODEL", help="model directory")
    sub.add_argument("--tolerance", type=float, default=1e-4, help="largest allowed max abs difference")
    sub.add_argument("--device", default="cpu")
    sub.add_argument("--dtype", default="float32")
    sub.set_defaults(run=check)
    return parser


def main(argv: Optional[List[str]] = None) -> int:
    """Entry point of the ``candle-port`` console script."""
    args = build_parser().parse_args(argv)
    try:
        return args.run(args)
    except (ValueError, TypeError, FileNotFoundError, KeyError, RuntimeError) as err:
        print(f"candle-port: error: {err}", file=sys.stderr)
        return 1


if __name__ == "__main__":
    sys.exit(main())
