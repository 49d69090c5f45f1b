"""The compose lb host ships the tuned check profile of lb/check-profile.toml (its
copy is warren-lbhost's [backend.check], written by scripts/check-profile).
Renders the config only: no Docker engine needed."""

import check_profile


def test_the_rendered_lb_config_has_the_check_profile():
    problems = check_profile.drift("compose")
    assert problems == [], f"{problems}: change lb/check-profile.toml, then run scripts/check-profile"
