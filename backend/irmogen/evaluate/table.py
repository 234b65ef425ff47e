"""The Markdown tables of `irmogen eval`: one line per row (mean ± 95 % interval of each metric),
what the IRMoGen rounds did, and the paper's first finding (final minus first Top-1, paired).
Pure Python; used by `run` (one model) and `stages` (every stage of a training run).
"""
from __future__ import annotations

COLUMNS = (("top1", "Top-1"), ("top2", "Top-2"), ("top3", "Top-3"), ("fid", "FID"), ("mm_dist", "MM-Dist"),
           ("diversity", "Diversity"), ("mmodality", "MModality"))


def markdown_rows(rows: dict, cols=COLUMNS) -> list[str]:
    """The header and one line per row: mean +- 95 % interval of each metric ("-" where not measured)."""
    cell = lambda row, k: f"{row[k]['mean']:.3f} ± {row[k]['interval']:.3f}" if k in row else "-"
    return (["| row | " + " | ".join(h for _, h in cols) + " |", "|---" * (len(cols) + 1) + "|"]
            + [f"| {name} | " + " | ".join(cell(row, k) for k, _ in cols) + " |" for name, row in rows.items()])


def format_table(result: dict) -> str:
    """A Markdown table: mean +- 95 % interval of every metric of every row."""
    cols = [(k, h) for k, h in COLUMNS if any(k in r for r in result["rows"].values())]
    lines = markdown_rows(result["rows"], cols)
    c = next(iter(result["rows"].values()))["counts"]
    draws = result["protocol"]["draws"]
    lines.append(f"\n{result['texts_measured']} texts of {result['clips']} clips of split {result['split']!r}"
                 f"{f' ({draws} draws of one caption per clip, averaged)' if draws > 1 else ''}; batches of {c['batch_size']}, "
                 f"{c['repetitions']} repetitions, diversity over {c['diversity_times']} pairs; "
                 f"decoding {result['protocol']['decoding']}.")
    distinct = {n: r["counts"]["distinct_motions"] for n, r in result["rows"].items() if "distinct_motions" in r["counts"]}
    if distinct:
        texts = max(r["counts"].get("distinct_texts", 0) for r in result["rows"].values())
        lines.append("Distinct motions among the texts: " + ", ".join(f"{n} {k}" for n, k in distinct.items())
                     + (f" (for {texts} distinct texts)." if texts else "."))
    if "rounds" in result:
        lines.append(f"IRMoGen rounds ({result['protocol']['rounds']}): " + rounds_summary(result["rounds"]))
    return "\n".join(lines)


def rounds_summary(r: dict) -> str:
    """What the rounds did, in two sentences: how many motions per text, how many texts were refined
    and with what effect, and the paper's first finding (final minus first Top-1, paired)."""
    line = f"motions per text 1..{len(r['histogram'])}: {r['histogram']} (mean {r['mean']:.2f})"
    if "refined" in r:
        line += f"; refined {100 * r['refined']:.0f} % of the texts"
    if "refined_closer" in r:
        line += (f", the final motion closer to its text than the first in {100 * r['refined_closer']:.0f} % of "
                 f"those (mean distance {r['refined_distance_first']:.3f} -> {r['refined_distance_final']:.3f})")
    return line + ". " + top1_gain_line(r["top1_gain"])


def top1_gain_line(gain: dict) -> str:
    """The paper's first finding as one line: final minus first Top-1, paired over the same texts."""
    m, h = gain["mean"], gain["interval"]
    verdict = "above" if m - h > 0 else "below" if m + h < 0 else "within noise of"
    return (f"Final minus first motion, Top-1: {m:+.3f} ± {h:.3f} (95 %, paired over texts): the final motion "
            f"is {verdict} the first.")
