"""Feature pipeline: customer features from the warehouse's dimension table."""
import csv
import sqlite3
import sys

warehouse, output = sys.argv[1], sys.argv[2]
db = sqlite3.connect(f"file:{warehouse}?mode=ro", uri=True)
rows = db.execute(
    "SELECT customer_id, monthly_spend, tenure_months, support_tickets, churned FROM dim_customer ORDER BY customer_id"
).fetchall()
with open(output, "w", newline="") as out:
    writer = csv.writer(out)
    writer.writerow(["customer_id", "spend_scaled", "tenure_scaled", "tickets_scaled", "label"])
    for customer_id, spend, tenure, tickets, churned in rows:
        writer.writerow([customer_id, round(spend / 250, 6), round(tenure / 96, 6), round(tickets / 12, 6), churned])
