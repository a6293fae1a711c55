"""``python -m kgreason.evaluate``: accuracy on CommonsenseQA or OpenBookQA, with predictions on disk.

    python -m kgreason.evaluate --dataset csqa --split ih-test
    python -m kgreason.evaluate --dataset obqa --split test --with-facts
    python -m kgreason.evaluate --dataset csqa --split ih-dev --checkpoint runs/s0/best runs/s1/best
    python -m kgreason.evaluate --dataset csqa --split ih-dev --zero-shot

Writes ``metrics.json``, ``predictions.jsonl`` and, for the official CSQA test split, the
``leaderboard.csv`` (``id,answer``) into ``--output`` (default ``runs/eval/<dataset>-<split>-<model>``).
Several checkpoints are read as runs with different seeds: the metrics give each run's accuracy
and their mean and standard deviation.
"""

from __future__ import annotations

import argparse
import logging
import time
from collections.abc import Sequence
from pathlib import Path

from kgreason.cli import add_common_arguments, positive_int, run_cli, setup_from_args
from kgreason.config import Config, config_to_yaml
from kgreason.data import DATASETS, load_examples, locator_from_config
from kgreason.data.errors import DataError
from kgreason.data.examples import Example
from kgreason.evaluation.report import SeedResult, summarize, write_evaluation
from kgreason.io import atomic_write_text
from kgreason.runtime import package_versions, resolve_path

logger = logging.getLogger(__name__)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m kgreason.evaluate", description=__doc__.split("\n")[0],
                                     formatter_class=argparse.RawDescriptionHelpFormatter,
                                     epilog="\n".join(__doc__.split("\n")[2:]))
    parser.add_argument("--dataset", choices=sorted(DATASETS), required=True)
    parser.add_argument("--split", required=True,
                        help="csqa: ih-dev ih-test dev test ih-train train; obqa: dev test train")
    parser.add_argument("--with-facts", action="store_true",
                        help="OBQA: put the gold open-book fact (fact1) before each question")
    parser.add_argument("--checkpoint", nargs="+", metavar="DIR", default=None,
                        help="checkpoint folders, one per seed (default: the shipped model)")
    parser.add_argument("--zero-shot", action="store_true",
                        help="score with the decoder alone, without graph or latent vectors (the reference)")
    parser.add_argument("--limit", type=positive_int, default=None, metavar="N",
                        help="evaluate the first N questions only (default: data.max_examples, else all)")
    parser.add_argument("--batch-size", type=positive_int, default=16, metavar="N", help="questions per forward pass")
    parser.add_argument("--output", metavar="DIR", default=None, help="folder for metrics.json and predictions.jsonl")
    add_common_arguments(parser)
    return parser


def question_text(example: Example, with_facts: bool) -> str:
    """The text the model reads: with ``with_facts`` the gold open-book fact comes first."""
    if with_facts and example.fact:
        return f"{example.fact.rstrip('.')}. {example.question}"
    return example.question


def prediction_row(prediction, example: Example, seed: int | None) -> dict:
    """One line of predictions.jsonl."""
    label = example.labels[prediction.prediction]
    return {
        "id": example.id,
        "seed": seed,
        "choice_scores": {lab: round(score, 6) for lab, score in zip(example.labels, prediction.choice_scores)},
        "probabilities": {lab: round(p, 6) for lab, p in zip(example.labels, prediction.probabilities)},
        "prediction": label,
        "predicted_text": example.choices[prediction.prediction].text,
        "gold": example.answer,
        "correct": None if example.answer is None else label == example.answer,
        "question_concepts": prediction.question_concepts,
        "choice_concepts": prediction.choice_concepts,
        "num_nodes": prediction.num_nodes,
        "latent_norms": [round(norm, 4) for norm in prediction.latent_norms],
    }


def load_split(config: Config, dataset: str, split: str, with_facts: bool, limit: int | None) -> list[Example]:
    if with_facts and dataset != "obqa":
        raise DataError("--with-facts applies to OBQA only (CSQA has no open-book facts)")
    examples = load_examples(dataset, split, locator_from_config(config), strict=config.data.strict,
                             with_facts=with_facts, max_examples=limit)
    if with_facts:
        for example in examples:
            example.question = question_text(example, with_facts)
    return examples


def evaluate_model(predictor, examples: list[Example], batch_size: int, seed: int | None) -> SeedResult:
    """Predict every example and count the correct ones; ``seconds`` covers prediction only."""
    started = time.perf_counter()
    predictions = predictor.predict(examples, batch_size=batch_size, progress=True)
    seconds = time.perf_counter() - started
    rows = [prediction_row(p, e, seed) for p, e in zip(predictions, examples)]
    answered = [row for row in rows if row["gold"] is not None]
    correct = sum(row["correct"] for row in answered)
    result = SeedResult(seed=seed or 0, correct=correct, count=len(answered), rows=rows, seconds=seconds)
    if predictions:
        from kgreason.model.diversity import nan_to_none, prediction_diversity

        diversity = prediction_diversity(predictions)
        result.latent_cos_questions = nan_to_none(diversity.across_questions)
        result.latent_cos_slots = nan_to_none(diversity.across_slots)
    return result


def default_output(dataset: str, split: str, with_facts: bool, tag: str) -> Path:
    facts = "-facts" if with_facts else ""
    return resolve_path(f"runs/eval/{dataset}-{split}{facts}-{tag}")


def print_summary(dataset: str, split: str, model: str, metrics: dict, paths: dict) -> None:
    accuracy = metrics["accuracy"]
    if accuracy is None:
        shown = "n/a (no gold answers)"
    elif "accuracy_std" in metrics:
        shown = f"{100 * accuracy:.2f} ± {100 * metrics['accuracy_std']:.2f}% over {len(metrics['seeds'])} seeds"
    else:
        shown = f"{100 * accuracy:.2f}% (± {100 * metrics['standard_error']:.2f} standard error)"
    rows = [("dataset", f"{dataset} {split}"), ("model", model), ("questions", f"{metrics['questions']:,}"),
            ("accuracy", shown), ("speed", f"{metrics['questions_per_second']:.1f} questions/s")]
    if metrics.get("latent_cos_questions") is not None:
        rows.append(("latent cosine", f"{metrics['latent_cos_questions']:.4f} across questions, "
                                      f"{metrics.get('latent_cos_slots') or float('nan'):.4f} across slots"))
    rows += [(name, str(path)) for name, path in paths.items()]
    width = max(len(name) for name, _ in rows)
    for name, value in rows:
        print(f"{name.ljust(width)}  {value}")


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    config = setup_from_args(args)
    if args.zero_shot and args.checkpoint:
        raise DataError("--zero-shot evaluates the decoder alone; leave out --checkpoint")
    limit = args.limit if args.limit is not None else config.data.max_examples
    examples = load_split(config, args.dataset, args.split, args.with_facts, limit)
    logger.info("evaluating %d %s %s questions", len(examples), args.dataset, args.split)

    results, checkpoints, resolved = [], [], config
    if args.zero_shot:
        from kgreason.evaluation.zero_shot import ZeroShotScorer

        scorer = ZeroShotScorer(config)
        results.append(evaluate_model(scorer, examples, args.batch_size, config.runtime.seed))
        model_name, tag = f"{scorer.backbone_id} alone (zero-shot)", "zero-shot"
    else:
        from kgreason.model.predictor import DEFAULT_MODEL_DIR, Predictor

        folders = args.checkpoint or [None]
        for folder in folders:
            predictor = Predictor.from_checkpoint(folder, args.overrides)
            resolved = predictor.config
            checkpoints.append(str(folder or DEFAULT_MODEL_DIR))
            results.append(evaluate_model(predictor, examples, args.batch_size, resolved.runtime.seed))
        model_name = ", ".join(checkpoints)
        tag = "default" if args.checkpoint is None else Path(folders[0]).resolve().parent.name
    elapsed = sum(result.seconds for result in results)

    metrics = summarize(results)
    metrics.update({
        "dataset": args.dataset, "split": args.split, "with_facts": args.with_facts, "questions": len(examples),
        "model": model_name, "checkpoints": checkpoints, "zero_shot": args.zero_shot,
        "seconds": round(elapsed, 1), "questions_per_second": len(examples) * len(results) / max(elapsed, 1e-9),
        "config": resolved.to_dict(), "versions": package_versions(),
    })
    output = resolve_path(args.output) if args.output else default_output(args.dataset, args.split,
                                                                           args.with_facts, tag)
    rows = [row for result in results for row in result.rows]
    leaderboard = results[0].rows if args.dataset == "csqa" and args.split == "test" else None
    paths = write_evaluation(output, metrics, rows, leaderboard)
    atomic_write_text(output / "config.yaml", config_to_yaml(resolved))
    print_summary(args.dataset, args.split, model_name, metrics, paths)
    return 0


if __name__ == "__main__":
    run_cli(main)
