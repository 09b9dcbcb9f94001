"""Every domain's models, so that `Base.metadata` holds the whole schema (for Alembic and
the tests). Above the domains, as app.py is: no module of `core` imports a domain."""

from wxcrm.core import idempotency
from wxcrm.core.models import Base
from wxcrm.customers import models as customers_models
from wxcrm.customers.transfer import models as transfer_models
from wxcrm.miniprogram import models as miniprogram_models
from wxcrm.notifications import models as notifications_models
from wxcrm.users import models as users_models
from wxcrm.wechat import models as wechat_models

__all__ = [
    "Base",
    "customers_models",
    "idempotency",
    "miniprogram_models",
    "notifications_models",
    "transfer_models",
    "users_models",
    "wechat_models",
]
