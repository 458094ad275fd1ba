"""What a face similarity means at 1:N: false-match probabilities and thresholds.

A fixed similarity threshold cannot serve a gallery of 10 and one of 10,000:
each enrolled face a stranger is compared with is another chance of a false
accept. This module turns the measured score distributions of the shipped
embedder into those probabilities:

- `ScoreModel.false_accept(s)`: the probability that a stranger scores at least
  `s` against ONE enrolled face (per-pair false-accept rate, FAR);
- `ScoreModel.false_match(s, n)`: the probability that a stranger scores at
  least `s` against at least one of `n` enrolled faces (open-set false match),
  `1 - (1 - FAR(s)) ** n`; `n` counts what the stranger is compared with: every
  stored variation when matching takes the best of them, people when it takes
  one score per person;
- `ScoreModel.threshold(max_false_match_rate, n)`: the similarity in force for
  a target open-set false-match rate at gallery size `n`;
- `ScoreModel.genuine_accept(t)`: the probability that an enrolled person's new
  photo scores at least `t` against their own enrollment;
- `ScoreModel.table(...)`: gallery size -> threshold -> expected genuine accept;
- the margin rule (`false_match_with_margin`, `genuine_accept_with_margin`):
  accept the best person only when they beat the second-best by `margin`;
- `decide()`: one 1:N match decision as recognition would make it, carrying the
  threshold in force and the estimated false-match probability.

How the shipped model (`DLIB_RESNET_V1`) was measured: the platform's own
detection, alignment and embedding (RetinaFace, dlib 5-point chip, dlib ResNet
on ONNX Runtime; similarity = 1 - cosine distance / 0.6) on Labeled Faces in
the Wild (view 2: 6,000 pairs; and 1,000,000 cross-identity pairs drawn from
its 7,701 images). Different people: median 0.726, p99 0.844, max 0.911.
Verification ROC: FAR 1e-2 / 1e-3 / 1e-4 at similarity 0.846 / 0.877 / 0.901
(TAR 98.3 / 92.5 / 77.0 %); FAR 0.75 % at 0.85. Same person: p5 0.870,
median 0.922.

The model interpolates those points in probit space (the normal quantile of
the probability is piecewise linear in the similarity: a normal distribution
between neighbouring points, exact at each). Choices that err on the side of
over-stating the false-match risk:

- the maximum of 1M impostor pairs (0.911) is entered at the 95 % upper bound
  of a rate seen once in 1M trials (4.7e-6), not at 1e-6;
- beyond 0.911 nothing was measured: the tail is extrapolated with the slope
  of the 0.877-0.901 segment, which falls more slowly than the data around
  the maximum did; thresholds found there are flagged `extrapolated`;
- `1 - (1 - p) ** n` treats a stranger's scores against different enrolled
  faces as independent. They are not (a face that resembles many people scores
  high against many): through the API, 146 enrolled people and 300 strangers
  gave 52.7 % / 6.0 % / 1.0 % of strangers above 0.85 / 0.88 / 0.90, where
  this model predicts 67 % / 11 % / 1.6 %. The prediction is an upper bound
  in that measurement, by a factor of about 1.6.

`ScoreModel.from_scores()` builds a model of the same form from one's own
measured similarities (e.g. `face_eval`'s), for another embedder or another
population; with fewer than ~1/FAR pairs its far tail is an upper-bound guess.

Another embedder (a deployment's own ONNX model) is not described by this
model. Its operators measure it (`face_eval`: the similarities at FAR
1e-2 / 1e-3 / 1e-4) and give those points in settings
(`VISIONAIRE_FACE_ONNX_FALSE_ACCEPT`); the engine registers a model through
them (`false_accept_model`, `score_model_register`): impostor side only, so
1:N thresholds follow the gallery size as for the shipped model, and expected
genuine accepts are unknown (None). Without them the embedder is uncalibrated:
a fixed threshold, no false-match probability (None in answers).

Pure Python + numpy (the normal quantile from `statistics.NormalDist`): scipy
is not a runtime dependency of the platform.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from statistics import NormalDist

import numpy as np

_NORMAL = NormalDist()
# Probabilities are kept inside (0, 1) so that their normal quantile exists.
_P_MIN, _P_MAX = 1e-15, 1.0 - 1e-15
# Gallery sizes of the documented trade-off table.
TABLE_GALLERY_SIZES = (1, 10, 100, 1_000, 10_000, 100_000)
DEFAULT_MAX_FALSE_MATCH_RATE = 0.01


def _z(p: float) -> float:
    """The standard normal quantile of the upper-tail probability `p`."""
    return -_NORMAL.inv_cdf(min(max(float(p), _P_MIN), _P_MAX))


def _upper_bound_rate(count: int, trials: int, confidence: float = 0.95) -> float:
    """One-sided upper confidence bound of a rate seen `count` times in `trials`
    (Clopper-Pearson for count 0 and 1, where the tail is decided; the normal
    approximation of the binomial above that)."""
    alpha = 1.0 - confidence
    if count == 0:
        return 1.0 - alpha ** (1.0 / trials)
    if count == 1:
        # Solve P(X <= 1 | p) = alpha by bisection (no scipy here).
        low, high = 0.0, 1.0
        for _ in range(100):
            mid = (low + high) / 2
            tail = (1 - mid) ** trials + trials * mid * (1 - mid) ** (trials - 1)
            low, high = (mid, high) if tail > alpha else (low, mid)
        return high
    p = count / trials
    return min(1.0, p + _NORMAL.inv_cdf(confidence) * math.sqrt(p * (1 - p) / trials))


@dataclass(frozen=True)
class _ProbitCurve:
    """A decreasing survival function P(score >= s) given at knots (s, p), with
    the normal quantile z(p) linear in s between knots and beyond the ends
    (slopes `below` and `above` outside the knots)."""

    scores: tuple[float, ...]
    quantiles: tuple[float, ...]  # z(p) at each knot, increasing
    below: float  # dz/ds left of the first knot
    above: float  # dz/ds right of the last knot

    @classmethod
    def through(
        cls, knots: Sequence[tuple[float, float]], *, above: float | None = None, below: float | None = None
    ) -> _ProbitCurve:
        knots = sorted((float(s), float(p)) for s, p in knots)
        scores = tuple(s for s, _ in knots)
        quantiles = tuple(_z(p) for _, p in knots)
        if len(knots) < 2 or any(b <= a for a, b in zip(scores, scores[1:], strict=False)):
            raise ValueError("a score curve needs at least two knots with distinct similarities")
        if any(b <= a for a, b in zip(quantiles, quantiles[1:], strict=False)):
            raise ValueError("a score curve's probabilities must decrease as the similarity grows")
        pairs = zip(scores, scores[1:], quantiles, quantiles[1:], strict=False)
        slopes = [(qb - qa) / (sb - sa) for sa, sb, qa, qb in pairs]
        return cls(
            scores=scores,
            quantiles=quantiles,
            below=slopes[0] if below is None else below,
            above=slopes[-1] if above is None else above,
        )

    def z(self, s) -> np.ndarray:
        s = np.asarray(s, dtype=np.float64)
        xs, zs = np.array(self.scores), np.array(self.quantiles)
        inside = np.interp(s, xs, zs)
        left = zs[0] + (s - xs[0]) * self.below
        right = zs[-1] + (s - xs[-1]) * self.above
        return np.where(s < xs[0], left, np.where(s > xs[-1], right, inside))

    def survival(self, s) -> np.ndarray:
        z = self.z(s)
        # The upper-tail probability of z, vectorised through math.erfc.
        return np.vectorize(lambda v: 0.5 * math.erfc(v / math.sqrt(2.0)), otypes=[np.float64])(z)

    def inverse(self, p: float) -> float:
        """The similarity s with survival(s) = p."""
        target = _z(p)
        xs, zs = self.scores, self.quantiles
        if target < zs[0]:
            return xs[0] + (target - zs[0]) / self.below
        if target > zs[-1]:
            return xs[-1] + (target - zs[-1]) / self.above
        return float(np.interp(target, zs, xs))


@dataclass(frozen=True)
class ThresholdRow:
    """One row of the gallery-size trade-off table."""

    gallery_size: int
    threshold: float
    per_pair_false_accept: float
    false_match_rate: float
    genuine_accept: float | None  # None: the model has no genuine curve
    extrapolated: bool  # the threshold lies beyond the measured impostor scores

    def as_dict(self) -> dict:
        return {
            "gallery_size": self.gallery_size,
            "threshold": round(self.threshold, 4),
            "per_pair_false_accept": float(f"{self.per_pair_false_accept:.3g}"),
            "false_match_rate": float(f"{self.false_match_rate:.3g}"),
            "genuine_accept": None if self.genuine_accept is None else round(self.genuine_accept, 4),
            "extrapolated": self.extrapolated,
        }


@dataclass(frozen=True)
class ScoreModel:
    """Impostor and genuine similarity distributions of one embedder (see the
    module docstring). `measured_up_to`: the highest impostor similarity backed
    by a measurement; beyond it the false-accept rate is extrapolated."""

    name: str
    impostor: _ProbitCurve
    genuine: _ProbitCurve | None  # None: only the impostor side was measured
    measured_up_to: float
    source: str = ""

    # --- per pair and open set ---------------------------------------------------

    def false_accept(self, similarity) -> float | np.ndarray:
        """P(a stranger scores >= similarity against one enrolled face)."""
        result = self.impostor.survival(similarity)
        return float(result) if np.ndim(result) == 0 else result

    def genuine_accept(self, threshold) -> float | np.ndarray | None:
        """P(a new photo of an enrolled person scores >= threshold against their
        enrollment); None for a model without a genuine curve."""
        if self.genuine is None:
            return None
        result = self.genuine.survival(threshold)
        return float(result) if np.ndim(result) == 0 else result

    def false_match(self, similarity, gallery_size: int) -> float | np.ndarray:
        """P(a stranger scores >= similarity against at least one of `gallery_size`
        enrolled faces): 1 - (1 - FAR)^N, computed without cancellation."""
        n = _gallery(gallery_size)
        p = np.minimum(np.asarray(self.impostor.survival(similarity)), _P_MAX)
        result = -np.expm1(n * np.log1p(-p))
        return float(result) if np.ndim(result) == 0 else result

    def per_pair_rate(self, max_false_match_rate: float, gallery_size: int) -> float:
        """The per-pair FAR that gives `max_false_match_rate` over `gallery_size` faces."""
        rate = _rate(max_false_match_rate)
        return float(-math.expm1(math.log1p(-rate) / _gallery(gallery_size)))

    def threshold(self, max_false_match_rate: float, gallery_size: int) -> float:
        """The lowest similarity at which a stranger is named with probability at
        most `max_false_match_rate` in a gallery of `gallery_size` faces. At most
        1.0 (similarities are clipped there): 1.0 means nobody can be named safely."""
        return min(1.0, self.impostor.inverse(self.per_pair_rate(max_false_match_rate, gallery_size)))

    def extrapolated(self, threshold: float) -> bool:
        return threshold > self.measured_up_to

    def table(
        self,
        gallery_sizes: Iterable[int] = TABLE_GALLERY_SIZES,
        max_false_match_rate: float = DEFAULT_MAX_FALSE_MATCH_RATE,
    ) -> list[ThresholdRow]:
        """Gallery size -> threshold in force -> expected genuine accept."""
        rows = []
        for size in gallery_sizes:
            threshold = self.threshold(max_false_match_rate, size)
            rows.append(
                ThresholdRow(
                    gallery_size=int(size),
                    threshold=threshold,
                    per_pair_false_accept=float(self.false_accept(threshold)),
                    false_match_rate=float(self.false_match(threshold, size)),
                    genuine_accept=None if self.genuine is None else float(self.genuine_accept(threshold)),
                    extrapolated=self.extrapolated(threshold),
                )
            )
        return rows

    # --- margin rule --------------------------------------------------------------

    def _grid(self, start: float, step: float = 2e-4) -> np.ndarray:
        # The similarity is clipped to [0, 1]; beyond 1 nothing can score.
        return np.arange(start, 1.0 + step, step)

    def false_match_with_margin(self, threshold: float, margin: float, gallery_size: int) -> float:
        """P(a stranger is named) when the best of `gallery_size` people must score
        >= threshold AND beat the second-best by >= margin. With N independent
        impostor scores of survival S and density f:
        integral over x >= t of N f(x) (1 - S(x - margin))^(N - 1) dx."""
        n = _gallery(gallery_size)
        if margin <= 0 or n == 1:
            return float(self.false_match(threshold, n))
        x = self._grid(threshold)
        survival = self.impostor.survival(x)
        density = -np.gradient(survival, x)
        below = 1.0 - self.impostor.survival(x - margin)
        return float(np.clip(np.trapezoid(n * density * below ** (n - 1), x), 0.0, 1.0))

    def genuine_accept_with_margin(self, threshold: float, margin: float, gallery_size: int) -> float | None:
        """P(an enrolled person is named) under the margin rule: their own score
        reaches the threshold and beats the best of the other N - 1 people by the
        margin (assumed independent of the genuine score). None without a genuine curve."""
        if self.genuine is None:
            return None
        n = _gallery(gallery_size)
        x = self._grid(threshold)
        survival = self.genuine.survival(x)
        density = -np.gradient(survival, x)
        below = 1.0 - self.impostor.survival(x - margin) if margin > 0 else np.ones_like(x)
        # Closed at the ends of the grid: mass the grid cannot resolve is not counted.
        return float(np.clip(np.trapezoid(density * below ** (n - 1), x), 0.0, 1.0))

    # --- refinement ---------------------------------------------------------------

    @classmethod
    def from_scores(
        cls,
        impostor: Sequence[float] | np.ndarray,
        genuine: Sequence[float] | np.ndarray | None = None,
        *,
        name: str = "measured",
        base: ScoreModel | None = None,
    ) -> ScoreModel:
        """A model from measured similarities (see `from_quantiles`)."""
        scores = np.asarray(impostor, dtype=np.float64)
        values = None if genuine is None else np.asarray(genuine, dtype=np.float64)
        return cls.from_quantiles(
            impostor_quantile=lambda q: float(np.quantile(scores, q)),
            impostor_count=len(scores),
            impostor_max=float(scores.max()) if len(scores) else 0.0,
            genuine_quantile=None if values is None else (lambda q: float(np.quantile(values, q))),
            genuine_count=0 if values is None else len(values),
            name=name,
            base=base,
        )

    @classmethod
    def from_quantiles(
        cls,
        *,
        impostor_quantile: Callable[[float], float],
        impostor_count: int,
        impostor_max: float,
        genuine_quantile: Callable[[float], float] | None = None,
        genuine_count: int = 0,
        name: str = "measured",
        base: ScoreModel | None = None,
    ) -> ScoreModel:
        """A model from measured distributions given by their quantile functions
        (e.g. of histograms, when the pairs are too many to keep). Impostor knots
        at the median and at FAR 1e-1, 1e-2, 1e-3, ... while at least 10 pairs lie
        above each, plus the largest score at the upper confidence bound of one in
        n, the tail beyond it at the slope of the segment before; genuine knots
        at p5, p25 and the median. Where too few pairs were measured (< 20
        impostor pairs, < 5 genuine ones), `base`'s curve is kept."""
        base = base or DLIB_RESNET_V1
        impostor_curve, measured_up_to = base.impostor, base.measured_up_to
        if impostor_count >= 20:
            knots = [(impostor_quantile(0.5), 0.5)]
            rate = 0.1
            while rate * impostor_count >= 10:
                knots.append((impostor_quantile(1 - rate), rate))
                rate /= 10
            knots.append((float(impostor_max), _upper_bound_rate(1, impostor_count)))
            knots = _strictly_decreasing(knots)
            if len(knots) >= 2:
                impostor_curve = _ProbitCurve.through(knots, above=base.impostor.above)
                if len(knots) >= 3:
                    # Past the maximum, the slope of the segment before it (the last
                    # one is set by a single pair).
                    s, z = impostor_curve.scores, impostor_curve.quantiles
                    above = (z[-2] - z[-3]) / (s[-2] - s[-3])
                    impostor_curve = _ProbitCurve(s, z, impostor_curve.below, above)
                measured_up_to = float(impostor_max)
        genuine_curve = base.genuine if base.genuine is not None else DLIB_RESNET_V1.genuine
        if genuine_quantile is not None and genuine_count >= 5:
            knots = _strictly_decreasing([(genuine_quantile(q), 1 - q) for q in (0.05, 0.25, 0.5)])
            if len(knots) >= 2:
                genuine_curve = _ProbitCurve.through(knots)
        return cls(
            name=name,
            impostor=impostor_curve,
            genuine=genuine_curve,
            measured_up_to=measured_up_to,
            source=f"{impostor_count} impostor and {genuine_count} genuine pairs",
        )


def _strictly_decreasing(knots: list[tuple[float, float]]) -> list[tuple[float, float]]:
    """Knots sorted by similarity, keeping only those whose similarity grows and
    whose probability falls (ties in measured quantiles would break the curve)."""
    kept: list[tuple[float, float]] = []
    for s, p in sorted(knots):
        if not kept or (s > kept[-1][0] and p < kept[-1][1]):
            kept.append((s, p))
    return kept


def _gallery(size: int) -> int:
    size = int(size)
    if size < 1:
        raise ValueError(f"gallery size must be at least 1, got {size}")
    return size


def _rate(rate: float) -> float:
    rate = float(rate)
    if not 0.0 < rate < 1.0:
        raise ValueError(f"a false-match rate must lie strictly between 0 and 1, got {rate}")
    return rate


# The shipped embedder (dlib ResNet v1 through the platform's pipeline), measured
# on LFW as described in the module docstring.
DLIB_RESNET_V1 = ScoreModel(
    name="dlib-resnet-v1",
    impostor=_ProbitCurve.through(
        [
            (0.726, 0.5),  # median of 1M cross-identity pairs
            (0.846, 1e-2),
            (0.877, 1e-3),
            (0.901, 1e-4),
            (0.911, _upper_bound_rate(1, 1_000_000)),  # the maximum of 1M pairs
        ],
        above=(_z(1e-4) - _z(1e-3)) / (0.901 - 0.877),
    ),
    genuine=_ProbitCurve.through(
        [
            (0.846, 0.983),  # TAR at FAR 1e-2
            (0.870, 0.95),  # p5 of same-person pairs
            (0.877, 0.925),  # TAR at FAR 1e-3
            (0.901, 0.770),  # TAR at FAR 1e-4
            (0.922, 0.5),  # median of same-person pairs
        ]
    ),
    measured_up_to=0.911,
    source="LFW view 2 (6,000 pairs) and 1,000,000 cross-identity pairs of its 7,701 images",
)

_SHIPPED = {DLIB_RESNET_V1.name: DLIB_RESNET_V1}
_MODELS = dict(_SHIPPED)


def false_accept_model(name: str, points: Sequence[tuple[float, float]]) -> ScoreModel:
    """The score model of an embedder measured elsewhere, from (similarity, per-pair
    false-accept rate) points (at least two; e.g. `face_eval`'s similarities at
    FAR 1e-2 / 1e-3 / 1e-4): the impostor curve through them, no genuine curve.
    Beyond the highest point the tail keeps the last segment's slope (flagged
    `extrapolated`)."""
    curve = _ProbitCurve.through(points)
    return ScoreModel(
        name=name,
        impostor=curve,
        genuine=None,
        measured_up_to=max(s for s, _ in points),
        source="false-accept points from settings (VISIONAIRE_FACE_ONNX_FALSE_ACCEPT)",
    )


def score_model_register(embedder_name: str, model: ScoreModel | None) -> None:
    """The score model of a configured embedder (None: it has none). The shipped
    embedder's measured model cannot be replaced."""
    if embedder_name in _SHIPPED:
        return
    if model is None:
        _MODELS.pop(embedder_name, None)
    else:
        _MODELS[embedder_name] = model


def score_model(embedder_name: str) -> ScoreModel | None:
    """The measured model of an embedder (`FaceEmbedder.name`), or None for one
    never measured (e.g. a deployment's own ONNX model without
    VISIONAIRE_FACE_ONNX_FALSE_ACCEPT): uncalibrated, its operators then set
    `similarity_threshold` themselves, or measure it with `face_eval`."""
    return _MODELS.get(embedder_name)


@dataclass(frozen=True)
class MatchDecision:
    """A 1:N decision on the best candidate: named or not, why, and what the
    similarity means at the gallery's size."""

    accepted: bool
    similarity: float
    threshold: float  # the threshold in force
    # P(a stranger scores >= this similarity against one of gallery_size faces);
    # None for an embedder without a measured score model.
    false_match_probability: float | None
    reason: str  # accepted, below_threshold, ambiguous (margin rule)

    def as_dict(self) -> dict:
        return {
            "accepted": self.accepted,
            "similarity": round(self.similarity, 4),
            "threshold": round(self.threshold, 4),
            "false_match_probability": None
            if self.false_match_probability is None
            else float(f"{self.false_match_probability:.3g}"),
            "reason": self.reason,
        }


def decide(
    similarity: float,
    *,
    gallery_size: int,
    embedder_name: str,
    max_false_match_rate: float = DEFAULT_MAX_FALSE_MATCH_RATE,
    similarity_threshold: float | None = None,
    fallback_threshold: float = 0.85,
    second_best: float | None = None,
    margin: float = 0.0,
) -> MatchDecision:
    """Name the best candidate or not. The threshold in force: the explicit
    `similarity_threshold` when given (an operator's override), else the score
    model's threshold for `max_false_match_rate` at `gallery_size` (the faces a
    stranger is compared with), else `fallback_threshold` for an embedder never
    measured. With `margin` > 0 and a `second_best` person's similarity, the best
    must also lead by the margin."""
    model = score_model(embedder_name)
    if similarity_threshold is not None:
        threshold = float(similarity_threshold)
    elif model is not None:
        threshold = model.threshold(max_false_match_rate, gallery_size)
    else:
        threshold = float(fallback_threshold)
    probability = None if model is None else float(model.false_match(similarity, gallery_size))
    if similarity < threshold:
        reason = "below_threshold"
    elif margin > 0 and second_best is not None and similarity - second_best < margin:
        reason = "ambiguous"
    else:
        reason = "accepted"
    return MatchDecision(
        accepted=reason == "accepted",
        similarity=float(similarity),
        threshold=threshold,
        false_match_probability=probability,
        reason=reason,
    )
