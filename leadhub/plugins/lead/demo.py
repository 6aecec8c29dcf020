"""Demo leads: Faker's zh_CN locale, seeded so every run makes the same data."""
from __future__ import annotations

import random
from typing import TYPE_CHECKING, Callable

from faker import Faker

from leadhub.platform.permissions import Actor

if TYPE_CHECKING:
    from leadhub.platform.runtime import Runtime

SOURCES = ["website", "baidu_ads", "douyin_ads", "exhibition", "referral", "cold_call"]
STATUSES = ["new", "following", "following", "new", "converted", "invalid"]


def seed_demo(runtime: "Runtime", actor: Actor, count: int = 200,
              progress: Callable[[int], None] = lambda n: None, seed: int = 20261123) -> int:
    """Create `count` demo leads through the record service, reporting each
    batch to `progress`; returns how many."""
    fake = Faker("zh_CN")
    fake.seed_instance(seed)
    rng = random.Random(seed)
    obj = runtime.cache.current().get("lead")
    cities = obj.fields["city"].settings["dependency"]
    rows = []
    for _ in range(count):
        province = rng.choice(sorted(cities))
        rows.append({
            "name": fake.name(),
            "company": fake.company(),
            "title": rng.choice(["总经理", "采购经理", "市场总监", "IT 主管", "销售经理"]),
            "mobile": fake.phone_number(),
            "email": fake.email(),
            "province": province,
            "city": rng.choice(cities[province]),
            "source": rng.choice(SOURCES),
            "status": rng.choice(STATUSES),
            "score": rng.randint(0, 100),
            "budget": f"{rng.randint(1, 500) * 1000}.00",
        })
    for start in range(0, len(rows), 100):
        batch = rows[start:start + 100]
        runtime.records.bulk_create(actor, "lead", batch)
        progress(len(batch))
    return len(rows)
