"""Labels: what the models learn to predict, declared with the sources they come from."""

from __future__ import annotations

from datetime import timedelta

from features.core import ClickLabels
from features.sources import ad_clicks, ad_impressions

ctr = ClickLabels("ctr", impressions=ad_impressions, clicks=ad_clicks, window=timedelta(minutes=30))
