"""Which WeChat template each kind of notification uses, and how its data is made.

A notification's payload holds named values (`title`, `customer_name`, …); the configured
field map says which keyword key carries each, and the keyword's type decides how the
value is fitted (wechat/keywords.py). Changing the map in settings applies to rows still pending.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from enum import StrEnum

from wxcrm.core.settings import Settings
from wxcrm.wechat.keywords import fit_template_data


class TemplateName(StrEnum):
    customer_action = "customer_action"
    customer_assigned = "customer_assigned"
    follow_up_reminder = "follow_up_reminder"


@dataclass(frozen=True)
class Template:
    name: TemplateName
    template_id: str
    fields: Mapping[str, str]  # value name → keyword key, e.g. "title" → "thing1"
    long_term: bool

    def data(self, values: Mapping[str, object]) -> dict[str, dict[str, str]]:
        """The template's `data`, every value fitted to its keyword type.

        Raises UnfittableValue when a value cannot be made acceptable.
        """
        return fit_template_data({key: values.get(name, "") for name, key in self.fields.items()})


def template(settings: Settings, name: TemplateName) -> Template:
    if name is TemplateName.customer_action:
        template_id = settings.wechat_template_customer_action
        fields = settings.wechat_template_customer_action_fields
    elif name is TemplateName.customer_assigned:
        template_id = settings.wechat_template_customer_assigned
        fields = settings.wechat_template_customer_assigned_fields
    else:
        template_id = settings.wechat_template_follow_up_reminder
        fields = settings.wechat_template_follow_up_reminder_fields
    return Template(
        name=name,
        template_id=template_id,
        fields=fields,
        long_term=template_id in settings.wechat_long_term_templates,
    )
