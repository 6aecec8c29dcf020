"""Demo leads: Faker's zh_CN locale, seeded so every run makes the same data."""
from __future__ import annotations

import random
from typing import TYPE_CHECKING, Callable

import sqlalchemy as sa
from faker import Faker

from leadhub.platform import tables as t

from leadhub.platform.permissions import Actor

if TYPE_CHECKING:
    from leadhub.runtime import Runtime

SOURCES = ["website", "baidu_ads", "douyin_ads", "exhibition", "referral", "cold_call"]
INDUSTRIES = ["it", "manufacturing", "finance", "education", "healthcare", "retail"]
STATUSES = ["new", "following", "following", "new", "converted", "invalid"]


def seed_demo(runtime: "Runtime", actor: Actor, count: int = 200,
              progress: Callable[[int], None] = lambda n: None, seed: int = 20261123) -> int:
    """Create `count` demo leads through the record service, reporting each
    batch to `progress`; returns how many."""
    fake = Faker("zh_CN")
    fake.seed_instance(seed)
    rng = random.Random(seed)
    obj = runtime.cache.current().get("lead")
    with runtime.db.read() as conn:  # the demo reps own the demo leads, when there are any
        reps = list(conn.execute(sa.select(t.user_roles.c.user_id).join(t.roles, t.roles.c.id == t.user_roles.c.role_id)
                                 .where(t.roles.c.api_name == "sales_rep").order_by(t.user_roles.c.user_id)).scalars())
    cities = obj.fields["city"].settings["dependency"]
    rows = []
    for _ in range(count):
        province = rng.choice(sorted(cities))
        rows.append({
            "name": fake.name(),
            "company": fake.company(),
            "title": rng.choice(["总经理", "采购经理", "市场总监", "IT 主管", "销售经理"]),
            "mobile": fake.phone_number(),
            "email": fake.free_email(),   # safe=True domains (example.org) are reserved and quarantined
            "province": province,
            "city": rng.choice(cities[province]),
            "source": rng.choice(SOURCES),
            "status": rng.choice(STATUSES),
            "industry": rng.choice(INDUSTRIES),
            "company_size": rng.choice([8, 30, 120, 600, 2500]),
            "budget": f"{rng.randint(1, 500) * 1000}.00",
            **({"owner": rng.choice(reps)} if reps else {}),
        })
    for start in range(0, len(rows), 100):
        batch = rows[start:start + 100]
        runtime.records.bulk_create(actor, "lead", batch)
        progress(len(batch))
    # a follow-up rule and a few leads about to be reminded or overdue, so the
    # first sweep (within five minutes of starting) shows both
    from leadhub.plugins.lead.followup import seed_demo as follow_up_demo
    follow_up_demo(runtime)
    return len(rows)
