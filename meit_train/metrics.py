"""Report-generation metrics with pycocoevalcap: BLEU-1..4, METEOR, ROUGE-L, CIDEr-D.

Corpus level by default (one score over all pairs). :func:`batch_average` reproduces the MEIT code's
per-batch averaging (scores of consecutive batches of 32, then their mean) for comparison. CIDEr-D
document frequencies always come from the references being scored (never cached from another set).
One METEOR JVM is started per :class:`Scorer` and reused.
"""

from __future__ import annotations

import re

import numpy as np

_PUNCT = re.compile(r"""[''"`!?;:,.()\[\]{}<>\-/\\|*=_+#$%&@^~]""")


def normalise(text: str) -> str:
    """Lower-case, punctuation removed (as the COCO PTB tokenizer does), single spaces."""
    return " ".join(_PUNCT.sub(" ", text.lower()).split())


class Scorer:
    """Holds the METEOR subprocess; use as a context manager so it is closed."""

    NAMES = ("BLEU-1", "BLEU-2", "BLEU-3", "BLEU-4", "METEOR", "ROUGE-L", "CIDEr-D")

    def __init__(self):
        from pycocoevalcap.meteor.meteor import Meteor

        self.meteor = Meteor()

    def __enter__(self) -> "Scorer":
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    def close(self) -> None:
        """Stop the METEOR JVM."""
        p = getattr(self.meteor, "meteor_p", None)
        if p is not None and p.poll() is None:
            with self.meteor.lock:
                p.stdin.close()
                p.kill()
                p.wait()

    def score(self, references: list[str], hypotheses: list[str]) -> dict[str, float]:
        """Corpus-level scores of ``hypotheses`` against one reference each."""
        from pycocoevalcap.bleu.bleu import Bleu
        from pycocoevalcap.cider.cider import Cider
        from pycocoevalcap.rouge.rouge import Rouge

        if len(references) != len(hypotheses) or not references:
            raise ValueError("need equally many (and some) references and hypotheses")
        gts = {i: [normalise(r) or "empty"] for i, r in enumerate(references)}
        res = {i: [normalise(h) or "empty"] for i, h in enumerate(hypotheses)}
        bleu, _ = Bleu(4).compute_score(gts, res, verbose=0)
        meteor, _ = self.meteor.compute_score(gts, res)
        rouge, _ = Rouge().compute_score(gts, res)
        cider, _ = Cider().compute_score(gts, res)
        values = [*bleu, meteor, rouge, cider]
        return {k: float(v) for k, v in zip(self.NAMES, values)}

    def batch_average(
        self, references: list[str], hypotheses: list[str], batch: int = 32
    ) -> dict[str, float]:
        """The MEIT code's protocol: score each consecutive batch of ``batch`` pairs, average the scores."""
        per = [
            self.score(references[i : i + batch], hypotheses[i : i + batch])
            for i in range(0, len(references), batch)
        ]
        return {k: float(np.mean([p[k] for p in per])) for k in self.NAMES}
