"""``python -m kgreason.answer``: answer commonsense questions through the knowledge graph.

    python -m kgreason.answer "Where would you most likely find a jellyfish?"
    python -m kgreason.answer "Where is milk kept cold?" --choices "fridge|oven|garden"
    python -m kgreason.answer "Where is milk kept cold? A) fridge B) oven C) garden" --explain
    python -m kgreason.answer - --json < questions.txt

A question with choices (``--choices`` or inline "A) ... B) ...") gets the best-scoring choice and a
probability for each; a question without choices gets an answer sentence written by the decoder.
Batch input (``-`` for stdin, or ``--file``) has one question per line, either plain text or a JSON
object ``{"question": ..., "choices": [...], "id": ...}``. The graph and the model are built or
loaded on first use.
"""

from __future__ import annotations

import argparse
import json
import logging
import sys
import time
from collections.abc import Iterator, Sequence

from kgreason.cli import add_common_arguments, positive_int, run_cli, split_overrides
from kgreason.config import load_config
from kgreason.data.examples import Example
from kgreason.errors import KgreasonError
from kgreason.questions import QuestionError, make_example
from kgreason.runtime import set_seed, set_threads, setup_logging

logger = logging.getLogger(__name__)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m kgreason.answer", description=__doc__.split("\n")[0],
                                     formatter_class=argparse.RawDescriptionHelpFormatter,
                                     epilog="\n".join(__doc__.split("\n")[2:]))
    parser.add_argument("inputs", nargs="*", metavar="QUESTION",
                        help="the question ('-' reads questions from stdin), then optional key=value overrides")
    parser.add_argument("--choices", metavar="A|B|C", help="answer choices separated by '|'")
    parser.add_argument("--file", metavar="FILE", help="read questions from FILE, one per line (text or JSON)")
    parser.add_argument("--checkpoint", metavar="DIR", help="checkpoint folder (default: the shipped model)")
    parser.add_argument("--explain", action="store_true",
                        help="show grounded concepts, graph paths and what each latent vector is closest to")
    parser.add_argument("--json", action="store_true", help="print one JSON object per question")
    parser.add_argument("--max-new-tokens", type=positive_int, default=32, metavar="N",
                        help="longest free-form answer, in decoder tokens")
    parser.add_argument("--config", metavar="FILE", default=None, help="YAML config (see configs/)")
    add_common_arguments(parser, with_config=False)
    return parser


def read_batch(lines: Sequence[str]) -> Iterator[tuple[int, dict]]:
    """Yield (line number, request) for each non-blank line: a JSON object or a plain-text question."""
    for number, line in enumerate(lines, start=1):
        text = line.strip()
        if not text:
            continue
        if text.startswith("{"):
            try:
                request = json.loads(text)
            except json.JSONDecodeError as error:
                yield number, {"error": f"line {number}: malformed JSON ({error.msg}); give text or a JSON object"}
                continue
            if not isinstance(request.get("question"), str):
                yield number, {"error": f"line {number}: JSON object without a 'question' string"}
                continue
            yield number, request
        else:
            yield number, {"question": text}


def requests_from_args(args: argparse.Namespace, questions: list[str]) -> list[tuple[int, dict]]:
    """The questions to answer, from the command line, stdin or --file."""
    if args.file and questions:
        raise QuestionError("give either a question or --file, not both")
    if args.file:
        try:
            with open(args.file, encoding="utf-8") as stream:
                return list(read_batch(stream.readlines()))
        except (OSError, UnicodeDecodeError) as error:
            raise QuestionError(f"cannot read questions from {args.file!r}: {error}") from None
    if questions == ["-"]:
        return list(read_batch(sys.stdin.read().splitlines()))
    if len(questions) > 1:
        raise QuestionError(f"got {len(questions)} questions {questions!r}; quote the question, or use --file or -")
    if not questions:
        raise QuestionError("no question given; pass one in quotes, '-' for stdin, or --file FILE")
    choices = args.choices.split("|") if args.choices is not None else None
    return [(0, {"question": questions[0], "choices": choices})]


class Answerer:
    """Load the model once and answer many questions with it."""

    def __init__(self, checkpoint: str | None, overrides: list[str], explain: bool, max_new_tokens: int):
        from kgreason.model.predictor import Predictor

        started = time.perf_counter()
        self.predictor = Predictor.from_checkpoint(checkpoint, overrides)
        self.max_new_tokens = max_new_tokens
        self.explainer = None
        if explain:
            from kgreason.explain import Explainer

            self.explainer = Explainer(self.predictor)
        logger.info("model ready in %.1f s", time.perf_counter() - started)

    def answer(self, example: Example) -> dict:
        """Answer one question; returns the JSON-ready result."""
        from kgreason.model.predictor import Query

        started = time.perf_counter()
        source = self.predictor.graph_source
        graph = source.graph_for(example.question, list(example.choice_texts))
        query = Query(question=example.question, choice_texts=list(example.choice_texts), id=example.id)
        prediction = self.predictor.predict([query], [graph])[0]

        result = {"id": example.id, "question": example.question, "choices": list(example.choice_texts)}
        if example.choices:
            result["answer"] = prediction.predicted_text
            result["label"] = example.labels[prediction.prediction]
            result["probabilities"] = {choice: round(p, 4) for choice, p in
                                       zip(example.choice_texts, prediction.probabilities)}
            result["choice_scores"] = [round(score, 4) for score in prediction.choice_scores]
        else:
            result["answer"] = self.predictor.generate(example.question, graph, max_new_tokens=self.max_new_tokens)
        result.update({
            "question_concepts": prediction.question_concepts,
            "choice_concepts": prediction.choice_concepts,
            "num_nodes": prediction.num_nodes,
            "latent_norms": [round(norm, 4) for norm in prediction.latent_norms],
        })
        if "warning" in example.metadata:
            result["warning"] = example.metadata["warning"]
        if self.explainer is not None:
            explanation = self.explainer.explain(prediction, graph, example.question, result["answer"])
            result["explanation"] = explanation.to_dict()
        result["seconds"] = round(time.perf_counter() - started, 3)
        return result


def format_result(result: dict) -> str:
    """Human-readable output for one answered question."""
    lines = [f"Question: {result['question']}"]
    if result.get("warning"):
        lines.append(f"Note: {result['warning']}")
    lines.append(f"Answer: {result['answer']}")
    if result["choices"]:
        width = max(len(choice) for choice in result["choices"])
        for choice, probability in result["probabilities"].items():
            mark = "  <- answer" if choice == result["answer"] else ""
            lines.append(f"  {choice.ljust(width)}  {probability:6.1%}{mark}")

    explanation = result.get("explanation")
    if explanation:
        lines.append("")
        concepts = ", ".join(explanation["question_concepts"]) or "(none)"
        lines.append(f"Concepts in the question: {concepts}")
        for choice, found in zip(result["choices"], explanation["choice_concepts"]):
            lines.append(f"Concepts in {choice!r}: {', '.join(found) or '(none)'}")
        lines.append("Graph paths to the answer:")
        lines += [f"  {path['text']}  ({path['score']:.2f})" for path in explanation["paths"]] or ["  (none)"]
        for latent in explanation["latents"]:
            lines.append(f"Latent {latent['index'] + 1} (norm {latent['norm']:.2f}) is closest to:")
            lines += [f"  explanation: {item['text']}  ({item['score']:.2f})" for item in latent["explanations"]]
            lines += [f"  graph fact:  {item['text']}  ({item['score']:.2f})" for item in latent["facts"]]
        lines += [f"Note: {note}" for note in explanation["notes"]]
    return "\n".join(lines)


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_intermixed_args(argv)
    setup_logging(1 if args.verbose else -1 if args.quiet else 0)
    overrides, questions = split_overrides(args.inputs)
    config = load_config(args.config, overrides)
    set_threads(config.runtime.num_threads)
    set_seed(config.runtime.seed)

    requests = requests_from_args(args, questions)
    examples = []
    for number, request in requests:
        if "error" in request:
            examples.append((number, request["error"]))
            continue
        try:
            example = make_example(request["question"], request.get("choices"), request.get("id"))
        except QuestionError as error:
            if len(requests) == 1:
                raise
            examples.append((number, f"line {number}: {error}"))
            continue
        examples.append((number, example))
    if not examples:
        raise QuestionError("the input holds no questions")

    answerer = Answerer(args.checkpoint, overrides, args.explain, args.max_new_tokens)
    failures = 0
    for number, example in examples:
        if isinstance(example, str):
            failures += 1
            print(json.dumps({"line": number, "error": example}) if args.json else f"error: {example}")
            continue
        try:
            result = answerer.answer(example)
        except KgreasonError as error:
            if len(examples) == 1:
                raise
            failures += 1
            print(json.dumps({"id": example.id, "error": str(error)}) if args.json else f"error: {error}")
            continue
        print(json.dumps(result, ensure_ascii=False) if args.json else format_result(result))
        if not args.json and len(examples) > 1:
            print()
    return 1 if failures else 0


if __name__ == "__main__":
    run_cli(main)
