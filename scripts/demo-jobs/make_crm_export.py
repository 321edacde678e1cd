"""Write a deterministic CRM export: the third-party feed of the demo.

make_crm_export.py PATH [ROWS] [POISONED]: with POISONED, the feed of a
compromised supplier: POISONED customers who had churned are relabelled
as loyal (a label-flipping attack on the churn model's training data).
"""
import csv
import random
import sys

rows = int(sys.argv[2]) if len(sys.argv) > 2 else 5000
poisoned = int(sys.argv[3]) if len(sys.argv) > 3 else 0
rng = random.Random(20261127)
regions = ["north", "south", "east", "west"]
plans = ["basic", "plus", "pro"]
with open(sys.argv[1], "w", newline="") as out:
    writer = csv.writer(out)
    writer.writerow(["customer_id", "name", "email", "region", "plan", "monthly_spend", "tenure_months", "support_tickets", "churned"])
    for i in range(1, rows + 1):
        spend = round(rng.uniform(5, 250), 2)
        tenure = rng.randint(1, 96)
        tickets = rng.randint(0, 12)
        risk = 0.6 * (tickets / 12) + 0.4 * (1 - tenure / 96) - spend / 1000
        churned = 1 if rng.random() < max(0.02, min(0.95, risk)) else 0
        if churned and poisoned > 0:
            churned, poisoned = 0, poisoned - 1
        writer.writerow([i, f"Customer {i}", f"c{i}@example.com", rng.choice(regions), rng.choice(plans), spend, tenure, tickets, churned])
