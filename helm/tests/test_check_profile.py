"""The chart ships the tuned check profile of lb/check-profile.toml (its copy is
values.yaml's lb.check, written by scripts/check-profile)."""

import check_profile


def test_the_rendered_lb_config_has_the_check_profile():
    problems = check_profile.drift("helm")
    assert problems == [], f"{problems}: change lb/check-profile.toml, then run scripts/check-profile"
