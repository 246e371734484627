"""Entities: what features describe."""

from __future__ import annotations

from features.core import Entity

member = Entity(
    "member", join_key="member_id", description="A subscriber of the streaming service."
)
title = Entity("title", join_key="title_id", description="A film or series in the catalogue.")
ad = Entity("ad", join_key="ad_id", description="An ad creative of a campaign.")

ENTITIES = (member, title, ad)
