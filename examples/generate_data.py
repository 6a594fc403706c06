"""Generate the example collaboration's tables, deterministically (a fixed seed).

    python examples/generate_data.py [--out examples/data]

Writes `impressions.csv` (the advertiser's ad impressions) and `purchases.parquet` (the
retailer's purchases). Both key people by `hashed_email`, the SHA-256 of a synthetic address,
so the two sides join on it without either revealing an address. Some people appear on both
sides, and people who saw a campaign buy a little more often, so the audience overlap and the
conversion rate by campaign come out non-trivial. The files are committed; rerunning the script
reproduces the same rows.
"""

from __future__ import annotations

import argparse
import csv
import hashlib
import random
from datetime import date, timedelta
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq

SEED = 20260101
PEOPLE = 1500
START = date(2026, 1, 1)
DAYS = 90  # January to March 2026
CAMPAIGNS = {  # campaign id -> share of impressions
    "cmp-spring-sale": 0.35,
    "cmp-new-arrivals": 0.25,
    "cmp-brand-awareness": 0.25,
    "cmp-retargeting": 0.15,
}
CHANNELS = ["display", "video", "social", "search"]
DEVICES = ["mobile", "desktop", "tablet", "ctv"]
CATEGORIES = {"grocery": 35.0, "home": 80.0, "apparel": 60.0, "beauty": 30.0, "electronics": 220.0}
STORES = [f"store-{n:03d}" for n in range(1, 13)]


def hashed_email(person: int) -> str:
    return hashlib.sha256(f"person{person:05d}@example.com".encode()).hexdigest()


def impressions(rng: random.Random) -> list[dict[str, str]]:
    # The advertiser reaches 1 200 of the 1 500 people, several times each.
    reached = rng.sample(range(PEOPLE), 1200)
    campaigns, weights = list(CAMPAIGNS), list(CAMPAIGNS.values())
    rows = []
    for person in reached:
        for _ in range(rng.choice([1, 2, 3, 4, 5])):
            rows.append(
                {
                    "hashed_email": hashed_email(person),
                    "campaign_id": rng.choices(campaigns, weights)[0],
                    "impression_date": (START + timedelta(days=rng.randrange(DAYS))).isoformat(),
                    "channel": rng.choice(CHANNELS),
                    "device_type": rng.choice(DEVICES),
                }
            )
    rows.sort(key=lambda r: (r["impression_date"], r["hashed_email"], r["campaign_id"]))
    return rows


def purchases(rng: random.Random, exposed: dict[str, date]) -> pa.Table:
    # The retailer's customers: a third of everyone, plus more of the people the ads reached.
    rows: dict[str, list[object]] = {
        k: [] for k in ("hashed_email", "purchase_date", "amount", "category", "store_id")
    }
    categories = list(CATEGORIES)
    for person in range(PEOPLE):
        email = hashed_email(person)
        first_seen = exposed.get(email)
        if rng.random() > (0.55 if first_seen else 0.33):
            continue
        for _ in range(rng.choice([1, 1, 2, 3])):
            day = rng.randrange(DAYS)
            if first_seen and rng.random() < 0.5:  # often soon after the first impression
                day = min(DAYS - 1, (first_seen - START).days + rng.randrange(21))
            category = rng.choice(categories)
            amount = round(rng.uniform(0.3, 1.7) * CATEGORIES[category], 2)
            for key, value in (
                ("hashed_email", email),
                ("purchase_date", START + timedelta(days=day)),
                ("amount", amount),
                ("category", category),
                ("store_id", rng.choice(STORES)),
            ):
                rows[key].append(value)
    schema = pa.schema(
        [
            ("hashed_email", pa.string()),
            ("purchase_date", pa.date32()),
            ("amount", pa.float64()),
            ("category", pa.string()),
            ("store_id", pa.string()),
        ]
    )
    table = pa.table(rows, schema=schema)
    return table.sort_by([("purchase_date", "ascending"), ("hashed_email", "ascending")])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=Path(__file__).parent / "data")
    args = parser.parse_args()
    args.out.mkdir(parents=True, exist_ok=True)
    rng = random.Random(SEED)

    imps = impressions(rng)
    with (args.out / "impressions.csv").open("w", newline="", encoding="utf-8") as f:
        writer = csv.DictWriter(f, fieldnames=list(imps[0]), lineterminator="\n")
        writer.writeheader()
        writer.writerows(imps)

    first_seen: dict[str, date] = {}
    for row in imps:
        day = date.fromisoformat(row["impression_date"])
        first_seen[row["hashed_email"]] = min(day, first_seen.get(row["hashed_email"], day))
    buys = purchases(rng, first_seen)
    pq.write_table(buys, args.out / "purchases.parquet", compression="zstd")
    print(f"wrote {len(imps)} impressions and {buys.num_rows} purchases to {args.out}")


if __name__ == "__main__":
    main()
