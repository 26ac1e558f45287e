"""The two recommendations are named apart, and their old shared name is gone."""

from __future__ import annotations

from fpdctl.deploy import recommend as deploy_recommend
from fpdctl.sweep import pareto


def test_the_two_classes_have_different_names_and_no_shared_alias() -> None:
    assert deploy_recommend.BackendRecommendation.__name__ == "BackendRecommendation"
    assert pareto.ConfigRecommendation.__name__ == "ConfigRecommendation"
    assert not hasattr(deploy_recommend, "Recommendation") and not hasattr(pareto, "Recommendation")
    rows = [
        {"key": "teacher", "macs": 9e9, "params": 9e6, "score": 80.0},
        {"key": "s1", "macs": 1e9, "params": 1e6, "score": 79.5},
        {"key": "s2", "macs": 2e9, "params": 2e6, "score": 70.0},
    ]
    got = pareto.recommend(rows, teacher_score=80.0, max_drop=1.0)
    assert isinstance(got, pareto.ConfigRecommendation) and got.key == "s1"
