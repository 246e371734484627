"""The simulated service: members, titles and ads with their hidden traits.

Everything here depends only on `(seed, scale)`, never on the interval being
generated, so every run sees the same world. The observable attributes become
the dimension tables; the latent traits (activity, click propensity, ad quality)
drive the event streams and are never written.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from datetime import datetime

import numpy as np

from features.sources import DEVICES, PLANS
from pipelines.errors import PlatformError

COUNTRIES = ("US", "GB", "DE", "FR", "BR", "IN", "JP", "CA", "MX", "ES")
COUNTRY_SHARES = (0.30, 0.09, 0.08, 0.07, 0.12, 0.13, 0.06, 0.05, 0.06, 0.04)
PLAN_SHARES = (0.35, 0.20, 0.30, 0.15)
# How many ads a plan sees relative to the ad-supported plan.
PLAN_AD_EXPOSURE = (1.0, 0.45, 0.25, 0.10)
# Additive click log-odds: ad-supported members are used to ads and click more.
PLAN_CLICK_EFFECT = (0.35, 0.10, -0.10, -0.45)
DEVICE_SHARES = (0.45, 0.28, 0.14, 0.09, 0.04)
GENRES = (
    "drama",
    "comedy",
    "action",
    "documentary",
    "kids",
    "thriller",
    "romance",
    "sci_fi",
    "anime",
    "reality",
)
AD_CATEGORIES = ("auto", "finance", "retail", "travel", "gaming", "food", "tech", "entertainment")
AD_CATEGORY_CLICK_EFFECT = (-0.20, -0.45, 0.15, 0.05, 0.45, 0.25, -0.05, 0.35)
PLACEMENT_SHARES = (0.35, 0.30, 0.10, 0.25)
PLACEMENT_CLICK_EFFECT = (0.20, 0.0, 0.55, -0.75)
# Log-odds of a click before the effects above: about 2.5% of impressions overall.
BASE_CLICK_LOGIT = -4.6

# Events per day at scale 1 (about 37k with clicks), before the weekday factor.
PLAYBACKS_PER_DAY = 24_000
IMPRESSIONS_PER_DAY = 13_000

MEMBERS_PER_SCALE = 5_000
TITLES_PER_SCALE = 800
ADS_PER_SCALE = 160
ADS_PER_CAMPAIGN = 4
ADVERTISERS = 40

SIGNUP_RANGE = (np.datetime64("2015-01-01"), np.datetime64("2025-01-01"))
RELEASE_RANGE = (np.datetime64("1990-01-01"), np.datetime64("2025-01-01"))

# Stream codes keep the random streams of different purposes independent.
WORLD_STREAM = 0


class GeneratorConfigError(PlatformError):
    pass


DEFAULT_HOSTILE_SHARE = 0.001
# How a population may move from a given time on (`GeneratorConfig.shift`), so that drift
# monitoring has real drift to find.
SHIFTS = {
    "device_mix": "most plays come from phones, whatever the member's usual device",
    "watch_time": "viewing sessions last 2.5 times as long",
}
# Device shares of plays once the device mix has moved (phones first).
SHIFTED_DEVICE_SHARES = (0.10, 0.70, 0.10, 0.05, 0.05)
WATCH_TIME_FACTOR = 2.5


@dataclass(frozen=True)
class GeneratorConfig:
    """Knobs of the generator. Shares are per event row and must lie in [0, 0.5]."""

    scale: float = 1.0
    seed: int = 7
    late_share: float = 0.02
    malformed_share: float = 0.01
    duplicate_share: float = 0.005
    # Rows a broken producer writes (NaN, 1970, unknown categories, ...; see events.py).
    hostile_share: float = DEFAULT_HOSTILE_SHARE
    # One of SHIFTS, applied to the events that happen at or after `shift_from`.
    shift: str | None = None
    shift_from: datetime | None = None

    def __post_init__(self) -> None:
        if (self.shift is None) != (self.shift_from is None):
            raise GeneratorConfigError("a shift needs both its kind and the time it starts")
        if self.shift is not None and self.shift not in SHIFTS:
            known = ", ".join(SHIFTS)
            raise GeneratorConfigError(f"unknown shift {self.shift!r} (known: {known})")
        if self.shift_from is not None and self.shift_from.tzinfo is None:
            raise GeneratorConfigError("shift_from must be timezone-aware (UTC)")
        if not (isinstance(self.scale, int | float) and math.isfinite(self.scale)) or not (
            self.scale > 0
        ):
            raise GeneratorConfigError(f"scale must be a positive number, got {self.scale!r}")
        if isinstance(self.seed, bool) or not isinstance(self.seed, int) or self.seed < 0:
            raise GeneratorConfigError(f"seed must be a non-negative integer, got {self.seed!r}")
        for name in ("late_share", "malformed_share", "duplicate_share", "hostile_share"):
            value = getattr(self, name)
            if not (isinstance(value, int | float) and 0.0 <= value <= 0.5):
                raise GeneratorConfigError(f"{name} must lie in [0, 0.5], got {value!r}")


@dataclass(frozen=True, eq=False)
class World:
    """Columns of the three dimensions plus the latent traits, as aligned numpy arrays."""

    member_id: np.ndarray
    member_country: np.ndarray  # index into COUNTRIES
    member_plan: np.ndarray  # index into PLANS
    member_signup: np.ndarray  # datetime64[D]
    member_device: np.ndarray  # index into DEVICES: the member's usual device
    member_play_p: np.ndarray  # probability that a playback is this member's
    member_ad_p: np.ndarray  # probability that an impression is this member's
    member_click_logit: np.ndarray  # latent click propensity
    country_click_effect: np.ndarray
    title_id: np.ndarray
    title_genre: np.ndarray  # index into GENRES
    title_release: np.ndarray  # datetime64[D]
    title_play_p: np.ndarray
    ad_id: np.ndarray
    ad_campaign: np.ndarray
    ad_advertiser: np.ndarray  # advertiser number
    ad_category: np.ndarray  # index into AD_CATEGORIES
    ad_bid_cpm: np.ndarray
    ad_serve_p: np.ndarray
    ad_quality_logit: np.ndarray  # latent creative quality

    @property
    def members(self) -> int:
        return len(self.member_id)

    @property
    def titles(self) -> int:
        return len(self.title_id)

    @property
    def ads(self) -> int:
        return len(self.ad_id)


def zipf_probabilities(rng: np.random.Generator, n: int, exponent: float = 1.0) -> np.ndarray:
    """Zipf-Mandelbrot popularity over a random ordering of `n` items.

    The offset grows with `n` so the top 1% keeps a similar share at every scale
    (about a quarter to a third of the activity) instead of one item taking all.
    """
    ranks = rng.permutation(n) + 1
    offset = max(5.0, 0.002 * n)
    weights = (ranks + offset) ** -exponent
    return weights / weights.sum()


def _random_dates(
    rng: np.random.Generator,
    n: int,
    bounds: tuple[np.datetime64, np.datetime64],
    recent_bias: float,
) -> np.ndarray:
    span = int((bounds[1] - bounds[0]).astype(int))
    # A power of a uniform skews dates towards the recent end of the range.
    offsets = (span * rng.random(n) ** (1.0 / recent_bias)).astype(np.int64)
    return bounds[0] + offsets.astype("timedelta64[D]")


def build_world(config: GeneratorConfig) -> World:
    rng = np.random.default_rng(np.random.SeedSequence([config.seed, WORLD_STREAM]))
    n_members = max(100, round(MEMBERS_PER_SCALE * config.scale))
    # The catalogue and the ad inventory grow slower than the audience.
    n_titles = max(50, round(TITLES_PER_SCALE * math.sqrt(config.scale)))
    n_ads = max(24, round(ADS_PER_SCALE * math.sqrt(config.scale)))

    member_country = rng.choice(len(COUNTRIES), n_members, p=COUNTRY_SHARES)
    member_plan = rng.choice(len(PLANS), n_members, p=PLAN_SHARES)
    member_signup = _random_dates(rng, n_members, SIGNUP_RANGE, recent_bias=1.6)
    member_device = rng.choice(len(DEVICES), n_members, p=DEVICE_SHARES)
    member_play_p = zipf_probabilities(rng, n_members)
    exposure = np.asarray(PLAN_AD_EXPOSURE)[member_plan] * member_play_p
    member_ad_p = exposure / exposure.sum()
    member_click_logit = rng.normal(0.0, 0.8, n_members)
    country_click_effect = rng.normal(0.0, 0.25, len(COUNTRIES))

    title_genre = rng.choice(len(GENRES), n_titles)
    title_release = _random_dates(rng, n_titles, RELEASE_RANGE, recent_bias=2.5)
    title_play_p = zipf_probabilities(rng, n_titles, exponent=1.1)

    ad_campaign = 100 + np.arange(n_ads) // ADS_PER_CAMPAIGN
    campaign_advertiser = rng.integers(1, ADVERTISERS + 1, ad_campaign.max() + 1)
    campaign_category = rng.choice(len(AD_CATEGORIES), ad_campaign.max() + 1)
    ad_bid_cpm = np.round(np.exp(rng.normal(math.log(8.0), 0.5, n_ads)), 2)
    serve = zipf_probabilities(rng, n_ads, exponent=0.8) * ad_bid_cpm**1.5
    ad_quality_logit = rng.normal(0.0, 0.6, n_ads)

    return World(
        member_id=np.arange(1, n_members + 1, dtype=np.int64),
        member_country=member_country,
        member_plan=member_plan,
        member_signup=member_signup,
        member_device=member_device,
        member_play_p=member_play_p,
        member_ad_p=member_ad_p,
        member_click_logit=member_click_logit,
        country_click_effect=country_click_effect,
        title_id=np.arange(1, n_titles + 1, dtype=np.int64),
        title_genre=title_genre,
        title_release=title_release,
        title_play_p=title_play_p,
        ad_id=np.arange(1, n_ads + 1, dtype=np.int64),
        ad_campaign=ad_campaign.astype(np.int64),
        ad_advertiser=campaign_advertiser[ad_campaign],
        ad_category=campaign_category[ad_campaign],
        ad_bid_cpm=ad_bid_cpm,
        ad_serve_p=serve / serve.sum(),
        ad_quality_logit=ad_quality_logit,
    )


def click_logit(
    world: World, members: np.ndarray, ads: np.ndarray, placements: np.ndarray
) -> np.ndarray:
    """Log-odds that an impression (given as positions into the world's arrays) is clicked."""
    return (
        BASE_CLICK_LOGIT
        + np.asarray(PLAN_CLICK_EFFECT)[world.member_plan[members]]
        + world.country_click_effect[world.member_country[members]]
        + world.member_click_logit[members]
        + np.asarray(AD_CATEGORY_CLICK_EFFECT)[world.ad_category[ads]]
        + world.ad_quality_logit[ads]
        + np.asarray(PLACEMENT_CLICK_EFFECT)[placements]
    )
