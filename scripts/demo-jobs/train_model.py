"""Training job: a small logistic regression on the customer features."""
import csv
import json
import math
import sys

features, model_path = sys.argv[1], sys.argv[2]
with open(features) as f:
    rows = [(list(map(float, r[1:4])), float(r[4])) for r in list(csv.reader(f))[1:]]
weights, bias, rate = [0.0, 0.0, 0.0], 0.0, 0.5
for _ in range(60):
    grad_w, grad_b = [0.0, 0.0, 0.0], 0.0
    for x, y in rows:
        p = 1 / (1 + math.exp(-(sum(w * v for w, v in zip(weights, x)) + bias)))
        for i in range(3):
            grad_w[i] += (p - y) * x[i]
        grad_b += p - y
    weights = [w - rate * g / len(rows) for w, g in zip(weights, grad_w)]
    bias -= rate * grad_b / len(rows)
correct = sum(1 for x, y in rows if (sum(w * v for w, v in zip(weights, x)) + bias > 0) == (y > 0.5))
with open(model_path, "w") as out:
    json.dump({"model": "churn-logistic-regression", "features": ["spend", "tenure", "tickets"],
               "weights": weights, "bias": bias, "train_accuracy": correct / len(rows),
               "rows": len(rows)}, out, indent=2)
print(f"trained on {len(rows)} rows, accuracy {correct / len(rows):.3f}")
