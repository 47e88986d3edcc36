"""The "push.topics" runtime setting: the topics users may subscribe to, each with its rule.

    {"news": "", "team-*": "team = auth.team"}

A name ending in `*` covers every topic it starts; `""` lets anyone subscribe (anonymous
installs too); an expression is a rule over the users collection that the subscribing user must
pass. Topics not listed are open to admins and service keys only.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from baas.push.notification import valid_topic
from baas.runtime_settings import SettingValueError

MAX_TOPIC_RULES = 200
MAX_RULE_LENGTH = 2000


def parse_topics(value: Any) -> dict[str, str]:
    if not isinstance(value, Mapping) or len(value) > MAX_TOPIC_RULES:
        raise SettingValueError(
            f'must be an object of at most {MAX_TOPIC_RULES} topic -> rule, e.g. {{"news": ""}}'
        )
    out = {}
    for name, rule in value.items():
        bare = name[:-1] if isinstance(name, str) and name.endswith("*") else name
        if not isinstance(bare, str) or not ((bare == "" and name == "*") or valid_topic(bare)):
            raise SettingValueError(f"topic {str(name)[:50]!r}: 1-200 of A-Z a-z 0-9 - _ . ~ %")
        if not isinstance(rule, str) or len(rule) > MAX_RULE_LENGTH:
            raise SettingValueError(f"{name}: the rule must be text ('' = anyone)")
        out[name] = rule
    return out
