"""ROUGE-L F between mixed Chinese/English texts, as KAgentBench scores them: CJK characters are
one token each, other text is split by nltk's Treebank word tokenizer (no punkt data needed), and
the tokens go through `rouge-chinese`'s summary-level `rouge-l`. That package splits the
space-joined tokens into sentences and then flattens them again, so its score is the LCS of the
two token sequences: P = LCS/len(hyp), R = LCS/len(ref), F = 2PR / (P + R + 1e-8)."""

from __future__ import annotations

import re
from functools import lru_cache

# CJK ideographs, CJK punctuation and full-width forms: each character is a token of its own.
_CJK = re.compile(r"[\u2e80-\u2fdf\u3000-\u303f\u3040-\u30ff\u3400-\u4dbf\u4e00-\u9fff\uf900-\ufaff\uff00-\uffef]")
# rouge-chinese's sentence cut, applied to the joined tokens (it only matters for whitespace).
_SENTENCE_ENDS = (
    (re.compile("([。！？?])([^”’])"), r"\1\n\2"),
    (re.compile(r"(\.{6})([^”’])"), r"\1\n\2"),
    (re.compile("(…{2})([^”’])"), r"\1\n\2"),
    (re.compile("([。！？?][”’])([^，。！？?])"), r"\1\n\2"),
)
_EPSILON = 1e-8  # rouge-chinese adds it to P + R


@lru_cache(maxsize=1)
def _treebank():
    from nltk.tokenize import TreebankWordTokenizer

    return TreebankWordTokenizer()


def tokenize(text: str) -> list[str]:
    """CJK characters one by one; each run of other text through the Treebank tokenizer."""
    tokens: list[str] = []
    run: list[str] = []
    for ch in text:
        if _CJK.match(ch):
            tokens.extend(_treebank().tokenize("".join(run)) if run else ())
            run = []
            tokens.append(ch)
        else:
            run.append(ch)
    if run:
        tokens.extend(_treebank().tokenize("".join(run)))
    return tokens


def _words(tokens: list[str]) -> list[str]:
    """The words rouge-chinese scores for the text `" ".join(tokens)`."""
    para = " ".join(tokens)
    for pattern, replacement in _SENTENCE_ENDS:
        para = pattern.sub(replacement, para)
    sentences = [" ".join(s.split()) for s in para.rstrip().split("\n") if len(s) > 0]
    return [word for sentence in sentences for word in sentence.split(" ")]


def lcs_length(x: list[str], y: list[str]) -> int:
    if len(x) < len(y):
        x, y = y, x
    previous = [0] * (len(y) + 1)
    for a in x:
        current = [0]
        for j, b in enumerate(y, 1):
            current.append(previous[j - 1] + 1 if a == b else max(previous[j], current[j - 1]))
        previous = current
    return previous[-1]


def rouge_l(hypothesis: str, reference: str) -> float:
    """ROUGE-L F in [0, 1); 0 when either side has no tokens."""
    hyp, ref = tokenize(hypothesis or ""), tokenize(reference or "")
    if not hyp or not ref:
        return 0.0
    hyp, ref = _words(hyp), _words(ref)
    common = lcs_length(ref, hyp)
    precision, recall = common / len(hyp), common / len(ref)
    return 2.0 * ((precision * recall) / (precision + recall + _EPSILON))
